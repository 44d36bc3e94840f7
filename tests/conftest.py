"""Shared test helpers: where the published reference outputs live, and small deterministic inputs."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from anomaly.data.synthetic import DEFAULT_SPEC, make_synthetic_dataset
from anomaly.cli.command import run_command

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


# ---------------------------------------------------------------------------------------------------------------
# Numeric tolerances: one bound, derived from float32 rounding, for every comparison of computed tensors
# ---------------------------------------------------------------------------------------------------------------

FLOAT32_UNIT_ROUNDOFF = 2.0**-24  # u ≈ 6e-8: one float32 rounding

# Two float32 computations of the same K-term sum (another SIMD width, blocking or thread split: ATEN_CPU_CAPABILITY,
# OMP_NUM_THREADS, CPU vendor, or another implementation) differ by about sqrt(K)·u·scale (rounding errors add up
# like a random walk; the worst case K·u·scale is never approached by these sizes). The sums here have K up to
# ~10^4 terms (channels × kernel taps × snippets × crops), so sqrt(K)·u ≈ 6e-6 of the tensor's scale:
FORWARD_REL = 1e-5
# A gradient is a K ~ 10^4..10^5-term sum over the batch taken after a chain of about ten layers whose rounding it
# carries and amplifies (softmax, BatchNorm and L2 normalisations divide by small sums): an order of magnitude more.
GRADIENT_REL = 1e-4


def assert_close_to_scale(actual, expected, rel=FORWARD_REL, name="", noise_scale=None):
    """Assert ``|actual - expected| <= rel · max|expected|`` elementwise (the tensor's scale, not each element's).

    Rounding error is relative to the magnitude of the terms that were summed, which is the scale of the whole
    tensor, not of one element: an element that is small because its terms cancelled carries the error of the
    large terms. So the bound is ``rel`` times ``max|expected|``; see FORWARD_REL and GRADIENT_REL for ``rel``.

    ``noise_scale`` (gradients): some true values are exactly zero, e.g. the gradient of a bias before a
    training-mode BatchNorm or a softmax (both ignore a shift). Both computations then hold rounding noise of a sum
    whose terms are as large as the gradients flowing through the model, at most ``noise_scale`` (the largest
    gradient of the whole model). Elements with ``|expected| <= rel · noise_scale`` cannot be told from zero; they
    are noise-only, and are compared with ``rel · noise_scale`` instead.

    Tensors are compared in float64 (the fixtures store some outputs as float64); shapes must be equal.
    """
    actual = torch.as_tensor(actual).detach().cpu().double()
    expected = torch.as_tensor(expected).detach().cpu().double()
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{name}: not finite"
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    bound = torch.full_like(expected, rel * scale)
    if noise_scale is not None:
        noise_only = expected.abs() <= rel * noise_scale
        bound[noise_only] = torch.clamp(bound[noise_only], min=rel * noise_scale)
    excess = (actual - expected).abs() - bound
    if expected.numel() and float(excess.max()) > 0:
        worst = int(excess.flatten().argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
        raise AssertionError(
            f"{name}: {int((excess > 0).sum())} of {expected.numel()} elements differ by more than {rel:g} of the "
            f"scale {scale:.3g}" + (f" (noise floor {rel * noise_scale:.3g})" if noise_scale is not None else "")
            + f"; worst at {index}: {float(actual.flatten()[worst]):.9g} vs {float(expected.flatten()[worst]):.9g}"
        )


def assert_same_evaluation(actual, expected):
    """Two evaluations agree: every video's snippet scores (FORWARD_REL of the scores' scale) and the metric.

    The metric ranks snippets; it can only change where two snippets' scores lie within the score bound of each
    other, which these random test sets do not have, so it agrees up to its float64 sums (1e-6 is far above them).
    """
    assert actual.snippet_scores.keys() == expected.snippet_scores.keys()
    for video_id, scores in expected.snippet_scores.items():
        assert_close_to_scale(actual.snippet_scores[video_id], scores, name=video_id)
    assert actual.value == pytest.approx(expected.value, abs=1e-6)


def trained_like_batchnorm(model):
    """Give the non-local blocks' BatchNorm (``alter.1``, zero-initialised so that the block starts as the
    identity) non-trivial weights and running statistics, as after training, so that every branch matters.

    Draws from torch's global generator. Returns the model.
    """
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "alter.1" in name and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def load_script(path: Path):
    """A published script (``tools/<script>.py``, ``data/<dataset>/<dataset>_dictionary_learning.py``) as a module,
    to call its ``main(argv)`` or patch it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(script: str):
    """``tools/<script>`` as a module (to call its ``main(argv)`` or patch it)."""
    return load_script(REPO / "tools" / script)


