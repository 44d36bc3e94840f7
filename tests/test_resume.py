"""A run killed at any step and resumed ends exactly where an uninterrupted run ends (CPU, fixed seed).

The training subprocess is killed with SIGKILL at steps drawn from a generator seeded with KILL_SEED (and once
stopped with SIGTERM, which saves the state and exits with 143), then continued with ``--resume <state file>``. While it runs, the state file is read
again and again: it must always load.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from anomaly.engine.checkpoint import load_checkpoint
from tests.conftest import REPO, cli_arguments

SCRIPT = REPO / "tools" / "trainval_anomaly_detector.py"
STEPS = 18
KILL_SEED = 2024
RUN_OPTIONS = ("--max_epoch", str(STEPS), "--evaluate_min_step", "0", "--save_freq", "1", "--batch_size", "16")


def start(workspace, version, *extra):
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *cli_arguments(workspace, version, *RUN_OPTIONS, *extra)],
        cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=environment,
    )


def paths(workspace, version):
    return (
        workspace / "checkpoint" / version / "synthetic_s3r_i3d.state",
        workspace / "logs" / version / "synthetic_s3r_i3d.score",
    )


def saved_step(state_file):
    """The step of the saved state; every read must succeed (the file is replaced atomically)."""
    if not state_file.exists():
        return 0
    return int(load_checkpoint(state_file)["step"])


def interrupt_at(process, state_file, step, signal_number):
    """Send ``signal_number`` once the saved state reaches ``step``; return the process's exit status."""
    deadline = time.time() + 240
    while process.poll() is None and saved_step(state_file) < step:
        assert time.time() < deadline, "the training run did not progress"
        time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signal_number)
    process.wait(timeout=120)
    return process.returncode


def score_columns(score_file):
    """Step, AUC and training loss of every row (elapsed and wall-clock times differ between runs)."""
    rows = re.findall(r"^\|\s+(\d+)\s+\|\s+([\d.]+)\s+\|\s+([\d.]+)\s+\|", score_file.read_text(), re.MULTILINE)
    return rows


@pytest.fixture(scope="module")
def uninterrupted(workspace):
    process = start(workspace, "whole")
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-2000:]
    return paths(workspace, "whole")


def test_killed_and_resumed_runs_end_equal_to_an_uninterrupted_run(workspace, uninterrupted):
    state_file, score_file = paths(workspace, "killed")
    seed = int(os.environ.get("KILL_SEED", KILL_SEED))  # KILL_SEED=<n> reproduces (or varies) the kill points
    kill_steps = sorted(int(step) for step in np.random.default_rng(seed).choice(np.arange(2, STEPS - 1), 3, replace=False))
    interruptions = [(step, signal.SIGKILL) for step in kill_steps[:2]] + [(kill_steps[2], signal.SIGTERM)]
    where = f"kill points {kill_steps} (KILL_SEED={seed})"
    process = start(workspace, "killed")
    for step, signal_number in interruptions:
        status = interrupt_at(process, state_file, step, signal_number)
        if signal_number == signal.SIGTERM and status != 0:
            assert status == 128 + signal.SIGTERM, where
            assert "resume with --resume" in process.stderr.read().decode(), where
        process = start(workspace, "killed", "--resume", str(state_file))
    assert process.wait(timeout=300) == 0, f"{where}: " + process.stderr.read().decode()[-2000:]

    expected_state, expected_score = uninterrupted
    final, expected = load_checkpoint(state_file), load_checkpoint(expected_state)
    assert final["step"] == expected["step"] == STEPS, where
    for name, tensor in expected["model"].items():
        assert torch.equal(final["model"][name], tensor), f"{name} after {where}"
    assert [(entry["step"], entry["value"], entry["loss"]) for entry in final["history"]] == [
        (entry["step"], entry["value"], entry["loss"]) for entry in expected["history"]
    ], where
    assert score_columns(expected_score), "the uninterrupted run's .score file has no rows"
    assert score_columns(score_file) == score_columns(expected_score), where
    assert len(final["losses"]) == STEPS and final["losses"] == expected["losses"], where  # every step's loss
    curve = score_file.with_name("synthetic_s3r_i3d.curve.csv")
    assert curve.read_text() == expected_score.with_name("synthetic_s3r_i3d.curve.csv").read_text(), where
    best = max(entry["value"] for entry in expected["history"])
    assert max(entry["value"] for entry in final["history"]) == best, where
