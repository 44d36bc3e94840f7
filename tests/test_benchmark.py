"""The benchmark runs and reports both paths; the fast evaluation equals the one-at-a-time one; bf16 stays close."""

import json
import re

import numpy as np
import pytest
import torch

from anomaly.engine import DeviceTestSet, evaluate
from anomaly.benchmark.inputs import SHAPES, subsample, synthetic_test_set
from anomaly.engine.evaluator import (
    CUDA_MAX_SNIPPETS,
    activation_bytes_per_snippet,
    auto_max_snippets,
    plan_chunks,
)
from anomaly.models import S3R
from anomaly.models.packing import GAP, PackedChunk
from anomaly.models.s3r import PackedScorer
from tests.conftest import (
    FORWARD_REL,
    assert_close_to_scale,
    assert_same_evaluation,
    run_tool,
    trained_like_batchnorm,
)

LENGTHS = (1, 2, 5, 17, 40, 3, 2, 9, 33, 12, 12, 64, 4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return trained_like_batchnorm(S3R(64, batch_size=2)).eval()


@pytest.fixture(scope="module")
def test_set():
    return synthetic_test_set(LENGTHS, num_crops=3, channels=64, num_atoms=6, device=torch.device("cpu"), seed=1)


def test_quick_benchmark_prints_both_paths_and_their_ratios(tmp_path):
    report = tmp_path / "benchmark.json"
    status, out, stderr = run_tool(
        "benchmark.py", "--quick", "--device", "cpu", "--json", str(report), subprocess=True, cwd=tmp_path, timeout=120
    )
    assert status == 0, stderr
    assert "precision fp32" in out and "device cpu" in out
    assert re.search(r"one at a time\s+fast\s+ratio", out)
    for row in ("train step (ms)", "evaluation (ms)", "protocol (h)", "peak memory, evaluation (MiB)", "peak memory, training (MiB)"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        one, fast, ratio = re.findall(r"[\d,]+\.\d+", line)[-3:]
        assert float(one.replace(",", "")) > 0 and float(fast.replace(",", "")) > 0
        assert line.rstrip().endswith("x") and float(ratio) > 0
    assert "where the time goes" in out and "video Aggregate: conv_5" in out and "classifier" in out
    assert "device cpu (" in out and "ATen kernels" in out  # the CPU named, with its instruction sets
    for row in ("train step (GFLOP/s)", "train step (% of peak)", "evaluation (GFLOP/s)", "evaluation (% of peak)"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert all(float(value) > 0 for value in re.findall(r"[\d,]+\.\d+", line)[-2:])
    assert re.search(r"peak \(fp32, GFLOP/s", out) and "convolution 2048->2048" in out and "matrix product" in out
    assert re.search(r"evaluation, fast: .*%", out)  # operator time by library
    assert re.search(r"packed conv_5 .*: (matmul|conv) \(", out)  # the kernels chosen (at this size: the defaults)

    result = json.loads(report.read_text())
    assert set(result["rows"]) >= {"train step (ms)", "evaluation (ms)", "protocol (h)", "evaluation (GFLOP/s)"}
    assert len(result["peak_gflops"]) == 2 and min(result["peak_gflops"].values()) > 0
    # Scores are sigmoids (scale <= 1): the forward bound; the AUC as in assert_same_evaluation.
    assert result["checks"]["max |score fast - one at a time|"] < FORWARD_REL
    assert result["checks"]["|AUC fast - one at a time|"] < 1e-6
    assert result["test_videos"] == 24 and result["full_test_snippets"] == 8932


def test_benchmark_shapes_have_the_published_sizes():
    shanghaitech, ucf_crime = SHAPES["shanghaitech"], SHAPES["ucf-crime"]
    assert len(shanghaitech.test_lengths) == 199 and sum(shanghaitech.test_lengths) == 8932
    assert (min(shanghaitech.test_lengths), max(shanghaitech.test_lengths)) == (13, 112)
    assert len(ucf_crime.test_lengths) == 290 and abs(sum(ucf_crime.test_lengths) - 69_600) < 300
    picked = subsample(shanghaitech.test_lengths, 40)
    assert len(picked) == 40 and min(picked) == 13 and max(picked) == 112


@pytest.mark.parity
@pytest.mark.parametrize("max_snippets", [1, 8, 40, 100, 4096])
def test_packed_evaluation_equals_one_at_a_time_for_any_chunking(model, test_set, max_snippets):
    alone = evaluate(model, test_set, one_at_a_time=True)
    assert_same_evaluation(evaluate(model, test_set, max_snippets=max_snippets), alone)


def test_bf16_evaluation_is_close_to_fp32(model, test_set):
    fp32 = evaluate(model, test_set, precision="fp32")
    bf16 = evaluate(model, test_set, precision="bf16")
    alone_bf16 = evaluate(model, test_set, one_at_a_time=True, precision="bf16")
    # bfloat16 keeps 8 significant bits (u = 2^-9 ≈ 2e-3 per rounding); about ten layers of such rounding reach
    # the scores, which are sigmoids (scale <= 1): within 10 u ≈ 2e-2 of fp32.
    for video_id, expected in fp32.snippet_scores.items():
        assert bf16.snippet_scores[video_id].dtype == np.float32
        np.testing.assert_allclose(bf16.snippet_scores[video_id], expected, atol=2e-2)
        np.testing.assert_allclose(alone_bf16.snippet_scores[video_id], expected, atol=2e-2)
    assert bf16.value == pytest.approx(fp32.value, abs=0.02)


def test_tf32_evaluation_equals_fp32_on_cpu(model, test_set):
    """TF32 is a CUDA matmul mode: on the CPU the same float32 kernels run, so the scores are identical."""
    fp32 = evaluate(model, test_set)
    tf32 = evaluate(model, test_set, precision="tf32")
    for video_id, expected in fp32.snippet_scores.items():
        np.testing.assert_array_equal(tf32.snippet_scores[video_id], expected)
    assert tf32.value == fp32.value


@pytest.mark.parity
def test_padding_rows_never_reach_a_video(model, test_set):
    """A video's scores do not change with the chunk's other videos or with garbage left in freed memory."""
    dictionary = test_set.dictionary[0]
    scorer = PackedScorer(model, dictionary)
    short = test_set.videos[0]  # 1 snippet
    alone = scorer([short], PackedChunk.plan([1], 3, test_set.device))[0, :1]
    big = [test_set.videos[index] for index in (11, 0, 4)]
    together = scorer(big, PackedChunk.plan([video.shape[1] for video in big], 3, test_set.device))
    assert_close_to_scale(together[1, :1], alone, name="the one-snippet video")


def test_chunk_plan_covers_every_video_once_within_the_limit():
    lengths = [5, 80, 13, 13, 14, 40, 41, 300, 7, 7, 7]
    for max_snippets in (1, 50, 200, 10_000):
        chunks = plan_chunks(lengths, max_snippets, overhead=24)
        assert sorted(index for chunk in chunks for index in chunk) == list(range(len(lengths)))
        for chunk in chunks:
            padded = len(chunk) * (max(lengths[index] for index in chunk) + GAP)
            assert len(chunk) == 1 or padded <= max_snippets
        ordered = [lengths[index] for chunk in chunks for index in chunk]
        assert ordered == sorted(ordered)
    # With room for everything, the plan still splits very different lengths apart (padding costs more).
    assert len(plan_chunks([10] * 20 + [1000], 100_000, overhead=24)) == 2


def test_auto_chunk_size_keeps_the_ucf_crime_test_set_within_24_gb():
    lengths = SHAPES["ucf-crime"].test_lengths
    features = sum(lengths) * 10 * 2048 * 4
    assert 5.5e9 < features < 5.9e9
    per_snippet = activation_bytes_per_snippet(10, 2048, 400, torch.float32)
    assert features + CUDA_MAX_SNIPPETS * per_snippet < 20e9  # plus the model (0.3 GB) and allocator slack


def test_auto_chunk_size_on_cpu(test_set):
    assert auto_max_snippets(test_set) >= max(LENGTHS) + GAP


def test_device_test_set_from_tensors_matches_the_loader_layout(test_set):
    assert isinstance(test_set, DeviceTestSet)
    assert [video.shape for video in test_set.videos] == [(3, length, 64) for length in LENGTHS]
    assert test_set.dictionary.shape == (1, 6, 64)
    assert float(test_set.positives.sum() + test_set.negatives.sum()) == 16 * sum(LENGTHS)


@pytest.mark.parity
def test_folding_the_dictionary_changes_nothing_but_rounding():
    """S3R.fold_dictionary (the default) against the published order of operations: the same function.

    In float32, as models train and evaluate: training-mode outputs and eval scores within FORWARD_REL of their
    scale. Gradients are compared in float64. A gradient element is a sum over videos, crops and snippets whose terms
    can cancel: the macro branch's non-local key bias sums terms of total magnitude up to 100 into values of 0.07 to
    0.43, so its float32 rounding is relative to those terms, not to the tensor's scale that assert_close_to_scale
    bounds (measured on an AMD EPYC: each float32 order lies 2 to 3e-5 from the float64 gradient there, over 1e-4 of the
    scale 0.43; which order lies nearer depends on the kernels). In float64 rounding is 2^-29 times smaller and a
    difference of the function itself stands out: the two orders agree within 1e-9 of the largest gradient (sums of
    K <= 10^4 terms round by about K·2^-52 of their terms, amplified by the chain of layers; measured 1e-14), the
    bound test_kernels holds the convolution kernels' gradients to.
    """
    def both_orders(model):
        return {True: model, False: model.published_computation()}

    torch.manual_seed(0)
    # One convolution kernel for both orders: only folding differs (the kernels: test_kernels).
    folded = trained_like_batchnorm(S3R(64, batch_size=2, conv_kernel="conv"))
    video, dictionary = torch.rand(4, 3, 32, 64), torch.rand(6, 64)
    results = {}
    for fold, model in both_orders(folded).items():
        torch.manual_seed(1)  # the same dropout masks
        results[fold] = model(video, dictionary.expand(4, -1, -1))
    assert results[True].keys() == results[False].keys()
    for name, expected in results[False].items():
        assert_close_to_scale(results[True][name], expected, name=name)

    gradients = {}
    for fold, model in both_orders(folded.double()).items():
        model.zero_grad()
        torch.manual_seed(1)
        outputs = model(video.double(), dictionary.double().expand(4, -1, -1))
        sum(value.sum() for value in outputs.values()).backward()
        gradients[fold] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert gradients[True].keys() == gradients[False].keys()
    largest = max(float(gradient.abs().max()) for gradient in gradients[False].values())
    for name, expected in gradients[False].items():
        torch.testing.assert_close(gradients[True][name], expected, rtol=0, atol=1e-9 * largest, msg=name)

    with torch.no_grad():
        scores = {
            fold: model.snippet_scores(video[:1, :, :7], dictionary.unsqueeze(0))
            for fold, model in both_orders(folded.float().eval()).items()
        }
    assert_close_to_scale(scores[True], scores[False], name="eval scores")


@pytest.mark.parity
@pytest.mark.parametrize("num_atoms", [6, 64, 100])
def test_packed_scores_with_more_atoms_than_channels(model, num_atoms):
    """With S ≥ C the scorer does not fold the dictionary; either way it equals the modules."""
    videos = [torch.rand(3, length, 64) for length in (1, 9, 4)]
    dictionary = torch.rand(num_atoms, 64)
    scorer = PackedScorer(model, dictionary)
    assert scorer.fold == (num_atoms < 64)
    scores = scorer(videos, PackedChunk.plan([1, 9, 4], 3, torch.device("cpu")))
    with torch.no_grad():
        for row, video in enumerate(videos):
            expected = model.snippet_scores(video.unsqueeze(0), dictionary.unsqueeze(0))[0, :, 0]
            assert_close_to_scale(scores[row, : video.shape[1]], expected, name=f"video {row}")


MEMORY_SNIPPETS = 80  # the simulated GPU holds chunks of at most this many padded snippet positions (longest: 64 + GAP)


def simulate_gpu_memory(monkeypatch):
    """Make PackedScorer raise CUDA's out-of-memory error for a chunk of more than MEMORY_SNIPPETS padded positions
    (videos × pitch), as a GPU of that size would; returns the list of the chunk sizes it did score."""
    real = PackedScorer.__call__
    scored = []

    def within_memory(self, videos, chunk, *args, **kwargs):
        size = len(chunk.lengths) * chunk.pitch
        if size > MEMORY_SNIPPETS:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated): {size} padded snippets")
        scored.append(size)
        return real(self, videos, chunk, *args, **kwargs)

    monkeypatch.setattr(PackedScorer, "__call__", within_memory)
    return scored


def test_evaluation_that_runs_out_of_gpu_memory_retries_with_smaller_chunks(model, test_set, monkeypatch):
    alone = evaluate(model, test_set, one_at_a_time=True)
    assert any(len(chunk.lengths) * chunk.pitch > MEMORY_SNIPPETS for _, chunk in test_set.plan(1000))
    scored = simulate_gpu_memory(monkeypatch)
    result = evaluate(model, test_set, max_snippets=1000)
    assert_same_evaluation(result, alone)
    assert scored and max(scored) <= MEMORY_SNIPPETS
    assert len(scored) < len(LENGTHS)  # still in chunks of several videos, not one at a time


def test_evaluation_reports_out_of_memory_when_one_video_does_not_fit(model, monkeypatch):
    """Chunks shrink down to one video each; when even one video does not fit, the error reaches the caller."""
    long = synthetic_test_set((200, 3, 5), num_crops=3, channels=64, num_atoms=6, device=torch.device("cpu"), seed=2)
    simulate_gpu_memory(monkeypatch)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        evaluate(model, long, max_snippets=1000)


def run_benchmark_tool(*args):
    return run_tool("benchmark.py", *args)


@pytest.mark.parametrize("option, value, problem", [
    ("--batch-size", "0", "--batch-size must be an integer at least 1, not 0"),
    ("--steps", "0", "--steps must be an integer at least 1, not 0"),
    ("--repeats", "0", "--repeats must be an integer at least 1, not 0"),
    ("--warmup", "-1", "--warmup must be an integer at least 0, not -1"),
    ("--test-videos", "-3", "--test-videos must be an integer at least 0, not -3"),
    ("--feature-size", "33", "--feature-size must be a positive multiple of 32 (the model's GroupNorm runs 8 groups "
                             "on C / 4 channels), not 33"),
    ("--threads", "zero", "argument --threads: invalid int value: 'zero' (see s3r benchmark --help)"),
    ("--device", "foo", "--device foo: not a torch device (cpu, cuda, cuda:1, ...)"),
    ("--device", "tpu", "--device tpu: not a torch device (cpu, cuda, cuda:1, ...)"),
    ("--json", "/nonexistent/x.json", "/nonexistent/x.json: the folder /nonexistent does not exist (--json)"),
])
def test_the_benchmark_refuses_impossible_options_before_any_work(option, value, problem):
    status, stdout, stderr = run_benchmark_tool("--quick", "--device", "cpu", option, value)
    assert (status, stdout, stderr) == (2, "", f"s3r benchmark: {problem}\n")


def test_the_benchmark_refuses_a_cuda_device_it_does_not_have(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status, _, stderr = run_benchmark_tool("--quick", "--device", "cuda")
    assert (status, stderr) == (2, "s3r benchmark: --device cuda: no CUDA device is available here (use --device cpu)\n")


def test_the_benchmark_needs_enough_training_videos_for_a_batch():
    status, stdout, stderr = run_benchmark_tool("--quick", "--device", "cpu", "--train-videos", "3", "--batch-size", "4")
    assert status == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith("s3r benchmark: 3 resident normal training videos cannot fill a batch of 4")
