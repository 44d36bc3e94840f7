"""Settings shared by every dataset config, and the one place where the file names of a dataset are built.

File names are relative: lists, ground truth and features to the ``--root_path`` folder, dictionaries and regular
features to the ``--dictionary_path`` folder. Crop counts and metrics are the catalog's (``anomaly.data.catalog``).
"""

from anomaly.dictionary_learning import TRANSFORM_ALGORITHM

backbone = "i3d"
feature_size = 2048
quantize_size = 32
init_lr = 0.001
modality = "taskaware"
univ_data = "kinetics400"
dictionary_max_iter = 100  # mini-batch updates of dictionary learning; part of the dictionary's file name


def dataset_files(dataset: str, dictionary_ratio: int, feature_size: int, dictionary_max_iter: int) -> dict:
    """The published file names of a dataset laid out as in the RTFM feature release."""
    iterations = f"{TRANSFORM_ALGORITHM}.{dictionary_max_iter}iters"
    return dict(
        data_file_train=f"{dataset}/{dataset}.training.csv",
        data_file_test=f"{dataset}/{dataset}.testing.csv",
        ann_file_test=f"{dataset}/{dataset}_ground_truth.testing.json",
        task_dict_file=f"{dataset}/{dataset}_dictionaries.taskaware.{iterations}.{dictionary_ratio}pct.npy",
        univ_dict_file=f"{univ_data}/{univ_data}_dictionaries.universal.{iterations}.npy",
        tmp_dict_file=f"{dataset}/{dataset}_states.universal.npy",
        regular_file=f"{dataset}/{dataset}_regular_features-{feature_size}dim.training.pickle",
    )
