"""The train/eval script end to end, on a small synthetic dataset in the real layout.

Training writes the best checkpoint, the .score log, the text log and the training curve (CSV and PNG);
``--inference --resume`` on that checkpoint reproduces the best AUC of the .score file and writes the per-video
scores, metrics.json, the ROC/PR pictures and one score-curve picture per anomalous video; ``--debug`` runs 3 steps;
a published-layout state_dict loads; a training state saved before per-step losses were recorded still resumes.
"""

import csv
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly.engine.checkpoint import load_checkpoint
from anomaly.models import S3R
from tests.conftest import FEATURE_SIZE, REPO, cli_arguments, run_tool

SCRIPT = REPO / "tools" / "trainval_anomaly_detector.py"


def run_cli(workspace, version, *extra, check=True, cwd=None):
    """The script as a user runs it, on ``workspace``'s data; its outputs (``output/``) go under ``cwd``, by default
    the workspace."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *cli_arguments(workspace, version, *extra)],
        cwd=cwd or workspace, capture_output=True, text=True, env=environment, timeout=300, stdin=subprocess.DEVNULL,
    )
    if check:
        assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def score_rows(score_file: Path):
    """(step, AUC) of every improvement row of a .score file."""
    rows = re.findall(r"^\|\s+(\d+)\s+\|\s+([\d.]+)\s+\|", score_file.read_text(), flags=re.MULTILINE)
    return [(int(step), float(value)) for step, value in rows]


@pytest.fixture(scope="session")
def trained(workspace):
    completed = run_cli(workspace, "e2e", "--max_epoch", "40", "--evaluate_min_step", "30")
    return workspace, completed


def test_training_writes_checkpoint_score_and_log(trained):
    workspace, completed = trained
    checkpoint = workspace / "checkpoint" / "e2e" / "synthetic_s3r_i3d_best.pth"
    score_file = workspace / "logs" / "e2e" / "synthetic_s3r_i3d.score"
    assert checkpoint.is_file() and score_file.is_file()
    assert (workspace / "logs" / "e2e" / "synthetic_s3r_i3d.log").is_file()
    state = torch.load(checkpoint, weights_only=True)
    assert set(state) == set(S3R(FEATURE_SIZE).state_dict())
    text = score_file.read_text()
    assert "dataset: synthetic" in text and "S3R(" in text and "initial AUC score" in text
    rows = score_rows(score_file)
    assert rows and all(31 <= step <= 40 for step, _ in rows)
    assert [value for _, value in rows] == sorted(value for _, value in rows)  # a row per improvement
    assert "Summary Result on AUC metric" in completed.stdout and "| Step |" in completed.stdout


@pytest.fixture(scope="session")
def inferred(trained):
    """``--inference --resume`` on the best checkpoint, over the pictures of an earlier inference: (workspace, its
    output folder, the completed process)."""
    workspace, _ = trained
    output = workspace / "output" / "synthetic"
    (output / "score_curves").mkdir(parents=True, exist_ok=True)
    (output / "score_curves" / "stale.png").write_bytes(b"old")  # an earlier inference's picture
    checkpoint = workspace / "checkpoint" / "e2e" / "synthetic_s3r_i3d_best.pth"
    return workspace, output, run_cli(workspace, "e2e", "--inference", "--resume", str(checkpoint))


def test_inference_reproduces_the_best_auc_and_writes_scores(inferred):
    workspace, _, completed = inferred
    best_auc = score_rows(workspace / "logs" / "e2e" / "synthetic_s3r_i3d.score")[-1][1]
    table_row = re.search(r"\|\s*synthetic\s*\|\s*S3R\s*\|\s*I3D\s*\|\s*([\d.]+)\s*\|", completed.stdout)
    assert table_row, completed.stdout
    assert float(table_row.group(1)) == pytest.approx(best_auc, abs=1e-9)
    with open(workspace / "output" / "synthetic" / "synthetic_taskaware_results.pickle", "rb") as file:
        scores = pickle.load(file)
    test_ids = (workspace / "data" / "synthetic" / "synthetic.testing.csv").read_text().split()[1:]
    assert list(scores) == test_ids
    for video_id, video_scores in scores.items():
        features = np.load(workspace / "data" / "synthetic" / "i3d" / "test" / f"{video_id}_i3d.npy", mmap_mode="r")
        assert video_scores.dtype == np.float32 and video_scores.shape == (len(features), 1)


def test_debug_runs_three_steps_evaluating_each(workspace):
    completed = run_cli(workspace, "debug", "--debug")
    assert [step for step, _ in score_rows(workspace / "logs" / "debug" / "synthetic_s3r_i3d.score")][0] == 1
    assert re.search(r"\|\s+3\s+\|", completed.stdout)  # step 3 in the final table


def test_a_published_layout_state_dict_loads_for_inference(workspace, tmp_path):
    torch.manual_seed(1)
    published = tmp_path / "published.pth"
    torch.save(S3R(FEATURE_SIZE).state_dict(), published)
    # Its outputs in a folder of its own: the trained checkpoint's inference, which other tests read, stays whole.
    completed = run_cli(workspace, "published", "--inference", "--resume", str(published), cwd=tmp_path)
    assert "Performance on synthetic" in completed.stdout


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR", path


def test_training_writes_the_curve_csv_and_png(trained):
    workspace, _ = trained
    logs = workspace / "logs" / "e2e"
    with open(logs / "synthetic_s3r_i3d.curve.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["step", "loss", "AUC", "best"]
    assert [int(row["step"]) for row in rows] == list(range(0, 41))  # step 0: the initial evaluation
    assert rows[0]["loss"] == "" and all(math.isfinite(float(row["loss"])) for row in rows[1:])
    evaluated = [(int(row["step"]), float(row["AUC"])) for row in rows if row["AUC"]]
    assert [step for step, _ in evaluated] == [0] + list(range(31, 41))
    best = [int(row["step"]) for row in rows if row["best"] == "1"]
    best_step, best_auc = score_rows(logs / "synthetic_s3r_i3d.score")[-1]
    assert best == [best_step] and dict(evaluated)[best_step] * 100 == pytest.approx(best_auc, abs=5e-4)
    assert_png(logs / "synthetic_s3r_i3d.curve.png")


def anomalous_test_videos(workspace):
    ground_truth = json.loads((workspace / "data" / "synthetic" / "synthetic_ground_truth.testing.json").read_text())
    return sorted(video_id for video_id, entry in ground_truth.items() if any(entry["labels"]))


def test_inference_prints_every_metric_and_writes_metrics_json(inferred):
    workspace, output, completed = inferred
    published = re.search(r"\|\s*synthetic\s*\|\s*S3R\s*\|\s*I3D\s*\|\s*([\d.]+)\s*\|", completed.stdout)
    everything = completed.stdout.index("All metrics on synthetic")
    assert published and published.start() < everything  # the published table first, unchanged
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["metric"] == "AUC" and metrics["value"] == pytest.approx(metrics["frame_auc"], abs=1e-12)
    assert float(published.group(1)) == pytest.approx(metrics["frame_auc"] * 100, abs=5e-4)
    for key, label in (("frame_auc", "frame AUC"), ("anomalous_video_auc", "AUC, anomalous videos only"),
                       ("ap_stepwise", "AP step-wise"), ("ap_trapezoidal", "AP trapezoidal"),
                       ("false_alarm_rate", "false-alarm rate, normal videos @ 0.5")):
        assert 0.0 <= metrics[key] <= 1.0
        row = re.search(re.escape(label) + r"[^|]*\|\s*([\d.]+)\s*\|", completed.stdout[everything:])
        assert row and float(row.group(1)) == pytest.approx(metrics[key] * 100, abs=5e-4), label
    assert metrics["anomalous_videos"] == len(anomalous_test_videos(workspace))
    assert "per_class_auc" not in metrics  # synthetic ids carry no class


def test_inference_writes_roc_pr_and_one_picture_per_anomalous_video(inferred):
    workspace, output, _ = inferred
    for name in ("roc.png", "pr.png", "score_curves_overview.png"):
        assert_png(output / name)
    pictures = sorted(path.stem for path in (output / "score_curves").iterdir())
    assert pictures == anomalous_test_videos(workspace)  # the stale picture is gone
    for video_id in pictures:
        assert_png(output / "score_curves" / f"{video_id}.png")


def test_plot_videos_none_writes_no_score_curves(trained, inferred):
    workspace, output, _ = inferred
    checkpoint = workspace / "checkpoint" / "e2e" / "synthetic_s3r_i3d_best.pth"
    run_cli(workspace, "e2e", "--inference", "--resume", str(checkpoint), "--plot_videos", "none")
    assert list((output / "score_curves").iterdir()) == [] and not (output / "score_curves_overview.png").exists()
    assert (output / "metrics.json").is_file()


def test_a_state_saved_before_losses_were_recorded_resumes(trained):
    workspace, _ = trained
    state = load_checkpoint(workspace / "checkpoint" / "e2e" / "synthetic_s3r_i3d.state")
    del state["losses"]
    old = workspace / "checkpoint" / "old-state.state"
    torch.save(state, old)
    run_cli(workspace, "old", "--max_epoch", "42", "--evaluate_min_step", "30", "--resume", str(old))
    with open(workspace / "logs" / "old" / "synthetic_s3r_i3d.curve.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["loss"] == "" for row in rows] == [True] * 41 + [False] * 2  # steps 1-40 unknown, 41-42 recorded


def test_a_dictionary_learned_with_other_iterations_is_the_one_the_trainer_reads(workspace, tmp_path):
    """--max_iter N names the dictionary file; the trainer finds it with --dictionary_max_iter N, and only then."""
    dictionaries = tmp_path / "dictionary"
    status, stdout, stderr = run_tool(
        "learn_dictionary.py", "--dataset", "synthetic", "--feature_size", str(FEATURE_SIZE), "--max_iter", "3",
        "--root_path", str(workspace / "data"), "--dictionary_path", str(dictionaries),
    )
    assert status == 0, stderr
    learned = next(line[len("wrote "):] for line in stdout.splitlines() if "taskaware" in line)
    assert learned.endswith(".omp.3iters.90pct.npy")
    arguments = ["--dictionary_path", str(dictionaries), "--debug", "--batch_size", "4"]
    missing = run_cli(workspace, "iterations-default", *arguments, check=False)
    assert missing.returncode == 2 and "100iters.90pct.npy: dictionary file not found" in missing.stderr
    run_cli(workspace, "iterations-3", *arguments, "--dictionary_max_iter", "3")
