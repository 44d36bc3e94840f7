"""Convolution kernels: every candidate computes the published function; the one-time choice; bf16 where native.

Tolerances. Snippet scores lie in [0, 1] and pass through a dozen float32 layers whose sums have at most 3·C
terms: any summation order (BLAS, oneDNN, ATen's own loops; 1 or 2 threads; ATEN_CPU_CAPABILITY default, avx2
or avx512) moves them by a few 1e-7, hence atol 1e-6 (rtol 1e-5 for other outputs, as the parity tests).
Gradients are compared in float64, where two summation orders agree to about K·2^-52 of the terms' scale
(K ≤ 10^4 terms here), so 1e-9 of the largest gradient bounds any difference with a wide margin. The scale is
that of all the gradients, not of each: a gradient whose true value is zero (a bias before training-mode
BatchNorm) holds only rounding noise of the terms it sums, in float32 as large as 1e-4.
"""

import os
import time

import pytest
import torch

from anomaly import hardware
from anomaly.precision import resolve_precision
from anomaly.models import S3R
from anomaly.models.kernel_choice import MIN_FLOPS, KernelChoice
from anomaly.models.aggregate import temporal_conv
from anomaly.models.packing import KERNELS, PackedChunk
from anomaly.models.s3r import PackedScorer


def trained_like(dim: int = 64, **computation) -> S3R:
    """The same weights whatever ``computation`` (S3R's fold_dictionary, conv_kernel, kernel_choice) says."""
    torch.manual_seed(0)
    model = S3R(dim, batch_size=2, **computation)
    with torch.no_grad():  # non-zero non-local BatchNorm, so that every branch matters
        for name, tensor in model.state_dict().items():
            if "alter.1" in name and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("num_atoms", [6, 100])  # folded into the macro branch, and not (S ≥ C)
@pytest.mark.parametrize("lengths", [[1, 9, 4, 33], [2, 7, 5]])  # rows a multiple of 4, and odd
def test_packed_scorer_kernels_equal_the_published_modules(kernel, num_atoms, lengths):
    model = trained_like(conv_kernel="conv").eval()
    videos = [torch.rand(3, length, 64) for length in lengths]
    dictionary = torch.rand(num_atoms, 64)
    scorer = PackedScorer(model, dictionary, kernel=kernel)
    assert scorer.video_block.kernels == {"branches": kernel, "conv_5": kernel}
    scores = scorer(videos, PackedChunk.plan(lengths, 3, torch.device("cpu")))
    with torch.no_grad():
        for row, video in enumerate(videos):
            expected = model.snippet_scores(video.unsqueeze(0), dictionary.unsqueeze(0))[0, :, 0]
            torch.testing.assert_close(scores[row, : video.shape[1]], expected, rtol=1e-5, atol=1e-6)


def test_an_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel must be one of matmul, conv, winograd, not 'fft'"):
        PackedScorer(trained_like().eval(), torch.rand(6, 64), kernel="fft")
    with pytest.raises(ValueError, match="kernel must be one of conv, matmul, auto, not 'fft'"):
        temporal_conv(torch.nn.Conv1d(4, 4, 3, padding=1), torch.rand(1, 4, 5), "fft")


@pytest.mark.parametrize("fold", [False, True])
def test_module_kernels_give_the_same_outputs_and_gradients(fold):
    """A training forward and backward with conv1d as one matrix product against F.conv1d (the published)."""
    video = torch.rand(4, 3, 32, 64, dtype=torch.float64)
    dictionary = torch.rand(6, 64, dtype=torch.float64).expand(4, -1, -1)
    results = {}
    for kernel in ("conv", "matmul"):
        model = trained_like(fold_dictionary=fold, conv_kernel=kernel).double()
        torch.manual_seed(1)  # the same dropout masks
        outputs = model(video, dictionary)
        sum(value.sum() for value in outputs.values()).backward()
        results[kernel] = outputs, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    (published, published_grads), (matmul, matmul_grads) = results["conv"], results["matmul"]
    for name, expected in published.items():
        torch.testing.assert_close(matmul[name], expected, rtol=1e-9, atol=1e-12, msg=name)
    assert matmul_grads.keys() == published_grads.keys()
    scale = max(float(grad.abs().max()) for grad in published_grads.values())
    for name, expected in published_grads.items():
        torch.testing.assert_close(matmul_grads[name], expected, rtol=0, atol=1e-9 * scale, msg=name)


