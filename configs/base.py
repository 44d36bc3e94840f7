"""Settings shared by every dataset config. File names are relative: lists, ground truth and features to the
``--root_path`` folder, dictionaries and regular features to the ``--dictionary_path`` folder."""

backbone = "i3d"
num_crops = 10
feature_size = 2048
quantize_size = 32
init_lr = 0.001
modality = "taskaware"
univ_data = "kinetics400"
metric = "AUC"


def dataset_files(dataset: str, dictionary_ratio: int, feature_size: int = feature_size) -> dict:
    """The published file names of a dataset laid out as in the RTFM feature release."""
    return dict(
        data_file_train=f"{dataset}/{dataset}.training.csv",
        data_file_test=f"{dataset}/{dataset}.testing.csv",
        ann_file_test=f"{dataset}/{dataset}_ground_truth.testing.json",
        task_dict_file=f"{dataset}/{dataset}_dictionaries.taskaware.omp.100iters.{dictionary_ratio}pct.npy",
        univ_dict_file=f"{univ_data}/{univ_data}_dictionaries.universal.omp.100iters.npy",
        tmp_dict_file=f"{dataset}/{dataset}_states.universal.npy",
        regular_file=f"{dataset}/{dataset}_regular_features-{feature_size}dim.training.pickle",
    )