def run_tool(script: str, *args: str, subprocess: bool = False, cwd=None, timeout: float = 300):
    """Run ``tools/<script>`` with ``args``: (exit status, stdout, stderr).

    By default its ``main(argv)`` runs in this process (fast; monkeypatches apply), with an argparse exit taken as
    the status. With ``subprocess=True`` it runs as ``python tools/<script>`` in ``cwd``, the repository on
    PYTHONPATH, as a user would run it.
    """
    import contextlib
    import io
    import os
    import subprocess as subprocesses
    import sys

    path = REPO / "tools" / script
    if subprocess:
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        completed = subprocesses.run(
            [sys.executable, str(path), *args], cwd=cwd or REPO, env=environment, capture_output=True, text=True,
            timeout=timeout, stdin=subprocesses.DEVNULL,
        )
        return completed.returncode, completed.stdout, completed.stderr
    module = load_tool(script)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = module.main(list(args))
        except SystemExit as exit_:
            status = exit_.code
    return status, stdout.getvalue(), stderr.getvalue()


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
    """A working folder with ``data/synthetic`` (32 channels, 16 test videos) and its task-aware dictionary."""
    root = tmp_path_factory.mktemp("workspace")
    spec = dataclasses.replace(DEFAULT_SPEC, feature_size=FEATURE_SIZE, max_length=80)
    make_synthetic_dataset(root / "data", spec=spec)
    keep_test_videos(root / "data" / "synthetic", anomalous=6, normal=10)
    status = run_command(
        "learn-dictionary",
        ["--dataset", "synthetic", "--feature_size", str(FEATURE_SIZE), "--root_path", str(root / "data"),
         "--dictionary_path", str(root / "dictionary")],
    )
    assert status == 0
    return root


def keep_test_videos(base: Path, anomalous: int, normal: int) -> None:
    """Cut the synthetic dataset under ``base`` to its first ``anomalous`` and ``normal`` test videos (list, ground
    truth and features), leaving its training videos as generated.

    Every evaluation scores the whole test set and the tests' training runs evaluate often: 16 test videos hold both
    classes in plenty, at a third of the default's 50; the generator is left at its defaults so that the training
    videos, and the dictionary learned from them, are those of the default dataset."""
    from anomaly.data.ground_truth import write_ground_truth
    from anomaly.data.video_lists import read_video_list, write_video_list

    listing, truth_file = base / "synthetic.testing.csv", base / "synthetic_ground_truth.testing.json"
    truth = json.loads(truth_file.read_text())
    videos = read_video_list(listing)
    anomalous_videos = [video for video in videos if any(truth[video]["labels"])]
    normal_videos = [video for video in videos if not any(truth[video]["labels"])]
    kept = set(anomalous_videos[:anomalous] + normal_videos[:normal])
    for video in videos:
        if video not in kept:
            (base / "i3d" / "test" / f"{video}_i3d.npy").unlink()
    write_video_list([video for video in videos if video in kept], listing)
    write_ground_truth({video: truth[video]["labels"] for video in videos if video in kept}, truth_file)


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


SCRIPT = load_tool("trainval_anomaly_detector.py")  # the train/eval script, run in-process by the tests


@pytest.fixture
def copy(workspace, tmp_path):
    """A private copy of the dataset and dictionary that a test may damage."""
    for name in ("data", "dictionary"):
        shutil.copytree(workspace / name, tmp_path / name)
    return tmp_path


def data_file(copy, *parts):
    return copy.joinpath("data", "synthetic", *parts)


def first_video(copy, subset):
    listing = "synthetic.training.csv" if subset == "train" else "synthetic.testing.csv"
    video_id = data_file(copy, listing).read_text().split()[1]
    return video_id, data_file(copy, "i3d", subset, f"{video_id}_i3d.npy")


def run_failing(copy, capsys, monkeypatch, *extra, version="bad"):
    """Run the script expecting exit status 2; return its one-line error message."""
    monkeypatch.chdir(copy)
    status = SCRIPT.main(cli_arguments(copy, version, "--max_epoch", "2", *extra))
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    message = [line for line in error if line.startswith("s3r train: ")]
    assert len(message) == 1, error
    written = [path for folder in ("logs", "checkpoint", "output") for path in (copy / folder).rglob("*") if path.is_file()]
    assert written == []
    return message[0]


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (selenium WebDriver) shared by the session's browser tests; see tests/browser.py for
    ``open_page``, ``console_errors`` and ``screenshot_if_requested``. Skips, or fails under S3R_REQUIRE_BROWSER=1,
    when selenium, Chromium or ChromeDriver is missing."""
    from tests.browser import chromium_session

    yield from chromium_session()
