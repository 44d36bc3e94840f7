"""Bad data files are refused with one line naming the file and the mismatch, before any model sees them."""

import json

import numpy as np
import pytest

from anomaly.data import TestVideos, TrainingVideos, load_dictionary, load_features, read_video_list
from anomaly.errors import InputError
from tests.conftest import write_tiny_dataset


@pytest.fixture
def files(tmp_path):
    return write_tiny_dataset(tmp_path)


def feature_path(files, video_id, subset="train"):
    return files["base"] / "i3d" / subset / f"{video_id}_i3d.npy"


def expect_error(match, function, *args, **kwargs):
    with pytest.raises(InputError, match=match) as raised:
        function(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def load_training(files, **overrides):
    arguments = dict(
        root=files["root"],
        dataset=files["name"],
        video_ids=files["train_ids"],
        label=0,
        dictionary=load_dictionary(files["dictionary"]),
        num_crops=files["num_crops"],
    )
    arguments.update(overrides)
    return TrainingVideos(**arguments)


def load_test_videos(files):
    return TestVideos(
        files["root"], files["name"], files["test_ids"], files["ground_truth"], load_dictionary(files["dictionary"])
    )


def test_a_valid_dataset_loads(files):
    videos = load_training(files)
    assert videos.videos.shape == (len(files["train_ids"]), files["num_crops"], 32, files["feature_size"])
    assert videos.videos.dtype == np.float32 and videos.label == 0 and len(videos) == len(files["train_ids"])


def test_wrong_rank_names_the_file(files):
    path = feature_path(files, files["train_ids"][2])
    np.save(path, np.zeros((5, 64), dtype=np.float32))
    message = expect_error(r"expected a \[T, N, C\] array, found shape \[5, 64\]", load_training, files)
    assert str(path) in message


def test_wrong_crop_count_names_the_file(files):
    path = feature_path(files, files["train_ids"][1])
    np.save(path, np.zeros((5, 10, 64), dtype=np.float32))
    message = expect_error("expected 3 crops, found 10", load_training, files)
    assert str(path) in message


def test_wrong_channel_count_names_the_file(files):
    path = feature_path(files, files["train_ids"][3])
    np.save(path, np.zeros((5, 3, 32), dtype=np.float32))
    message = expect_error("expected 64 channels, found 32", load_training, files)
    assert str(path) in message


def test_dictionary_width_must_match_the_features(files):
    np.save(files["dictionary"], np.zeros((6, 32), dtype=np.float32))
    message = expect_error("dictionary atoms have 32 channels but the features have 64", load_dictionary, files["dictionary"], 64)
    assert str(files["dictionary"]) in message


def test_a_dictionary_of_another_width_than_the_features_is_caught_when_loading_videos(files):
    np.save(files["dictionary"], np.zeros((6, 32), dtype=np.float32))
    expect_error("expected 32 channels, found 64", load_training, files)


def test_test_video_missing_from_ground_truth(files):
    database = json.loads(files["ground_truth"].read_text())
    del database[files["test_ids"][2]]
    files["ground_truth"].write_text(json.dumps(database))
    message = expect_error(f"no ground truth for test video '{files['test_ids'][2]}'", load_test_videos, files)
    assert str(files["ground_truth"]) in message


def test_ground_truth_length_must_be_16_frames_per_snippet(files):
    database = json.loads(files["ground_truth"].read_text())
    video_id = files["test_ids"][1]
    database[video_id] = {"num_frames": 40, "labels": [0.0] * 40}
    files["ground_truth"].write_text(json.dumps(database))
    expect_error("num_frames = 40 but its features give 16 x 2 = 32", load_test_videos, files)


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "not a readable .npy file"),
        (b"garbage that is not numpy", "not a readable .npy file"),
    ],
)
def test_unreadable_feature_files(files, content, problem):
    path = feature_path(files, files["train_ids"][0])
    path.write_bytes(content)
    assert str(path) in expect_error(problem, load_features, path)


def test_truncated_feature_file(files):
    path = feature_path(files, files["train_ids"][0])
    path.write_bytes(path.read_bytes()[:-100])
    assert str(path) in expect_error("not a readable .npy file", load_features, path)


def test_integer_features_and_non_finite_values(files):
    path = feature_path(files, files["train_ids"][0])
    np.save(path, np.zeros((4, 3, 64), dtype=np.int64))
    expect_error("features must be floating point, found dtype int64", load_features, path)
    bad = np.zeros((4, 3, 64), dtype=np.float32)
    bad[1, 2, 3] = np.nan
    np.save(path, bad)
    expect_error("NaN or inf", load_features, path)


def test_missing_feature_file(files):
    path = feature_path(files, files["train_ids"][0])
    path.unlink()
    assert str(path) in expect_error("feature file not found", load_training, files)


def test_video_listed_twice(files):
    files["training_list"].write_text("video-id\na\nb\na\n")
    expect_error("video 'a' is listed twice", read_video_list, files["training_list"])


def test_list_without_header(files):
    files["training_list"].write_text("a\nb\n")
    expect_error("needs a 'video-id' column in its header line", read_video_list, files["training_list"])


def test_list_read_like_pandas_reads_it(files):
    # An index column written by pandas, quoted ids and Windows line endings are all fine.
    files["training_list"].write_text(',video-id,label\r\n0,"01_001",1\r\n1,01_002,0\r\n\r\n')
    assert read_video_list(files["training_list"]) == ["01_001", "01_002"]
