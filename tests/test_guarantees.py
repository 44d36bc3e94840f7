"""The promises of docs/resuming-and-failures.md tried as a hostile or careless user would: never code from a
data file, never a silent wrong number, never a clobbered run, names are names, one line instead of a traceback,
memory linear in a video's length."""

import errno
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from anomaly import files
from anomaly.dictionary_learning import load_regular_features
from anomaly.engine.checkpoint import load_checkpoint
from anomaly.engine.evaluator import DeviceTestSet, evaluate, score_test_set
from anomaly.errors import InputError
from anomaly.models import S3R
from anomaly.models.aggregate import NonLocalBlock1D
from tests.conftest import (
    FEATURE_SIZE,
    REPO,
    SCRIPT,
    assert_same_evaluation,
    cli_arguments,
    data_file,
    first_video,
    run_failing,
    trained_like_batchnorm,
)


# ---------------------------------------------------------------------------------------------------------------
# 1. No code runs from a data file
# ---------------------------------------------------------------------------------------------------------------


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_regular_features_pickles_of_every_protocol_load(tmp_path, protocol):
    features = {"video_a": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "video_b": np.ones((2, 3, 4))}
    path = tmp_path / "regular.pickle"
    with open(path, "wb") as file:
        pickle.dump({"feature": features}, file, protocol=protocol)
    loaded = load_regular_features(path, feature_size=4, quantize_size=3)
    assert list(loaded) == ["video_a", "video_b"]
    np.testing.assert_array_equal(loaded["video_a"], features["video_a"])
    assert loaded["video_b"].dtype == np.float32


@pytest.mark.parametrize("where", ["top", "inside"])
def test_a_pickle_that_would_run_a_command_is_refused_without_a_trace(tmp_path, where):
    marker = tmp_path / "command-ran"
    payload = RunsACommand(marker)
    content = payload if where == "top" else {"feature": {"video": np.zeros((1, 2, 3), np.float32), "x": payload}}
    path = tmp_path / "regular.pickle"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(InputError) as refused:
        load_regular_features(path)
    assert str(refused.value) == (
        f"{path}: refused: it is not plain data (refused global '{os.system.__module__}.system'); a regular-features "
        "pickle holds only {'feature': {video_id: array}}, and loading this one could run code"
    )
    assert not marker.exists()


def test_float64_regular_features_beyond_float32_are_refused(tmp_path):
    path = tmp_path / "regular.pickle"
    path.write_bytes(pickle.dumps({"feature": {"video": np.full((1, 2, 3), 1e39)}}))
    with pytest.raises(InputError, match="finite, but beyond float32's range"):
        load_regular_features(path)


# ---------------------------------------------------------------------------------------------------------------
# Running the train/eval script in-process on a private copy of the synthetic dataset
# ---------------------------------------------------------------------------------------------------------------


STEM = "synthetic_s3r_i3d"


def run(copy, capsys, monkeypatch, version, *extra):
    """Run the script; return (status, stdout, stderr). A refusal must end stderr with its one-line error."""
    monkeypatch.chdir(copy)
    status = SCRIPT.main(cli_arguments(copy, version, *extra))
    out, err = capsys.readouterr()
    if status == 2:
        assert err.strip().splitlines()[-1].startswith("s3r train: "), err[-2000:]
    return status, out, err


def version_files(copy, version):
    folders = [copy / "checkpoint" / version, copy / "logs" / version]
    return {path: path.read_bytes() for folder in folders if folder.is_dir() for path in sorted(folder.iterdir())}


# A batch of 4 videos per class: what these runs are about (the files written, refused or kept) does not depend
# on the batch, and a step of the default 32 costs eight times as much.
SMALL_BATCH = ("--batch_size", "4")
SHORT_RUN = ("--max_epoch", "3", "--evaluate_min_step", "0", "--save_freq", "1", *SMALL_BATCH)


@pytest.fixture(scope="module")
def finished_state(workspace, tmp_path_factory):
    """The training state of a finished one-step run (with one evaluation), outside every test's folders."""
    folder = tmp_path_factory.mktemp("finished")
    options = ["--max_epoch", "1", "--evaluate_min_step", "0", "--log_path", str(folder), "--checkpoint_path", str(folder)]
    assert SCRIPT.main(cli_arguments(workspace, "first", *options)) == 0
    return folder / "first" / f"{STEM}.state"


