"""The bundled synthetic dataset: real layout, determinism, ShanghaiTech-like proportions, a learnable signal
that a per-snippet norm threshold cannot find."""

import contextlib
import importlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from anomaly.data import TestVideos, TrainingVideos, read_video_list, split_training_list
from anomaly.data.synthetic import DEFAULT_SPEC, SyntheticSpec, make_synthetic_dataset, num_anomalous_training_videos
from anomaly.config import load_dataset_config
from anomaly.errors import InputError
from tests.conftest import run_tool

SMALL = SyntheticSpec(seed=5, feature_size=32, num_train_anomalous=4, num_train_normal=6, num_test_anomalous=3,
                      num_test_normal=4, median_length=20)


def event_count(labels: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate(([0.0], labels))) > 0))


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    """The dataset `make demo` uses (default sizes and seed)."""
    root = tmp_path_factory.mktemp("synthetic")
    info = make_synthetic_dataset(root)
    dictionary = np.random.default_rng(0).random((8, DEFAULT_SPEC.feature_size), dtype=np.float32)
    split = split_training_list(info["training_list"], info["num_anomalous_train"])
    normal = TrainingVideos(root, "synthetic", split["normal"], 0, dictionary, num_crops=10)
    anomalous = TrainingVideos(root, "synthetic", split["anomalous"], 1, dictionary, num_crops=10)
    test = TestVideos(root, "synthetic", read_video_list(info["testing_list"]), info["ground_truth"], dictionary,
                      num_crops=10)
    return dict(root=root, info=info, normal=normal, anomalous=anomalous, test=test)


def test_the_layout_loads_through_the_training_and_test_datasets(default_dataset):
    info, normal, anomalous, test = (default_dataset[key] for key in ("info", "normal", "anomalous", "test"))
    base = default_dataset["root"] / "synthetic"
    assert info["training_list"] == base / "synthetic.training.csv"
    assert info["testing_list"] == base / "synthetic.testing.csv"
    assert info["ground_truth"] == base / "synthetic_ground_truth.testing.json"
    assert normal.videos.shape[1:] == (10, 32, 128) and len(normal) == 84
    assert anomalous.videos.shape[1:] == (10, 32, 128) and len(anomalous) == 36
    assert normal.label == 0 and anomalous.label == 1
    assert len(test) == 50
    for video in test.videos:
        assert video.dtype == np.float32 and video.shape[1:] == (10, 128)
        assert (video >= 0).all()  # like pooled ReLU activations
    assert len(test.frame_labels) == 16 * sum(test.lengths)


def test_lists_put_the_anomalous_videos_first(default_dataset):
    info, test = default_dataset["info"], default_dataset["test"]
    ground_truth = json.loads(info["ground_truth"].read_text())
    assert list(ground_truth) == info["testing_ids"]  # json in list order
    anomalous = [bool(np.any(entry["labels"])) for entry in ground_truth.values()]
    assert anomalous == [True] * 12 + [False] * 38
    training = read_video_list(info["training_list"])
    assert training[:36] == sorted(training[:36]) and training[36:] == sorted(training[36:])
    assert not set(training) & set(info["testing_ids"])
    assert len(test.frame_labels) == sum(entry["num_frames"] for entry in ground_truth.values())


def test_shanghaitech_like_proportions_and_lengths(default_dataset):
    test = default_dataset["test"]
    train_share = DEFAULT_SPEC.num_train_anomalous / (DEFAULT_SPEC.num_train_anomalous + DEFAULT_SPEC.num_train_normal)
    test_share = DEFAULT_SPEC.num_test_anomalous / (DEFAULT_SPEC.num_test_anomalous + DEFAULT_SPEC.num_test_normal)
    assert 0.2 <= train_share <= 0.35 and 0.2 <= test_share <= 0.3  # ShanghaiTech: 63 / 238, 44 / 199
    assert min(DEFAULT_SPEC.num_train_anomalous, DEFAULT_SPEC.num_train_normal) >= 32  # one training batch each
    lengths = np.array(test.lengths)
    assert lengths.min() < 32 < lengths.max() and np.median(lengths) < lengths.mean()  # many short, a few long
    labels = np.split(test.frame_labels, np.cumsum(16 * lengths)[:-1])
    counts = [event_count(video_labels) for video_labels in labels]
    assert all(1 <= count <= 3 for count in counts[:12]) and all(count == 0 for count in counts[12:])
    assert len(set(counts[:12])) > 1
    assert 0.05 < test.frame_labels.mean() < 0.3


