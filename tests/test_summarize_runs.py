"""tools/summarize_runs.py over three short training runs (seeds 1-3): each run's best value and step, and the
mean ± sample standard deviation (ddof=1), min and max over them, printed and in the CSV; a strip plot; bad runs
are one-line errors with exit status 2 that write nothing."""

import csv
import importlib.util
import statistics

import pytest

from anomaly.cli.command import run_command
from anomaly.engine.checkpoint import load_checkpoint
from tests.conftest import REPO, cli_arguments


def load_tool():
    spec = importlib.util.spec_from_file_location("summarize_runs", REPO / "tools" / "summarize_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def runs(workspace):
    """Three 4-step runs, evaluated at every step; their best (value, step) from the training states."""
    best = []
    for seed in SEEDS:
        version = f"seeds-{seed}"
        assert run_command("train", cli_arguments(workspace, version, "--seed", str(seed), "--max_epoch", "4",
                                   "--evaluate_min_step", "0", "--batch_size", "4")) == 0
        history = load_checkpoint(workspace / "checkpoint" / version / "synthetic_s3r_i3d.state")["history"]
        entry = max(history, key=lambda entry: entry["value"])
        best.append((entry["value"] * 100, entry["step"]))
    return workspace, best


def test_the_summary_gives_each_best_and_the_mean_and_standard_deviation(runs, capsys, tmp_path):
    workspace, best = runs
    values = [value for value, _ in best]
    assert len(set(values)) > 1  # the seeds differ, so the spread is not trivially zero
    status = TOOL.main([str(workspace / "logs" / "seeds-*"), "--output_dir", str(tmp_path / "summary")])
    printed = capsys.readouterr().out
    assert status == 0
    mean, std = statistics.mean(values), statistics.stdev(values)
    assert f"{mean:.3f} ± {std:.3f}" in printed
    assert f"| {min(values):.3f} |" in printed and f"| {max(values):.3f} |" in printed
    with open(tmp_path / "summary" / "runs_summary.csv") as file:
        rows = list(csv.DictReader(file))
    per_run = [row for row in rows if row["best_step"]]
    assert [(float(row["best_value"]), int(row["best_step"])) for row in per_run] == [
        (pytest.approx(value, abs=1e-9), step) for value, step in best
    ]
    summary = {row["run"]: row["best_value"] for row in rows if not row["best_step"]}
    assert float(summary["mean"]) == pytest.approx(mean, abs=1e-9)
    assert float(summary["std"]) == pytest.approx(std, abs=1e-9)
    assert summary["published"] == ""  # the synthetic dataset has no published figure
    png = (tmp_path / "summary" / "runs_summary.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize("case", ["missing", "not a run", "no evaluation"])
def test_bad_runs_are_one_line_errors(runs, capsys, tmp_path, case):
    workspace, _ = runs
    run = tmp_path / "run"
    if case == "not a run":
        run.mkdir()
    elif case == "no evaluation":
        run.mkdir()
        (run / "synthetic_s3r_i3d.curve.csv").write_text("step,loss,AUC,best\n0,,0.5,\n1,2.5,,\n")
    status = TOOL.main([str(workspace / "logs" / "seeds-1"), str(run), "--output_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("s3r summarize: ") and str(run) in error[0]
    assert not (tmp_path / "out").exists()