# ---------------------------------------------------------------------------------------------------------------
# 2. Never a wrong number: non-finite weights, scores and losses
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inference", [True, False], ids=["inference", "training"])
def test_a_checkpoint_with_nan_weights_is_refused_and_prints_no_metric(copy, capsys, monkeypatch, inference):
    weights = S3R(FEATURE_SIZE).state_dict()
    weights["video_classifier.0.weight"][0, 0] = float("nan")
    checkpoint = copy / "nan.pth"
    torch.save(weights, checkpoint)
    extra = ["--resume", str(checkpoint)] + (["--inference"] if inference else [])
    status, out, err = run(copy, capsys, monkeypatch, "nan", "--max_epoch", "2", *extra)
    assert status == 2
    assert f"{checkpoint}: the weight 'video_classifier.0.weight' holds NaN or inf" in err
    assert "AUC" not in out and not (copy / "output").exists()


def test_inputs_that_overflow_the_model_give_one_line_and_no_metric(copy, capsys, monkeypatch):
    checkpoint = copy / "model.pth"
    torch.save(S3R(FEATURE_SIZE).state_dict(), checkpoint)
    _, path = first_video(copy, "test")
    np.save(path, np.full(np.load(path).shape, 1e30, dtype=np.float32))
    status, out, err = run(copy, capsys, monkeypatch, "big", "--inference", "--resume", str(checkpoint))
    assert status == 2 and "scores are NaN or inf" in err and "overflow float32" in err
    assert "Summary Result" not in out


def test_a_diverging_training_stops_at_the_step_and_keeps_the_last_good_state(copy, capsys, monkeypatch):
    status, out, err = run(copy, capsys, monkeypatch, "diverge", *SHORT_RUN, "--lr", "1e30")
    assert status == 2
    assert "s3r train: training diverged at step " in err
    state, best = (copy / "checkpoint" / "diverge" / f"{STEM}{suffix}" for suffix in (".state", "_best.pth"))
    for saved in (state, best):  # whatever was saved is finite; NaN never became a best model or a .score row
        if saved.exists():
            weights = load_checkpoint(saved)
            weights = weights.get("model", weights)
            assert all(bool(torch.isfinite(value).all()) for value in weights.values())
    score = (copy / "logs" / "diverge" / f"{STEM}.score").read_text()
    assert "nan" not in score.lower()


def test_a_nan_loss_applies_no_update():
    from anomaly.engine.trainer import make_optimizer, train_step

    torch.manual_seed(0)
    model = S3R(FEATURE_SIZE, batch_size=2)
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    videos = torch.rand(2, 3, 32, FEATURE_SIZE)
    videos[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="outputs are NaN or inf"):
        train_step(model, make_optimizer(model), videos, torch.rand(2, 3, 32, FEATURE_SIZE), torch.rand(4, FEATURE_SIZE))
    # The weights are untouched (BatchNorm's running statistics saw the batch; the run stops without saving them).
    assert all(torch.equal(dict(model.named_parameters())[name], value) for name, value in before.items())


# ---------------------------------------------------------------------------------------------------------------
# 3. Runs never clobber each other
# ---------------------------------------------------------------------------------------------------------------


def test_an_earlier_run_is_refused_unless_resumed_or_overwritten(copy, capsys, monkeypatch):
    assert run(copy, capsys, monkeypatch, "v", *SHORT_RUN)[0] == 0
    before = version_files(copy, "v")
    state = copy / "checkpoint" / "v" / f"{STEM}.state"
    status, _, err = run(copy, capsys, monkeypatch, "v", *SHORT_RUN)
    assert status == 2 and "holds the files of an earlier run" in err and f"--resume {state}" in err
    assert "--overwrite" in err and version_files(copy, "v") == before
    # A plain checkpoint is no continuation either.
    best = copy / "checkpoint" / "v" / f"{STEM}_best.pth"
    assert run(copy, capsys, monkeypatch, "v", *SHORT_RUN, "--resume", str(best))[0] == 2
    assert version_files(copy, "v") == before
    # Leftovers of a killed write are removed when the run is continued.
    leftover = state.parent / f".{state.name}.x1y2z3.tmp"
    leftover.write_bytes(b"half a state")
    continued = ("--max_epoch", "4", "--evaluate_min_step", "0", *SMALL_BATCH, "--resume", str(state))
    assert run(copy, capsys, monkeypatch, "v", *continued)[0] == 0
    assert not leftover.exists() and int(load_checkpoint(state)["step"]) == 4
    assert run(copy, capsys, monkeypatch, "v", *SHORT_RUN, "--overwrite")[0] == 0
    assert int(load_checkpoint(state)["step"]) == 3
    assert (copy / "logs" / "v" / f"{STEM}.log").read_text().count("Arguments") == 1


