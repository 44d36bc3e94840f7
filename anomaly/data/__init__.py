"""Reading features, lists, ground truth and dictionaries; the training and test datasets."""

from anomaly.data.datasets import (
    TestVideos,
    TrainingVideos,
    load_dictionary,
    load_ground_truth,
)
from anomaly.data.features import (
    feature_file,
    feature_folder,
    load_features,
    num_snippets,
    read_npy_shape,
    resample_snippets,
)
from anomaly.data.video_lists import read_video_list, split_training_list

__all__ = [
    "TestVideos",
    "TrainingVideos",
    "feature_file",
    "feature_folder",
    "load_dictionary",
    "load_features",
    "load_ground_truth",
    "num_snippets",
    "read_npy_shape",
    "read_video_list",
    "resample_snippets",
    "split_training_list",
]
