"""Shared test helpers: where the published reference outputs live, and small deterministic inputs."""

import dataclasses
from pathlib import Path

import pytest
import torch

from anomaly.data.synthetic import DEFAULT_SPEC, make_synthetic_dataset
from anomaly.cli.learn_dictionary import main as run_dictionary_learning

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test when that folder is absent (CI without it)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def s3r_small():
    """Outputs of the published S3R code on a seeded 64-channel model (see ../shared/reference/README.md)."""
    return torch.load(shared_path("reference", "s3r_small.pt"), weights_only=True)


def assert_same_evaluation(actual, expected):
    """Two evaluations agree: every video's snippet scores (1e-5) and the frame-level metric (1e-6)."""
    import numpy as np

    for video_id, scores in expected.snippet_scores.items():
        assert actual.snippet_scores[video_id].shape == scores.shape
        np.testing.assert_allclose(actual.snippet_scores[video_id], scores, rtol=1e-5, atol=1e-6)
    assert actual.value == pytest.approx(expected.value, abs=1e-6)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, name=""):
    """Compare in the actual dtype (the fixtures store some outputs as float64)."""
    expected = expected.to(actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def write_tiny_dataset(
    root: Path,
    name: str = "tiny",
    train_lengths=(5, 9, 12, 30, 40, 7, 8, 33),
    num_anomalous: int = 4,
    test_lengths=(1, 2, 5, 17, 40, 3),
    num_crops: int = 3,
    feature_size: int = 64,
    num_atoms: int = 6,
    seed: int = 0,
) -> dict:
    """A dataset in the RTFM layout under ``root``: lists, features, ground truth and a dictionary file.

    Anomalous test videos (every other one) have anomalous frames in their second half.
    Returns the paths and ids.
    """
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    base = root / name
    train_ids = [f"{'anomaly' if index < num_anomalous else 'normal'}_{index:03d}" for index in range(len(train_lengths))]
    test_ids = [f"test_{index:03d}" for index in range(len(test_lengths))]
    for subset, ids, lengths in (("train", train_ids, train_lengths), ("test", test_ids, test_lengths)):
        folder = base / "i3d" / subset
        folder.mkdir(parents=True, exist_ok=True)
        for video_id, length in zip(ids, lengths):
            features = rng.random((length, num_crops, feature_size), dtype=np.float32)
            np.save(folder / f"{video_id}_i3d.npy", features)
    (base / f"{name}.training.csv").write_text("video-id\n" + "\n".join(train_ids) + "\n")
    (base / f"{name}.testing.csv").write_text("video-id\n" + "\n".join(test_ids) + "\n")
    ground_truth = {}
    for index, (video_id, length) in enumerate(zip(test_ids, test_lengths)):
        labels = [0.0] * (16 * length)
        if index % 2 == 1:
            labels[8 * length :] = [1.0] * (16 * length - 8 * length)
        ground_truth[video_id] = {"num_frames": 16 * length, "labels": labels}
    ground_truth_file = base / f"{name}_ground_truth.testing.json"
    ground_truth_file.write_text(json.dumps(ground_truth))
    dictionary_file = root / f"{name}_dictionary.npy"
    np.save(dictionary_file, rng.random((num_atoms, feature_size), dtype=np.float32))
    return dict(
        root=root,
        name=name,
        base=base,
        train_ids=train_ids,
        test_ids=test_ids,
        training_list=base / f"{name}.training.csv",
        testing_list=base / f"{name}.testing.csv",
        ground_truth=ground_truth_file,
        dictionary=dictionary_file,
        num_anomalous=num_anomalous,
        num_crops=num_crops,
        feature_size=feature_size,
    )


FEATURE_SIZE = 32


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """A working folder with ``data/synthetic`` (32 channels) and its task-aware dictionary."""
    root = tmp_path_factory.mktemp("workspace")
    spec = dataclasses.replace(DEFAULT_SPEC, feature_size=FEATURE_SIZE, max_length=80)
    make_synthetic_dataset(root / "data", spec=spec)
    status = run_dictionary_learning(
        ["--dataset", "synthetic", "--feature_size", str(FEATURE_SIZE), "--root_path", str(root / "data"),
         "--dictionary_path", str(root / "dictionary")],
        default_dataset="synthetic",
    )
    assert status == 0
    return root


def cli_arguments(workspace, version, *extra):
    """Arguments of tools/trainval_anomaly_detector.py reading and writing inside ``workspace``."""
    return [
        "--dataset", "synthetic",
        "--feature_size", str(FEATURE_SIZE),
        "--root_path", str(workspace / "data"),
        "--dictionary_path", str(workspace / "dictionary"),
        "--log_path", str(workspace / "logs"),
        "--checkpoint_path", str(workspace / "checkpoint"),
        "--version", version,
        *extra,
    ]
