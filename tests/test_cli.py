"""The train/eval script end to end, on a small synthetic dataset in the real layout.

Training writes the best checkpoint, the .score log and the text log; ``--inference --resume`` on that checkpoint
reproduces the best AUC of the .score file and writes the per-video scores; ``--debug`` runs 3 steps; a
published-layout state_dict loads.
"""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly.models import S3R
from tests.conftest import FEATURE_SIZE, REPO, cli_arguments

SCRIPT = REPO / "tools" / "trainval_anomaly_detector.py"


def run_cli(workspace, version, *extra, check=True):
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *cli_arguments(workspace, version, *extra)],
        cwd=workspace, capture_output=True, text=True, env=environment, timeout=300, stdin=subprocess.DEVNULL,
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


def test_inference_reproduces_the_best_auc_and_writes_scores(trained):
    workspace, _ = trained
    checkpoint = workspace / "checkpoint" / "e2e" / "synthetic_s3r_i3d_best.pth"
    completed = run_cli(workspace, "e2e", "--inference", "--resume", str(checkpoint))
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


def test_a_published_layout_state_dict_loads_for_inference(workspace):
    torch.manual_seed(1)
    published = workspace / "published.pth"
    torch.save(S3R(FEATURE_SIZE).state_dict(), published)
    completed = run_cli(workspace, "published", "--inference", "--resume", str(published))
    assert "Performance on synthetic" in completed.stdout