def test_float32_module_kernels_agree_to_rounding():
    video, dictionary = torch.rand(2, 3, 20, 64), torch.rand(6, 64).expand(2, -1, -1)
    scores = {}
    with torch.no_grad():
        for kernel in ("conv", "matmul", "auto"):
            scores[kernel] = trained_like(conv_kernel=kernel).eval().snippet_scores(video, dictionary)
    torch.testing.assert_close(scores["matmul"], scores["conv"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores["auto"], scores["conv"], rtol=1e-5, atol=1e-6)


def test_the_choice_is_the_faster_candidate_measured_once_and_saved():
    calls = []

    def candidate(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)

        return run

    candidates = {"slow": candidate("slow", 0.03), "fast": candidate("fast", 0.0)}
    cpu, big = torch.device("cpu"), MIN_FLOPS
    choice = KernelChoice(repeats=2)
    assert choice.fastest("problem", candidates, cpu, "slow", big) == "fast"
    assert calls.count("slow") == 3 and calls.count("fast") == 3  # one untimed run and two timed each
    assert choice.fastest("problem", candidates, cpu, "slow", big) == "fast" and len(calls) == 6
    assert choice.fastest("small", candidates, cpu, "slow", big / 2) == "slow" and len(calls) == 6
    even = {"a": candidate("a", 0.02), "b": candidate("b", 0.02)}  # within the margin: the default stays
    assert choice.fastest("even", even, cpu, "b", big) == "b"
    saved = choice.state_dict()
    assert list(saved.values()) == ["fast", "slow", "b"] and "problem" in next(iter(saved))
    measured = choice.measured()
    assert measured[next(iter(saved))][0] == "fast" and set(measured[next(iter(saved))][1]) == {"slow", "fast"}

    resumed = KernelChoice()  # a resumed run keeps the first run's kernels, without measuring
    resumed.load_state_dict({key: "slow" for key in saved}, candidates)
    runs = len(calls)
    assert resumed.fastest("problem", candidates, cpu, "fast", big) == "slow" and len(calls) == runs
    with pytest.raises(ValueError, match=r"^the kernel chosen for 'x' is 'quick', not one of slow, fast$"):
        resumed.load_state_dict({"x": "quick"}, candidates)


def test_a_model_measures_with_the_kernel_choice_it_is_given():
    choice = KernelChoice()
    model = S3R(64, batch_size=1, kernel_choice=choice)
    with torch.no_grad():
        model.eval().snippet_scores(torch.rand(1, 1, 8, 64), torch.rand(1, 6, 64))
    assert model.kernel_choice is choice
    assert any(key.startswith("module conv1d weight=(64, 64, 3)") for key in choice.state_dict())  # conv_5
    published = model.published_computation()  # F.conv1d and no folding, the same choice and weights
    assert published.kernel_choice is choice and published.conv_kernel == "conv" and not published.fold_dictionary
    assert published.video_classifier[0].weight is model.video_classifier[0].weight  # the same weights, shared


def test_a_kernel_already_chosen_is_looked_up_without_drawing_a_measurement_sample():
    model = S3R(64, batch_size=1).eval()
    video, dictionary = torch.rand(1, 1, 8, 64), torch.rand(1, 6, 64)
    with torch.no_grad():
        model.snippet_scores(video, dictionary)  # the choices made (or kept as defaults) here
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            model.snippet_scores(video, dictionary)
    assert not [event.key for event in profile.key_averages() if event.key in ("aten::uniform_", "aten::normal_")]


def pretend_cpu(monkeypatch, flags: str) -> None:
    """This process sees a CPU named "Test CPU" with these /proc/cpuinfo flags."""
    info = hardware.CpuInfo("Test CPU", "TestVendor", frozenset(flags.split()), "AVX512")
    monkeypatch.setattr(hardware, "cpu_info", lambda: info)
    monkeypatch.setattr("anomaly.precision.cpu_info", lambda: info)


@pytest.mark.parametrize("flags, expected", [("avx2 avx512f", "fp32"), ("avx2 avx512f avx512_bf16", "bf16"), ("amx_bf16", "bf16")])
def test_bf16_runs_on_a_cpu_only_where_it_is_native(monkeypatch, flags, expected):
    pretend_cpu(monkeypatch, flags)
    precision, note = resolve_precision("bf16", torch.device("cpu"))
    assert precision == expected
    if expected == "fp32":
        assert note == ("--precision bf16: this CPU (Test CPU) has neither AVX512-BF16 nor AMX, so bf16 would be "
                        "slower than fp32 here; running fp32")
    else:
        assert note == ""
    assert resolve_precision("fp32", torch.device("cpu")) == ("fp32", "")


@pytest.mark.parametrize("flags, expected", [("avx2", "fp32"), ("avx2 avx512f", "fp32"), ("avx2 avx512f avx512_bf16", "bf16"),
                                             ("amx_tile amx_bf16", "bf16")])
def test_auto_precision_is_bf16_exactly_where_it_is_native_and_says_what_it_became(monkeypatch, flags, expected):
    pretend_cpu(monkeypatch, flags)
    precision, note = resolve_precision("auto", torch.device("cpu"))
    assert precision == expected
    reason = "computes bf16 natively" if expected == "bf16" else "has neither AVX512-BF16 nor AMX"
    assert note == f"--precision auto: {expected} (this CPU (Test CPU) {reason})"


def test_cpu_info_names_this_cpu_and_the_kernels_pytorch_runs():
    """The kernel level reported is the one ATen dispatches to: never one whose instructions the CPU lacks, and the
    one ATEN_CPU_CAPABILITY asks for when the CPU has it."""
    info = hardware.cpu_info()
    assert info.model in info.describe() and hardware.blas_library() in info.describe()
    assert info.capability == torch.backends.cpu.get_cpu_capability()
    needs = {"AVX2": "avx2", "AVX512": "avx512f"}  # /proc/cpuinfo flags (Linux)
    if info.flags and info.capability in needs:
        assert needs[info.capability] in info.flags
    requested = os.environ.get("ATEN_CPU_CAPABILITY", "").upper()
    if requested == "DEFAULT" or needs.get(requested) in info.flags:
        assert info.capability == requested