def test_a_second_run_on_a_busy_version_is_refused_and_the_first_keeps_its_lock(copy, capsys, monkeypatch):
    # The first run is a process holding the version's lock until the test closes its stdin: the test and the
    # holder synchronise on a pipe, so the refusal does not depend on how fast anything runs.
    version = copy / "checkpoint" / "busy"
    holder_code = (
        "import sys; from pathlib import Path; from anomaly.engine.version_folder import VersionFolder\n"
        f"with VersionFolder(Path({str(version)!r}), []):\n"
        "    print('locked', flush=True); sys.stdin.read()\n"
    )
    first = subprocess.Popen([sys.executable, "-c", holder_code], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "locked\n"
        status, _, err = run(copy, capsys, monkeypatch, "busy", *SHORT_RUN)
        assert status == 2 and err.strip().splitlines()[-1] == (
            f"s3r train: {version}: another training is running on this version (process {first.pid} holds "
            f"{version / '.lock'}); wait for it to end, or choose another --version"
        )
        assert sorted(path.name for path in version.iterdir()) == [".lock"]
        assert not (copy / "logs" / "busy").exists()
        assert (version / ".lock").read_text() == f"{first.pid}\n"  # the refused run left the holder's lock alone
    finally:
        first.stdin.close()
        assert first.wait(timeout=60) == 0
    assert run(copy, capsys, monkeypatch, "busy", *SHORT_RUN)[0] == 0  # once the first ends, the version is free
    assert not (version / ".lock").exists()


# ---------------------------------------------------------------------------------------------------------------
# 4. Names are not paths
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option,value", [("--version", "../../x"), ("--version", "/tmp/x"), ("--version", ""),
                                          ("--version", ".."), ("--model_name", "a/b"), ("--model_name", " ")])
def test_version_and_model_name_are_plain_names(copy, capsys, monkeypatch, option, value):
    assert run_failing(copy, capsys, monkeypatch, option, value).startswith(
        f"s3r train: {option} {value!r} is not a plain name (")


@pytest.mark.parametrize("listing,video_id", [("synthetic.testing.csv", "../train/escape"), ("synthetic.testing.csv", ".."),
                                              ("synthetic.training.csv", "/etc/passwd"), ("synthetic.training.csv", "a\\b")])
def test_listed_video_ids_are_plain_names(copy, capsys, monkeypatch, listing, video_id):
    path = data_file(copy, listing)
    lines = path.read_text().splitlines()
    lines[-1] = video_id
    path.write_text("\n".join(lines) + "\n")
    message = run_failing(copy, capsys, monkeypatch)
    assert f"{path}: row {len(lines)}: video id" in message and "is not a plain name" in message


# ---------------------------------------------------------------------------------------------------------------
# 5. One line, not a traceback: full disks, malformed ground truth and training states
# ---------------------------------------------------------------------------------------------------------------


class FullDisk:
    """A file whose writes fail with ENOSPC after a few bytes (what a full disk does)."""

    def __init__(self, file):
        self.file, self.written = file, 0

    def write(self, data):
        self.written += len(data)
        if self.written > 64:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.file.close()


