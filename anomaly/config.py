"""Dataset configs: ``configs/<dataset>/<dataset>_dl.py`` (Python files, dashes as underscores) read into a Munch
with every file path resolved.

A config module sets the dataset's own values (``dataset``, ``dictionary_ratio``, ``random_state``,
``num_anomalous_train``, and whatever it changes of ``configs/base.py``'s defaults). The crop count and metric come
(and whether an AUC per class is reported) from the catalog (``anomaly.data.catalog``), and every file name from ``anomaly.layout.dataset_files``: both are
defined once, here only put together.
"""

import importlib
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Union

from munch import Munch

import configs.base as base
from anomaly.data.catalog import DATASETS
from anomaly.data.description import DatasetDescription, description_path, read_description
from anomaly.data.features import feature_file, feature_folder, read_npy_shape
from anomaly.data.synthetic import num_anomalous_training_videos
from anomaly.data.video_lists import read_video_list
from anomaly.errors import InputError
from anomaly.layout import BACKBONE_FEATURE_SIZES, dataset_files

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
    "batch_size",
    "frame_rate",
)


def load_dataset_config(
    dataset: str,
    root_path: PathLike = "data",
    dictionary_path: PathLike = "dictionary",
    feature_size: Optional[int] = None,
    dictionary_ratio: Optional[int] = None,
    dictionary_max_iter: Optional[int] = None,
    num_anomalous_train: Optional[int] = None,
    backbone: Optional[str] = None,
) -> Munch:
    """The config of ``dataset`` with its files resolved: lists, ground truth and features under ``root_path``,
    dictionaries and regular features under ``dictionary_path``.

    ``dataset`` is a built-in one (``anomaly.data.catalog``, its config module under ``configs/``) or one described
    by ``<root_path>/<dataset>/<dataset>.dataset.json`` (``anomaly.data.description``): the two give the same
    fields. The keyword arguments, when given, replace the config's values (command-line overrides), so the file
    names follow them: a dictionary learned with ``--max_iter 50`` is the one a trainer with
    ``--dictionary_max_iter 50`` reads. A config whose ``num_anomalous_train`` is None (a generated dataset) reads it
    from the dataset's spec file. ``backbone``: features of another network than the dataset's own (``--backbone``):
    their folder, their dictionaries (``anomaly.layout.dataset_files``), and no recipe known for them (the dataset's
    preset, frame reading and weights are of its own backbone's features), the channels of that backbone's features
    unless ``feature_size`` says otherwise.
    """
    root, dictionaries = Path(root_path), Path(dictionary_path)
    config = _built_in_config(dataset, root) if dataset in DATASETS else _described_config(dataset, root)
    overrides = dict(feature_size=feature_size, dictionary_ratio=dictionary_ratio,
                     dictionary_max_iter=dictionary_max_iter, num_anomalous_train=num_anomalous_train)
    if backbone is not None and backbone != config.backbone:
        channels = BACKBONE_FEATURE_SIZES.get(backbone, config.feature_size)  # a name of features made elsewhere: as declared
        config.update(backbone=backbone, feature_size=channels, preset=None, frames=None, weights_sha256=None)
    config.update({field: value for field, value in overrides.items() if value is not None})
    names = dataset_files(dataset, config.dictionary_ratio, config.feature_size, config.dictionary_max_iter,
                          config.backbone)  # fmt: skip
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


def _built_in_config(dataset: str, root: Path) -> Munch:
    """A catalog dataset: its config module's values and the catalog's entry."""
    module_name = dataset.replace("-", "_")
    module = importlib.import_module(f"configs.{module_name}.{module_name}_dl")
    config = Munch({field: getattr(module, field) for field in CONFIG_FIELDS})
    entry = DATASETS[dataset]
    config.update(num_crops=entry.num_crops, metric=entry.metric, per_class_auc=entry.per_class_auc,
                  preset=entry.preset, frames=None, weights_sha256=None)  # the released features: weights not known
    if config.num_anomalous_train is None:  # a generated dataset records its own split
        config.num_anomalous_train = num_anomalous_training_videos(root, dataset)
    return config


def _described_config(dataset: str, root: Path) -> Munch:
    """A dataset described by data: its description file's values, and the shared defaults for the rest."""
    description = read_description(root, dataset)
    config = Munch({field: getattr(base, field) for field in CONFIG_FIELDS if hasattr(base, field)})
    config.update(asdict(description), dataset=description.name, per_class_auc=False)
    del config["name"]
    _check_against_features(description, root)
    return config


def _check_against_features(description: DatasetDescription, root: Path) -> None:
    """The crops and channels of the first training video's features must be those the description declares."""
    names = dataset_files(description.name, description.dictionary_ratio, description.feature_size, 1,
                          description.backbone)  # fmt: skip
    training_list = root / names["data_file_train"]
    if not training_list.is_file():
        return  # the trainer says that the list is missing
    first = read_video_list(training_list)[0]
    path = feature_file(feature_folder(root, description.name, description.backbone, "train"), first,
                        description.backbone)
    if not path.is_file():
        return  # the trainer names the missing feature file
    _, num_crops, channels = read_npy_shape(path)
    if (num_crops, channels) != (description.num_crops, description.feature_size):
        raise InputError(description_path(root, description.name),
                         f"declares {description.num_crops} crops of {description.feature_size} channels, but "
                         f"{path} holds {num_crops} crops of {channels}: correct the description or the features")