def test_a_per_snippet_norm_cannot_find_the_anomalies_but_video_labels_can(default_dataset):
    normal, anomalous, test = (default_dataset[key] for key in ("normal", "anomalous", "test"))
    snippet_labels = test.frame_labels[::16]
    norms = np.concatenate([np.linalg.norm(video, axis=2).mean(axis=1) for video in test.videos])
    norm_auc = roc_auc_score(snippet_labels, norms)
    assert 0.3 < norm_auc < 0.7

    # A linear snippet classifier trained with only video-level labels (every snippet of an anomalous training
    # video called anomalous) already finds most anomalous test snippets: the signal is learnable.
    channels = normal.videos.shape[-1]
    features = np.concatenate([normal.videos.mean(axis=1).reshape(-1, channels),
                               anomalous.videos.mean(axis=1).reshape(-1, channels)])
    targets = np.repeat([0, 1], [normal.videos.shape[0] * 32, anomalous.videos.shape[0] * 32])
    classifier = LogisticRegression(max_iter=2000).fit(features, targets)
    test_snippets = np.concatenate([video.mean(axis=1) for video in test.videos])
    weak_auc = roc_auc_score(snippet_labels, classifier.decision_function(test_snippets))
    assert weak_auc > 0.85 and weak_auc > norm_auc + 0.2


def test_anomalous_training_videos_hold_anomalous_snippets_normal_ones_do_not(default_dataset):
    """The anomaly pattern shifts some snippets of anomalous training videos only: their snippet-to-snippet
    spread around the video mean is larger than in normal videos of the same lengths."""
    normal, anomalous = default_dataset["normal"], default_dataset["anomalous"]

    def spread(videos):
        shape = videos / np.linalg.norm(videos, axis=3, keepdims=True)  # norm-free snippet patterns
        return np.linalg.norm(shape - shape.mean(axis=2, keepdims=True), axis=3).mean(axis=(1, 2))

    assert np.median(spread(anomalous.videos)) > np.median(spread(normal.videos))