@pytest.mark.parametrize("name,writes_before", [(f"{STEM}.state", 1), (f"{STEM}.log", 2), (f"{STEM}_best.pth", 0)])
def test_a_full_disk_ends_the_run_in_one_line_with_the_previous_file_intact(copy, capsys, monkeypatch, name,
                                                                           writes_before):
    real_fdopen, seen = os.fdopen, {"writes": 0, "before": None}

    def fdopen(descriptor, *args, **kwargs):
        file = real_fdopen(descriptor, *args, **kwargs)
        temporary = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        if not temporary.name.startswith(f".{name}."):
            return file
        seen["writes"] += 1
        if seen["writes"] <= writes_before:
            return file
        target = temporary.parent / name
        seen["before"] = target.read_bytes() if target.exists() else None
        return FullDisk(file)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    status, _, err = run(copy, capsys, monkeypatch, "full", *SHORT_RUN)
    assert status == 2
    assert "No space left on device" in err and "the previous version is intact" in err and "Traceback" not in err
    target = next((copy / folder / "full" / name for folder in ("checkpoint", "logs")
                   if (copy / folder / "full" / name).exists()), None)
    assert (target.read_bytes() if target else None) == seen["before"]
    assert not [path for path in copy.rglob("*.tmp")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry.update(num_frames=1e400),
        lambda entry: entry.update(num_frames=str(entry["num_frames"])),
        lambda entry: entry.update(num_frames=entry["num_frames"] + 0.5),
        lambda entry: entry["labels"].__setitem__(0, "0"),
        lambda entry: entry["labels"].__setitem__(0, True),
        lambda entry: entry["labels"].__setitem__(0, float("nan")),
        lambda entry: entry["labels"].__setitem__(0, [0]),
        lambda entry: entry["labels"].__setitem__(0, None),
        lambda entry: entry.update(labels={"0": 0}),
    ],
    ids=["inf-frames", "string-frames", "fractional-frames", "string-label", "bool-label", "nan-label",
         "list-label", "null-label", "labels-dict"],
)
def test_ground_truth_values_must_be_finite_integers_0_or_1(copy, capsys, monkeypatch, damage):
    video_id, _ = first_video(copy, "test")
    path = data_file(copy, "synthetic_ground_truth.testing.json")
    database = json.loads(path.read_text())
    damage(database[video_id])
    path.write_text(json.dumps(database))
    message = run_failing(copy, capsys, monkeypatch)
    assert str(path) in message and f"'{video_id}'" in message


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"a": ' * 50000 + "0" + "}" * 50000, "[1, 2]", "{"])
def test_malformed_ground_truth_json_of_any_depth(copy, capsys, monkeypatch, text):
    path = data_file(copy, "synthetic_ground_truth.testing.json")
    path.write_text(text)
    assert str(path) in run_failing(copy, capsys, monkeypatch)


@pytest.mark.parametrize(
    "damage",
    [
        lambda state: state["optimizer"].pop("param_groups"),
        lambda state: state["batches"].pop("normal"),
        lambda state: state["batches"]["anomalous"].pop("generator"),
        lambda state: state["history"][0].pop("value"),
        lambda state: state["history"][0].update(value=float("nan")),
        lambda state: state["random"]["numpy"].pop(),
        lambda state: state.pop("elapsed"),
        lambda state: state["kernels"].update({"a convolution": "fastest"}),
        lambda state: state["random"].update(numpy=[state["random"]["numpy"][0], [1, 2], *state["random"]["numpy"][2:]]),
    ],
    ids=["optimizer", "batches", "generator", "history", "nan-history", "random", "top-level", "kernel", "random-type"],
)
def test_a_training_state_lacking_an_entry_is_refused_in_one_line(copy, capsys, monkeypatch, damage, finished_state):
    state = torch.load(finished_state, weights_only=True)
    state_file = copy / "damaged.state"
    damage(state)
    torch.save(state, state_file)
    message = run_failing(copy, capsys, monkeypatch, "--resume", str(state_file))
    assert str(state_file) in message and "training state" in message


# ---------------------------------------------------------------------------------------------------------------
# 6. Evaluation memory is linear in a video's length, with the same scores as the T × T attention
# ---------------------------------------------------------------------------------------------------------------


def quadratic_non_local(self, x, mask=None):
    """The published non-local block: the T × T attention queryᵀ·key / T, then attention · value."""
    value, query, key = self.value(x).transpose(1, 2), self.query(x).transpose(1, 2), self.key(x)
    if mask is None:
        attention = (query @ key) / x.shape[-1]
    else:
        weights = mask.to(x.dtype)
        attention = (query @ (key * weights.unsqueeze(1))) / weights.sum(dim=1).view(-1, 1, 1)
    return self.alter((attention @ value).transpose(1, 2)) + x


