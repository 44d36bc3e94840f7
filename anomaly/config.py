"""Dataset configs: ``configs/<dataset>/<dataset>_dl.py`` (Python files, dashes as underscores) read into a Munch
with every file path resolved.

A config module sets the dataset's own values (``dataset``, ``dictionary_ratio``, ``random_state``,
``num_anomalous_train``, and whatever it changes of ``configs/base.py``'s defaults). The crop count and metric come
(and whether an AUC per class is reported) from the catalog (``anomaly.data.catalog``), and every file name from ``anomaly.layout.dataset_files``: both are
defined once, here only put together.
"""

import importlib
from pathlib import Path
from typing import Optional, Union

from munch import Munch

from anomaly.data.catalog import DATASETS
from anomaly.data.synthetic import num_anomalous_training_videos
from anomaly.errors import InputError
from anomaly.layout import dataset_files

PathLike = Union[str, Path]
CONFIG_FIELDS = (
    "dataset",
    "backbone",
    "feature_size",
    "init_lr",
    "modality",
    "num_anomalous_train",
    "dictionary_ratio",
    "dictionary_max_iter",
    "random_state",
)


def load_dataset_config(
    dataset: str,
    root_path: PathLike = "data",
    dictionary_path: PathLike = "dictionary",
    feature_size: Optional[int] = None,
    dictionary_ratio: Optional[int] = None,
    dictionary_max_iter: Optional[int] = None,
    num_anomalous_train: Optional[int] = None,
) -> Munch:
    """The config of ``dataset`` with its files resolved: lists, ground truth and features under ``root_path``,
    dictionaries and regular features under ``dictionary_path``.

    The keyword arguments, when given, replace the config's values (command-line overrides), so the file names
    follow them: a dictionary learned with ``--max_iter 50`` is the one a trainer with ``--dictionary_max_iter 50``
    reads. A config whose ``num_anomalous_train`` is None (a generated dataset) reads it from the dataset's spec file.
    """
    if dataset not in DATASETS:
        raise InputError(None, f"unknown dataset '{dataset}' (known: {', '.join(DATASETS)})")
    module_name = dataset.replace("-", "_")
    try:
        module = importlib.import_module(f"configs.{module_name}.{module_name}_dl")
    except ModuleNotFoundError:
        raise InputError(None, f"no config for dataset '{dataset}' (expected configs/{module_name}/{module_name}_dl.py)") from None
    config = Munch({field: getattr(module, field) for field in CONFIG_FIELDS})
    overrides = dict(feature_size=feature_size, dictionary_ratio=dictionary_ratio,
                     dictionary_max_iter=dictionary_max_iter, num_anomalous_train=num_anomalous_train)
    config.update({field: value for field, value in overrides.items() if value is not None})
    config.num_crops = DATASETS[dataset].num_crops
    config.metric = DATASETS[dataset].metric
    config.per_class_auc = DATASETS[dataset].per_class_auc
    root, dictionaries = Path(root_path), Path(dictionary_path)
    if config.num_anomalous_train is None:  # a generated dataset records its own split
        config.num_anomalous_train = num_anomalous_training_videos(root, dataset)
    names = dataset_files(dataset, config.dictionary_ratio, config.feature_size, config.dictionary_max_iter)
    config.files = Munch(
        training_list=root / names["data_file_train"],
        testing_list=root / names["data_file_test"],
        ground_truth=root / names["ann_file_test"],
        task_dictionary=dictionaries / names["task_dict_file"],
        universal_dictionary=dictionaries / names["univ_dict_file"],
        universal_states=dictionaries / names["tmp_dict_file"],
        regular_features=dictionaries / names["regular_file"],
    )
    return config