def test_the_same_seed_gives_the_same_files_and_another_seed_others(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", spec=SMALL)
    again = make_synthetic_dataset(tmp_path / "b", spec=SMALL)
    other = make_synthetic_dataset(tmp_path / "c", spec=replace(SMALL, seed=6))
    files = sorted(path.relative_to(first["base"]) for path in first["base"].rglob("*") if path.is_file())
    assert len(files) == 4 + 17  # two lists, ground truth, spec; 17 feature files
    for relative in files:
        assert (first["base"] / relative).read_bytes() == (again["base"] / relative).read_bytes(), relative
    assert first["training_list"].read_text() != other["training_list"].read_text()


def test_feature_size_option(tmp_path):
    info = make_synthetic_dataset(tmp_path, name="wide", spec=replace(SMALL, feature_size=2048,
                                                                      num_train_anomalous=1, num_train_normal=1,
                                                                      num_test_anomalous=1, num_test_normal=1))
    video = np.load(info["base"] / "i3d" / "test" / f"{info['testing_ids'][0]}_i3d.npy")
    assert video.shape[1:] == (10, 2048) and video.dtype == np.float32
    assert info["training_list"] == tmp_path / "wide" / "wide.training.csv"


def test_the_config_matches_the_default_dataset(tmp_path):
    module = importlib.import_module("configs.synthetic.synthetic_dl")
    assert module.num_anomalous_train is None  # read from the generated dataset's spec file
    make_synthetic_dataset(tmp_path, spec=replace(SMALL, num_train_anomalous=3))
    config = load_dataset_config("synthetic", tmp_path, tmp_path / "dictionary")
    assert config.dataset == "synthetic" and config.num_anomalous_train == 3
    assert config.feature_size == DEFAULT_SPEC.feature_size and config.num_crops == DEFAULT_SPEC.num_crops
    assert config.modality == "taskaware" and config.init_lr == 1e-3 and config.metric == "AUC"
    assert isinstance(config.random_state, int) and isinstance(config.dictionary_ratio, int)
    files = config.files
    assert files.training_list == tmp_path / "synthetic" / "synthetic.training.csv"
    assert files.testing_list == tmp_path / "synthetic" / "synthetic.testing.csv"
    assert files.ground_truth == tmp_path / "synthetic" / "synthetic_ground_truth.testing.json"
    assert files.task_dictionary == tmp_path / "dictionary" / "synthetic" / (
        f"synthetic_dictionaries.taskaware.omp.100iters.{config.dictionary_ratio}pct.npy")
    assert files.regular_features == (
        tmp_path / "dictionary" / "synthetic" / "synthetic_regular_features-128dim.training.pickle")


def test_the_number_of_anomalous_training_videos_comes_from_the_generated_dataset(tmp_path):
    from anomaly.cli.command import run_command
    from anomaly.dictionary_learning import load_regular_features

    with pytest.raises(InputError, match="synthetic.spec.json: not found"):
        num_anomalous_training_videos(tmp_path)
    status, stdout, stderr = run_make_synthetic_dataset("--root", str(tmp_path), "--feature_size", "32", "--num_train_anomalous", "40",
                                      "--num_train_normal", "4", "--num_test_anomalous", "1", "--num_test_normal", "1",
                                      "--median_length", "10", "--max_length", "20")
    assert status == 0, stderr
    assert num_anomalous_training_videos(tmp_path) == 40

    dictionaries = tmp_path / "dictionary"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        status = run_command("learn-dictionary", ["--dataset", "synthetic", "--root_path", str(tmp_path), "--dictionary_path",
                                          str(dictionaries), "--feature_size", "32"])
    assert status == 0
    training = read_video_list(tmp_path / "synthetic" / "synthetic.training.csv")
    assert len(training) == 44
    regular_file = load_dataset_config("synthetic", tmp_path, dictionaries, feature_size=32).files.regular_features
    regular = load_regular_features(regular_file, 32)
    assert list(regular) == training[40:]  # the 4 normal videos: the 40 anomalous ones come first


@pytest.mark.parametrize("feature_size", [33, 16])
def test_a_feature_size_the_model_cannot_take_is_refused(tmp_path, feature_size):
    status, stdout, stderr = run_make_synthetic_dataset("--root", str(tmp_path), "--feature_size", str(feature_size))
    assert (status, stdout) == (2, "")
    assert stderr == (f"s3r synthetic: --feature_size must be a positive multiple of 32 (the model's GroupNorm runs 8 "
                      f"groups on C / 4 channels), not {feature_size}\n")
    assert not (tmp_path / "synthetic").exists()


@pytest.mark.parametrize("sizes, problem", [
    (dict(min_length=50, max_length=10), "max_length must be an integer at least 50, not 10; it is below min_length"),
    (dict(num_train_anomalous=0), "num_train_anomalous must be an integer at least 1, not 0; a synthetic dataset needs "
                                  "at least one video of each class in each split"),
    (dict(num_crops=0), "num_crops must be an integer at least 1, not 0"),
    (dict(min_length=0), "min_length must be an integer at least 1, not 0"),
    (dict(median_length=0.0), "median_length must be a finite number at least 1, not 0.0; it is a length in snippets"),
    (dict(seed=-1), "seed must be an integer at least 0, not -1"),
])
def test_impossible_sizes_are_refused_with_one_line(tmp_path, sizes, problem):
    with pytest.raises(InputError) as error:
        SyntheticSpec(**sizes)
    assert str(error.value) == problem
    arguments = [item for name, value in sizes.items() for item in (f"--{name}", str(value))]
    status, stdout, stderr = run_make_synthetic_dataset("--root", str(tmp_path), *arguments)
    assert (status, stdout, stderr) == (2, "", f"s3r synthetic: {problem}\n")
    assert not (tmp_path / "synthetic").exists()


def test_a_root_that_is_a_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("keep")
    status, stdout, stderr = run_make_synthetic_dataset("--root", str(blocker), "--feature_size", "32", "--num_train_anomalous", "1",
                                      "--num_train_normal", "1", "--num_test_anomalous", "1", "--num_test_normal", "1")
    assert status == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r synthetic: {blocker}: is a file, so the folder {blocker / 'synthetic' / 'i3d' / 'train'} cannot")
    assert blocker.read_text() == "keep"


def run_make_synthetic_dataset(*args):
    return run_tool("make_synthetic_dataset.py", *args)


def test_the_tool_is_idempotent_and_replaces_only_synthetic_datasets(tmp_path):
    small = ["--root", str(tmp_path), "--feature_size", "32", "--num_train_anomalous", "2", "--num_train_normal",
             "2", "--num_test_anomalous", "1", "--num_test_normal", "1"]
    status, stdout, _ = run_make_synthetic_dataset(*small)
    assert status == 0 and "the first 2 anomalous" in stdout
    listing = (tmp_path / "synthetic" / "synthetic.training.csv").stat().st_mtime_ns
    status, stdout, _ = run_make_synthetic_dataset(*small)
    assert status == 0 and "already there" in stdout
    assert (tmp_path / "synthetic" / "synthetic.training.csv").stat().st_mtime_ns == listing

    status, _, stderr = run_make_synthetic_dataset(*small, "--seed", "1")
    assert status == 2 and "--overwrite" in stderr and stderr.count("\n") == 1
    status, _, _ = run_make_synthetic_dataset(*small, "--seed", "1", "--overwrite")
    assert status == 0 and json.loads((tmp_path / "synthetic" / "synthetic.spec.json").read_text())["seed"] == 1

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    status, _, stderr = run_make_synthetic_dataset(*small, "--name", "mine", "--overwrite")
    assert status == 2 and "not a synthetic dataset" in stderr
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"
