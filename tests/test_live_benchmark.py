"""s3r benchmark-live: the causal scores it measures are those s3r watch gives a stream, a window covering every
video gives the offline numbers, and the throughput table says what a snippet costs here."""

import re

import numpy as np
import pytest
import torch

from anomaly.engine.evaluator import DeviceTestSet
from anomaly.live.benchmark import causal_scores, causality
from anomaly.live.causal import CausalScores
from anomaly.models import S3R
from anomaly.precision import resolve_precision
from tests.conftest import FEATURE_SIZE, assert_close_to_scale, run_tool

CHANNELS, CROPS, LENGTHS = 64, 2, (1, 2, 5, 9, 13)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return S3R(CHANNELS).eval()


@pytest.fixture(scope="module")
def test_set():
    generator = torch.Generator().manual_seed(1)
    videos = [torch.rand(CROPS, length, CHANNELS, generator=generator) for length in LENGTHS]
    labels = np.concatenate([np.repeat([0, 1] * length, 8)[: 16 * length] for length in LENGTHS])  # both classes
    dictionary = torch.rand(6, CHANNELS, generator=generator)
    return DeviceTestSet.from_tensors([f"v{index}" for index in range(len(LENGTHS))], videos, dictionary,
                                      labels.astype(np.float32), torch.device("cpu"))  # fmt: skip


@pytest.mark.parametrize("window, lookahead", [(1, 0), (4, 0), (4, 4), (3, 1)])
def test_the_benchmark_scores_each_snippet_as_a_stream_is_scored(model, test_set, window, lookahead):
    measured = causal_scores(model, test_set, window, lookahead)
    for video, scores in zip(test_set.videos, measured):
        streamed = CausalScores(lambda clip: model.snippet_scores(clip.unsqueeze(0), test_set.dictionary)[0, :, 0],
                                window, lookahead)  # fmt: skip
        given = []
        with torch.no_grad():
            for snippet in range(video.shape[1]):
                given += streamed.push(video[:, snippet])
            given += streamed.finish()
        assert [snippet for snippet, _ in given] == list(range(video.shape[1]))
        assert_close_to_scale(scores, torch.tensor([score for _, score in given]), name=f"W={window} L={lookahead}")


def test_windows_that_cover_every_video_give_the_offline_numbers(model, test_set):
    result = causality(model, test_set, "tiny", windows=[2, 13], lookaheads=[0, 12], log=lambda line: None)
    offline, *rows = result.rows
    assert [(row.window, row.lookahead) for row in rows] == [(2, 0), (2, 12), (13, 0), (13, 12)]
    covering = rows[-1]
    assert covering.whole == 1.0 and (covering.auc, covering.ap) == pytest.approx((offline.auc, offline.ap), abs=1e-9)
    assert rows[0].whole == pytest.approx(2 / sum(LENGTHS))  # the videos of 1 and 2 snippets, at their last snippet
    assert re.search(r"\| offline\s+\| \(whole video\)", result.table())


def test_the_command_prints_the_causality_table_of_a_dataset(workspace, tmp_path):
    checkpoint = tmp_path / "s3r.pth"
    torch.manual_seed(0)
    torch.save(S3R(FEATURE_SIZE).state_dict(), checkpoint)
    status, out, err = run_tool(
        "benchmark_live.py", "--dataset", "synthetic", "--checkpoint", str(checkpoint), "--feature_size",
        str(FEATURE_SIZE), "--root_path", str(workspace / "data"), "--dictionary_path", str(workspace / "dictionary"),
        "--windows", "4", "1000", "--lookaheads", "0", "1000", "--no_throughput",
    )  # fmt: skip
    assert status == 0, err
    rows = re.findall(r"^\| +(\S+) +\| +(\S+(?: video\))?) +\| +([\d.]+) \| +([\d.]+) \|", out, re.MULTILINE)
    assert [row[:2] for row in rows] == [("offline", "(whole video)"), ("4", "0"), ("4", "1000"), ("1000", "0"),
                                         ("1000", "1000")]  # fmt: skip
    assert rows[-1][2:] == rows[0][2:]  # the window that covers every video: the offline AUC and AP


def test_the_throughput_says_what_a_snippet_costs_here_in_each_precision_as_it_ran():
    """One row per precision that ran: auto runs bf16 where it is native (a row of its own) and fp32 elsewhere (the
    fp32 row stands for it, said under the table)."""
    status, out, err = run_tool("benchmark_live.py", "--no_causality", "--crops", "1", "--repeats", "1",
                                "--precision", "fp32", "auto")  # fmt: skip
    assert status == 0, err
    ran, note = resolve_precision("auto", torch.device("cpu"))
    assert note in out  # what auto became, said before the tables
    cells = [[cell.strip() for cell in row.split("|")[1:-1]]
             for row in re.findall(r"^\| (?:fp32|bf16) .*\|$", out, re.MULTILINE)]  # fmt: skip
    times, work = cells[: len(cells) // 2], cells[len(cells) // 2 :]
    rows = [["fp32", "1"]] + ([["bf16", "1"]] if ran == "bf16" else [])
    assert [row[:2] for row in times] == [row[:2] for row in work] == rows
    for precision, _, i3d, window, share, snippet, rate, at_25, at_30 in times:
        i3d, window, snippet = (float(value.replace(",", "")) for value in (i3d, window, snippet))
        assert snippet == pytest.approx(i3d + window, abs=1)
        assert float(share) == pytest.approx(100 * window / i3d, abs=0.1)
        assert [at_25, at_30] == ["yes" if float(rate) >= fps / 16 else "no" for fps in (25, 30)]
    for precision, _, i3d_gflop, _, i3d_share, window_gflop, _, window_share in work:
        assert float(i3d_gflop) == pytest.approx(32.8, rel=0.05)  # the network's FLOPs of one crop, counted
        # A window of 16 snippets and 4 zero rows: under 2 GFLOP of products with the dictionary folded.
        assert 0.5 < float(window_gflop) < 2
        assert 0 < float(i3d_share) <= 100 and 0 < float(window_share) <= 100
    assert "live throughput: " in out and "peak GFLOP/s: fp32 " in out
    assert ("--precision auto ran fp32 here (said above): the fp32 rows are its" in out) == (ran == "fp32")


@pytest.mark.parametrize("arguments, message", [
    (["--no_causality", "--no_throughput"], "--no_causality and --no_throughput leave nothing to measure"),
    ([], "the causality table needs --checkpoint, S3R weights trained on --dataset (or --no_causality for the "
         "throughput alone)"),
    (["--no_causality", "--crops", "3"], "--crops must be one of 10, 5, 1, not 3"),
    (["--no_causality", "--precision", "fp32", "fp16"], "--precision must be one of fp32, bf16, auto, not 'fp16'"),
])
def test_impossible_options_are_one_line(arguments, message):
    assert run_tool("benchmark_live.py", *arguments) == (2, "", f"s3r benchmark-live: {message}\n")