def small_test_set(lengths, seed=0, crops=2):
    generator = torch.Generator().manual_seed(seed)
    videos = [torch.rand(crops, length, FEATURE_SIZE, generator=generator) for length in lengths]
    labels = np.concatenate([np.repeat((np.arange(length) >= length // 2).astype(np.float32), 16) for length in lengths])
    dictionary = torch.rand(6, FEATURE_SIZE, generator=generator)
    return DeviceTestSet.from_tensors([f"v{index}" for index in range(len(lengths))], videos, dictionary, labels, "cpu")


def trained_like_model():
    """A seeded model whose non-local branches are not the identity (their closing BatchNorm starts at zero)."""
    torch.manual_seed(0)
    return trained_like_batchnorm(S3R(FEATURE_SIZE, batch_size=2)).eval()


def test_scores_equal_the_t_by_t_attention_path_on_short_videos(monkeypatch):
    """Both evaluation paths (one at a time, packed) give the scores of the published T × T non-local block."""
    model, test_set = trained_like_model(), small_test_set([1, 3, 17, 40, 64])
    linear = {mode: evaluate(model, test_set, one_at_a_time=mode) for mode in (True, False)}
    monkeypatch.setattr(NonLocalBlock1D, "forward", quadratic_non_local)
    quadratic = evaluate(model, test_set, one_at_a_time=True)
    for result in linear.values():
        assert_same_evaluation(result, quadratic)


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operation produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


@pytest.mark.parametrize("one_at_a_time", [True, False], ids=["one-at-a-time", "packed"])
def test_a_long_video_is_scored_in_memory_linear_in_its_length(one_at_a_time):
    model = trained_like_model()
    largest = {}
    for length in (1000, 4000):
        with LargestTensor() as tracker:
            score_test_set(model, small_test_set([length]), one_at_a_time=one_at_a_time)
        largest[length] = tracker.largest
    # Every tensor holds at most a few values per snippet and channel; a T × T attention would hold 16 million.
    assert largest[4000] <= 4 * 2 * (4000 + 64) * FEATURE_SIZE
    assert largest[4000] <= 4.2 * largest[1000]


# ---------------------------------------------------------------------------------------------------------------
# 7. Smaller things: a byte-order mark, the final log line
# ---------------------------------------------------------------------------------------------------------------


def test_a_csv_list_with_a_byte_order_mark_reads_as_pandas_reads_it(tmp_path):
    import pandas as pd

    from anomaly.data.video_lists import read_video_list

    path = tmp_path / "list.csv"
    path.write_bytes("video-id\nfirst\nsecond\n".encode("utf-8-sig"))
    assert read_video_list(path) == list(pd.read_csv(path)["video-id"]) == ["first", "second"]


def test_the_final_log_line_names_only_files_that_exist(copy, capsys, monkeypatch, finished_state):
    # Continuing a finished state into a new version runs no step: this run writes no checkpoint or state.
    status, out, _ = run(copy, capsys, monkeypatch, "again", "--max_epoch", "1", "--resume", str(finished_state))
    assert status == 0
    last = (copy / "logs" / "again" / f"{STEM}.log").read_text().strip().splitlines()[-1]
    assert "Best evaluation at step" in last
    assert str(copy / "checkpoint") not in last


def test_the_dictionary_tool_refuses_a_malicious_regular_features_pickle(copy, capsys):
    from anomaly.cli.command import run_command

    regular = next((copy / "dictionary" / "synthetic").glob("*regular_features*.pickle"))
    marker = copy / "command-ran"
    regular.write_bytes(pickle.dumps({"feature": {"video": RunsACommand(marker)}}))
    status = run_command("learn-dictionary", ["--dataset", "synthetic", "--feature_size", str(FEATURE_SIZE), "--root_path",
                               str(copy / "data"), "--dictionary_path", str(copy / "dictionary")])
    assert status == 2 and not marker.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"s3r learn-dictionary: {regular}: refused: it is not plain data")
