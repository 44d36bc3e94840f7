"""Dataset configs for the command-line tools: ``configs/<dataset>/<dataset>_dl.py`` as a Munch with real paths."""

import importlib
from pathlib import Path
from typing import Union

from munch import Munch

from anomaly.data.synthetic import num_anomalous_training_videos

CONFIG_FIELDS = (
    "dataset",
    "backbone",
    "num_crops",
    "feature_size",
    "quantize_size",
    "init_lr",
    "modality",
    "metric",
    "num_anomalous_train",
    "dictionary_ratio",
    "random_state",
)


def load_dataset_config(
    dataset: str, root_path: Union[str, Path] = "data", dictionary_path: Union[str, Path] = "dictionary"
) -> Munch:
    """The config of ``dataset`` with its files resolved: lists, ground truth and features under ``root_path``,
    dictionaries and regular features under ``dictionary_path``."""
    module_name = dataset.replace("-", "_")
    try:
        module = importlib.import_module(f"configs.{module_name}.{module_name}_dl")
    except ModuleNotFoundError:
        raise ValueError(f"no config for dataset '{dataset}' (expected configs/{module_name}/{module_name}_dl.py)") from None
    config = Munch({field: getattr(module, field) for field in CONFIG_FIELDS})
    root, dictionaries = Path(root_path), Path(dictionary_path)
    if config.num_anomalous_train is None:  # a generated dataset records its own split
        config.num_anomalous_train = num_anomalous_training_videos(root, dataset)
    config.files = Munch(
        training_list=root / module.files["data_file_train"],
        testing_list=root / module.files["data_file_test"],
        ground_truth=root / module.files["ann_file_test"],
        task_dictionary=dictionaries / module.files["task_dict_file"],
        universal_dictionary=dictionaries / module.files["univ_dict_file"],
        universal_states=dictionaries / module.files["tmp_dict_file"],
        regular_features=dictionaries / module.files["regular_file"],
    )
    return config
