"""How long the published protocol takes: the one-at-a-time paths against the fast ones, on one device.

The published protocol is 15,000 training steps of 2 × 32 videos (10 crops × 32 snippets × 2048 channels) and an
evaluation of the whole test split before training and after every step past 5,000 (10,001 evaluations).
This module builds synthetic inputs of those sizes (``anomaly.benchmark.inputs``) in one process on one device and
measures, for both paths:

- one at a time (the published computation): ``S3R.published_computation()`` of the same weights (the en-Normal
  reconstruction formed in full, as published, and ``F.conv1d``); a training step whose batch is made on the host
  per step (each video resampled to 32 snippets from its full length, stacked, copied to the device: the published
  loader's work without the disk), and an evaluation that scores one video at a time (``evaluate(...,
  one_at_a_time=True)``);
- fast: the model as it runs by default (``fold_dictionary=True``: the dictionary folded into the macro
  branch, about 23 % fewer FLOPs a step; ``conv_kernel="auto"``: each convolution by the kernel measured
  faster here); a training step on training data resident on the device
  (``TrainingData``), and the batched, packed evaluation (``evaluate``) in chunks of similar lengths;

the time of a step and of an evaluation, the projected protocol time, the peak memory and the ratios, plus a
check that the fast evaluation gives the same scores and where the time of one forward goes
(``anomaly.benchmark.report`` prints them).

Honest figures: the report names the CPU (model, vendor, instruction sets, PyTorch's kernel libraries), gives
each path's achieved GFLOP/s (FLOPs of its matrix products and convolutions counted by
``torch.utils.flop_counter.FlopCounterMode`` in one run, over the median time) as a share of a measured peak
(the best of a large oneDNN/cuDNN convolution and a large matrix product, in the run's precision), where each
path's compute time goes by kernel library (``torch.profiler``: ``mkldnn_*`` ops are oneDNN, matrix products
the BLAS), and the kernel chosen for each convolution (``anomaly.models.kernel_choice``).
"""

import contextlib
import copy
import os
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from anomaly import hardware
from anomaly.benchmark.inputs import (
    QUANTIZE_SIZE,
    SHAPES,
    HostBatches,
    benchmark_model,
    raw_training_videos,
    subsample,
    synthetic_test_set,
)
from anomaly.engine.evaluator import DeviceTestSet, Evaluation, auto_max_snippets, evaluate
from anomaly.engine.trainer import TrainingData, make_optimizer, train_step
from anomaly.errors import InputError, check_choice, check_range
from anomaly.hardware import resolve_device
from anomaly.layout import check_feature_size
from anomaly.measuring import PeakMemory, SectionTimer, best_time, device_name, run_times, synchronize
from anomaly.models.packing import PackedChunk
from anomaly.models.s3r import S3R, PackedScorer
from anomaly.precision import PRECISIONS, autocast, dtype_of, resolve_precision, tf32_switches

PROTOCOL_STEPS = 15_000
PROTOCOL_EVALUATIONS = 1 + (15_000 - 5_000)  # the initial one, then every step past 5,000
FULL_BATCH_SIZE = 32  # per class: 32 normal + 32 anomalous videos a step
PATHS = ("one", "fast")  # one at a time (the published computation), and the fast paths


@dataclass
class BenchmarkSettings:
    """What to measure; ``settings_for`` gives the defaults per device (full size on CUDA, reduced on CPU)."""

    device: str = "cpu"
    precision: str = "fp32"
    shape: str = "shanghaitech"
    feature_size: int = 2048
    num_crops: int = 10
    num_atoms: Optional[int] = None  # None: the shape's (158 ShanghaiTech, 400 UCF-Crime)
    batch_size: int = FULL_BATCH_SIZE  # videos per class in a training step
    test_videos: Optional[int] = None  # None: the whole test split of the shape
    train_videos: Optional[int] = None  # per class, resident for the fast path; None: the dataset's counts
    steps: int = 10  # timed training steps per path
    repeats: int = 5  # timed evaluations per path
    warmup: int = 2  # untimed steps / evaluations first
    max_snippets: Optional[int] = None  # chunk size of the fast evaluation (None: by device and memory)
    threads: Optional[int] = None  # CPU threads (None: torch's default)
    seed: int = 0
    breakdown: bool = True
    check: bool = True
    peak_rows: int = 2048  # rows of the peak measurement's convolution and matrix product
    notes: List[str] = field(default_factory=list)


def settings_for(device: str, quick: bool = False, **overrides) -> BenchmarkSettings:
    """Defaults: the full sizes on a GPU; on a CPU fewer videos and one repetition (the full protocol's work
    takes about a minute per training step there), or, with ``quick``, a small model that runs in seconds."""
    device_type = torch.device(device).type
    if quick:
        settings = BenchmarkSettings(
            device=device, feature_size=128, num_crops=3, num_atoms=32, batch_size=4, test_videos=24, train_videos=8,
            steps=2, repeats=2, warmup=1, threads=1 if torch.device(device).type == "cpu" else None, peak_rows=256,
            notes=["--quick: a small model (128 channels, 3 crops, 32 atoms) on 24 test videos, 1 CPU thread "
                   "(immune to other processes' load); not the real sizes"],
        )  # fmt: skip
    elif device_type == "cpu":
        settings = BenchmarkSettings(
            device=device, batch_size=8, test_videos=40, train_videos=16, steps=2, repeats=1, warmup=0,
            notes=["CPU defaults: 2 x 8 videos a step instead of 2 x 32 and 40 of the test videos; times are "
                   "extrapolated linearly to the full sizes for the protocol (--batch-size 32 --test-videos 0 for all)"],
        )  # fmt: skip
    else:
        settings = BenchmarkSettings(device=device)
    settings = replace(settings, **{name: value for name, value in overrides.items() if value is not None})
    if settings.test_videos == 0:
        settings.test_videos = None
    return settings


def check_settings(settings: BenchmarkSettings) -> None:
    """A one-line InputError for settings that cannot be measured (before any work is done)."""
    check_choice(settings.precision, PRECISIONS, "precision")
    check_choice(settings.shape, SHAPES, "shape")
    for name, minimum in dict(batch_size=1, steps=1, repeats=1, warmup=0, num_crops=1).items():
        check_range(getattr(settings, name), name, minimum=minimum, integer=True)
    for name in ("num_atoms", "test_videos", "train_videos", "max_snippets", "threads"):
        if getattr(settings, name) is not None:
            check_range(getattr(settings, name), name, minimum=1, integer=True)
    check_feature_size(settings.feature_size)
    shape = SHAPES[settings.shape]
    for kind, count in (("normal", settings.train_videos or shape.num_train_normal),
                        ("anomalous", settings.train_videos or shape.num_train_anomalous)):
        if count < settings.batch_size:
            raise InputError(None, f"{count} resident {kind} training videos cannot fill a batch of "
                             f"{settings.batch_size} (raise --train-videos or lower --batch-size)")


# ----------------------------------------------------------------------------------------------- measuring
@dataclass
class Measurement:
    times_ms: List[float]
    peak_bytes: int
    flops: float = 0.0  # of one run: matrix products and convolutions, forward and backward (FlopCounterMode)
    libraries: Dict[str, float] = field(default_factory=dict)  # share of one run's operator time per library

    @property
    def ms(self) -> float:
        """The median (robust to a stray slow repetition on a shared machine)."""
        return float(np.median(self.times_ms))

    @property
    def gflops(self) -> float:
        """Achieved rate: one run's FLOPs over the median time."""
        return self.flops / self.ms / 1e6


def kernel_library(op: str, device: torch.device, dtype: torch.dtype) -> str:
    """The library behind a profiled ATen operator, as far as its name tells (else the operator family)."""
    name = op.removeprefix("aten::")
    if "mkldnn" in name:
        return "oneDNN"
    if "cudnn" in name:
        return "cuDNN"
    if name.startswith(("slow_conv", "thnn_conv", "_slow_conv")):
        return "ATen's own convolution"
    if name.startswith("convolution_backward"):
        # The backward calls its library directly, under ATen's generic name: cuDNN on CUDA, on a CPU oneDNN
        # where it is enabled (as for the forward convolutions, profiled as mkldnn_convolution).
        if device.type == "cuda":
            return "cuDNN"
        return "oneDNN" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled else \
            "ATen's own convolution"
    if name in ("mm", "addmm", "bmm", "baddbmm", "addmm_", "mm_out"):
        if device.type == "cuda":
            return "cuBLAS"
        # PyTorch sends bf16 products to oneDNN where the CPU supports bf16, and fp32 ones to its BLAS.
        return "oneDNN (bf16 matmul)" if dtype == torch.bfloat16 else hardware.blas_library()
    return "other (norms, softmax, copies, elementwise)"


def _in_place_addmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``y.addmm_(a, b)`` (FlopCounterMode's formula for addmm, which it lacks for the in-place op)."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The process's standard error (file descriptor 2) sent to /dev/null: the profiler's C++ library writes a line
    of its own there when it starts and stops (torch 2.13: "USDT:... profiler_start"), between the benchmark's lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def counted_run(run: Callable[[], object], device: torch.device, dtype: torch.dtype) -> Tuple[float, Dict[str, float]]:
    """Run once under FlopCounterMode and the profiler: (FLOPs, {library: share of the operators' own time})."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    # In-place products (the packed scorer's addmm_ on column slices) are not in FlopCounterMode's table.
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _in_place_addmm_flops})
    with _native_stderr_silenced(), torch.profiler.profile(activities=activities) as profile, counter:
        run()
        synchronize(device)
    times: Dict[str, float] = defaultdict(float)
    for event in profile.key_averages():
        self_time = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        times[kernel_library(event.key, device, dtype)] += self_time
    total = sum(times.values()) or 1.0
    return float(counter.get_total_flops()), {library: value / total for library, value in times.items() if value > 0}


def measure(
    run: Callable[[], object], device: torch.device, memory: PeakMemory, warmup: int, repeats: int,
    dtype: torch.dtype = torch.float32,
) -> Measurement:  # fmt: skip
    """Times of ``repeats`` runs after ``warmup`` ones (at least one: the kernels are chosen in the first run).
    FLOPs and libraries come from one more untimed run after the warm-up (counting slows a run down, and the
    first run's kernel measurements would count as work)."""
    for _ in range(max(1, warmup)):
        run()
    flops, libraries = counted_run(run, device, dtype)
    memory.reset()
    times = run_times(run, device, repeats, warmup=0)
    return Measurement([seconds * 1000 for seconds in times], memory.peak(), flops, libraries)


PEAK_CHANNELS = 2048


def measure_peak(device: torch.device, precision: str, rows: int) -> Dict[str, float]:
    """GFLOP/s of a large convolution (``PEAK_CHANNELS`` → ``PEAK_CHANNELS``, kernel 3, channels-last: oneDNN on a
    CPU) and of a large matrix product (rows × C times C × C) over ``rows`` rows, in ``precision``: the best of 3
    runs after one untimed. The peak is the better of the two."""
    dtype = dtype_of(precision)
    generator = torch.Generator(device).manual_seed(0)
    channels = PEAK_CHANNELS
    weight = torch.rand((channels, channels), generator=generator, device=device).to(dtype)
    kernel = torch.rand((channels, channels, 1, 3), generator=generator, device=device).to(dtype)
    kernel = kernel.contiguous(memory_format=torch.channels_last)

    def product(rows: int) -> Tuple[Callable[[], object], float]:
        x = torch.rand((rows, channels), generator=generator, device=device).to(dtype)
        return (lambda: x @ weight), 2.0 * rows * channels * channels

    def convolution(rows: int) -> Tuple[Callable[[], object], float]:
        x = torch.rand((rows + 2, channels), generator=generator, device=device).to(dtype)
        image = x.view(1, 1, rows + 2, channels).permute(0, 3, 1, 2)
        return (lambda: torch.nn.functional.conv2d(image, kernel)), 2.0 * rows * channels * channels * 3

    rates = {}
    with torch.no_grad(), tf32_switches(precision, device):
        for name, make in ((f"convolution {channels}->{channels} x3", convolution), (f"matrix product {channels}^2", product)):
            run, flops = make(rows)
            rates[f"{name} ({rows:,} rows)"] = flops / best_time(run, device, repeats=3) / 1e9
    return rates


BREAKDOWN_SNIPPETS = 256
BREAKDOWN_SECTIONS = (
    "en-Normal",
    "macro Aggregate: conv_1-3 + conv_4",
    "macro Aggregate: non-local",
    "macro Aggregate: conv_5",
    "video Aggregate: conv_1-3 + conv_4",
    "video Aggregate: non-local",
    "video Aggregate: conv_5",
    "de-Normal gate",
    "classifier",
)


def module_sections(model: S3R) -> Dict[torch.nn.Module, str]:
    labels: Dict[torch.nn.Module, str] = {}
    for name, block in (("video Aggregate", model.video_embedding[0]), ("macro Aggregate", model.macro_embedding[0])):
        for conv in (block.conv_1, block.conv_2, block.conv_3, block.conv_4):
            labels[conv] = f"{name}: conv_1-3 + conv_4"
        labels[block.non_local] = f"{name}: non-local"
        labels[block.conv_5] = f"{name}: conv_5"
    labels[model.en_normal] = "en-Normal"
    labels[model.de_normal] = "de-Normal gate"
    labels[model.video_classifier] = "classifier"
    return labels


@dataclass
class BenchmarkResult:
    """What ``run_benchmark`` measured (``anomaly.benchmark.report`` prints it and writes it as JSON)."""

    settings: Dict
    device: str
    memory_kind: str
    test_videos: int
    test_snippets: int
    full_test_snippets: int
    chunks: int
    max_snippets: int
    padded_positions: int
    rows: Dict[str, Dict[str, float]] = field(default_factory=dict)
    times_ms: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)  # every timed repetition
    checks: Dict[str, float] = field(default_factory=dict)
    breakdown: Dict[str, Dict[str, float]] = field(default_factory=dict)
    breakdown_snippets: int = 0
    notes: List[str] = field(default_factory=list)
    peak_gflops: Dict[str, float] = field(default_factory=dict)  # measure_peak's rates
    libraries: Dict[str, Dict[str, float]] = field(default_factory=dict)  # "train step, fast" -> {library: share}
    kernels: Dict[str, Tuple[str, Dict[str, float]]] = field(default_factory=dict)  # kernel_choice.measured()


# ---------------------------------------------------------------------------------------------- the run
def run_benchmark(settings: BenchmarkSettings, log: Callable[[str], None] = print) -> BenchmarkResult:
    """Measure both paths (see the module docstring); ``log`` receives progress lines."""
    settings, device = _prepared(settings, log)
    shape = SHAPES[settings.shape]
    memory = PeakMemory(device)
    lengths = subsample(shape.test_lengths, settings.test_videos)
    log(f"building a test set of {len(lengths)} videos ({sum(lengths):,} snippets) on {device} ...")
    num_atoms = settings.num_atoms or shape.num_atoms
    test_set = synthetic_test_set(lengths, settings.num_crops, settings.feature_size, num_atoms, device, settings.seed)
    model = benchmark_model(settings.feature_size, settings.batch_size, settings.seed, device)
    published = model.published_computation()
    result = _new_result(settings, device, memory, test_set, shape.test_lengths)

    log(f"measuring the peak rate of this machine's kernels in {settings.precision} ...")
    result.peak_gflops = measure_peak(device, settings.precision, settings.peak_rows)
    evaluations, scored = _time_evaluations(published, model, test_set, result.max_snippets, settings, memory, log)
    if settings.check:
        result.checks = _checks(scored, model, test_set, result.max_snippets, settings.precision)
    if settings.breakdown:
        log("timing the parts of one forward ...")
        plan = test_set.plan(result.max_snippets)
        result.breakdown, result.breakdown_snippets = _breakdown(
            model, published, test_set, plan, dtype_of(settings.precision), settings.precision, device
        )
    del test_set, scored
    steps = _time_training_steps(published, model, lengths, num_atoms, settings, device, memory, log)

    # The peak again at the end: on a shared machine the load at the start may not be the load of the runs.
    log("measuring the peak rate again ...")
    again = measure_peak(device, settings.precision, settings.peak_rows)
    result.peak_gflops = {name: max(rate, again[name]) for name, rate in result.peak_gflops.items()}
    _fill_rows(result, steps, evaluations, settings.batch_size)
    result.kernels = model.kernel_choice.measured()
    return result


def _prepared(settings: BenchmarkSettings, log: Callable[[str], None]) -> Tuple[BenchmarkSettings, torch.device]:
    """The settings checked, the threads set, the device, and the precision it runs (with a note when not the one
    asked for)."""
    check_settings(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device, "the benchmark")
    precision, note = resolve_precision(settings.precision, device)
    if note:
        log(note)
        settings = replace(settings, precision=precision, notes=[*settings.notes, note])
    return settings, device


def _new_result(
    settings: BenchmarkSettings, device: torch.device, memory: PeakMemory, test_set: DeviceTestSet,
    full_lengths: Sequence[int],
) -> BenchmarkResult:  # fmt: skip
    """The result's description of the run: settings, machine, test set and the fast evaluation's chunks."""
    max_snippets = settings.max_snippets or auto_max_snippets(test_set, dtype_of(settings.precision))
    plan = test_set.plan(max_snippets)
    return BenchmarkResult(
        settings=asdict(settings),
        device=device_name(device),
        memory_kind=memory.kind,
        test_videos=len(test_set.videos),
        test_snippets=int(test_set.lengths.sum()),
        full_test_snippets=sum(full_lengths),
        chunks=len(plan),
        max_snippets=max_snippets,
        padded_positions=sum(chunk.padded_snippets for _, chunk in plan),
        notes=list(settings.notes),
    )


def _time_evaluations(
    published: S3R, model: S3R, test_set: DeviceTestSet, max_snippets: int, settings: BenchmarkSettings,
    memory: PeakMemory, log: Callable[[str], None],
) -> Tuple[Dict[str, Measurement], Dict[str, Evaluation]]:  # fmt: skip
    """Both paths' evaluation times, and each path's last evaluation. The fast path first on a GPU would warm the
    allocator for the other; each gets its warm-up."""
    scored: Dict[str, Evaluation] = {}

    def evaluation(path: str, scorer: S3R):
        def run():
            scored[path] = evaluate(scorer, test_set, one_at_a_time=path == "one", max_snippets=max_snippets,
                                    precision=settings.precision)  # fmt: skip

        return run

    dtype = dtype_of(settings.precision)
    log("timing evaluation, one video at a time ...")
    one = measure(evaluation("one", published), test_set.device, memory, settings.warmup, settings.repeats, dtype)
    log("timing evaluation, fast path (the kernels are chosen in its first run) ...")
    fast = measure(evaluation("fast", model), test_set.device, memory, settings.warmup, settings.repeats, dtype)
    return {"one": one, "fast": fast}, scored


def _largest_score_difference(first: Evaluation, second: Evaluation) -> float:
    return max(float(np.abs(first.snippet_scores[key] - second.snippet_scores[key]).max()) for key in second.snippet_scores)


def _checks(
    scored: Dict[str, Evaluation], model: S3R, test_set: DeviceTestSet, max_snippets: int, precision: str
) -> Dict[str, float]:  # fmt: skip
    """How far the fast evaluation lies from the one-at-a-time one, and in bf16 or tf32 from fp32."""
    alone, fast = scored["one"], scored["fast"]
    checks = {
        "max |score fast - one at a time|": _largest_score_difference(fast, alone),
        "|AUC fast - one at a time|": abs(fast.value - alone.value),
    }
    if precision != "fp32":
        reference = evaluate(model, test_set, max_snippets=max_snippets, precision="fp32")
        checks[f"max |score {precision} - fp32| (fast)"] = _largest_score_difference(fast, reference)
        checks[f"|AUC {precision} - fp32| (fast)"] = abs(fast.value - reference.value)
    return checks


def _time_training_steps(
    published: S3R, model: S3R, lengths: Sequence[int], num_atoms: int, settings: BenchmarkSettings,
    device: torch.device, memory: PeakMemory, log: Callable[[str], None],
) -> Dict[str, Measurement]:  # fmt: skip
    """Both paths' step times from the same initial weights: the published one on batches made on the host per
    step from full-length videos, the fast one on resident training data."""
    rng = np.random.default_rng(settings.seed)
    pool = 2 * settings.batch_size
    log(f"making training data ({pool} + {pool} videos of full length for the host path) ...")
    host = HostBatches(
        raw_training_videos(pool, lengths, settings.num_crops, settings.feature_size, rng),
        raw_training_videos(pool, lengths, settings.num_crops, settings.feature_size, rng),
        settings.batch_size, device, settings.seed,
    )  # fmt: skip
    dictionary = torch.rand((num_atoms, settings.feature_size), device=device)
    initial_state = copy.deepcopy(model.state_dict())
    log("timing training steps, batches made on the host per step ...")
    one = _time_training(published, host.next_batch, dictionary, settings, device, memory)
    del host

    shape = SHAPES[settings.shape]
    normal_count = settings.train_videos or shape.num_train_normal
    anomalous_count = settings.train_videos or shape.num_train_anomalous
    log(f"making resident training data ({anomalous_count} anomalous + {normal_count} normal videos) ...")
    resident = TrainingData(
        rng.random((normal_count, settings.num_crops, QUANTIZE_SIZE, settings.feature_size), dtype=np.float32),
        rng.random((anomalous_count, settings.num_crops, QUANTIZE_SIZE, settings.feature_size), dtype=np.float32),
        settings.batch_size, device,
    )  # fmt: skip
    model.load_state_dict(initial_state)  # the published computation shares these tensors: both start here
    log("timing training steps, resident data ...")
    fast = _time_training(model, resident.next_batch, dictionary, settings, device, memory)
    return {"one": one, "fast": fast}


def _time_training(
    model: S3R, next_batch: Callable[[], Tuple[Tensor, Tensor]], dictionary: Tensor, settings: BenchmarkSettings,
    device: torch.device, memory: PeakMemory,
) -> Measurement:  # fmt: skip
    optimizer = make_optimizer(model)

    def step():
        normal, anomalous = next_batch()
        train_step(model, optimizer, normal, anomalous, dictionary, settings.precision)

    return measure(step, device, memory, settings.warmup, settings.steps, dtype_of(settings.precision))


def _fill_rows(
    result: BenchmarkResult, steps: Dict[str, Measurement], evaluations: Dict[str, Measurement], batch_size: int
) -> None:  # fmt: skip
    """The report's rows: times, rates, shares of the peak, the projected protocol, peak memory; the libraries."""
    peak = max(result.peak_gflops.values())
    for name, measured in (("train step", steps), ("evaluation", evaluations)):
        result.rows[f"{name} (ms)"] = {path: measured[path].ms for path in PATHS}
        result.rows[f"{name} (GFLOP/s)"] = {path: measured[path].gflops for path in PATHS}
        result.rows[f"{name} (% of peak)"] = {path: 100 * measured[path].gflops / peak for path in PATHS}
        result.times_ms[name] = {path: measured[path].times_ms for path in PATHS}
        result.libraries[f"{name}, one at a time"] = measured["one"].libraries
        result.libraries[f"{name}, fast"] = measured["fast"].libraries
    train_scale = FULL_BATCH_SIZE / batch_size
    eval_scale = result.full_test_snippets / result.test_snippets
    result.rows["protocol (h)"] = {
        path: (PROTOCOL_STEPS * steps[path].ms * train_scale + PROTOCOL_EVALUATIONS * evaluations[path].ms * eval_scale)
        / 3.6e6
        for path in PATHS
    }
    for name, measured in (("evaluation", evaluations), ("training", steps)):
        result.rows[f"peak memory, {name} (MiB)"] = {path: measured[path].peak_bytes / 2**20 for path in PATHS}
    if train_scale != 1 or eval_scale != 1:
        result.notes.append(
            f"protocol extrapolated: step times x {train_scale:g} (batch {batch_size} -> {FULL_BATCH_SIZE}), "
            f"evaluation times x {eval_scale:.3g} ({result.test_snippets:,} -> {result.full_test_snippets:,} snippets)"
        )


def _breakdown(
    model: S3R, published: S3R, test_set: DeviceTestSet, plan, dtype: torch.dtype, precision: str, device: torch.device
):  # fmt: skip
    """Milliseconds per section for a few videos of the middle chunk (at most ``BREAKDOWN_SNIPPETS`` snippets):
    one at a time through the modules of ``published`` (forward hooks), and packed as one chunk by ``model``'s
    scorer; each after a warm-up run."""
    group, _ = plan[len(plan) // 2]
    videos, total = [], 0
    for index in group:
        if videos and total + int(test_set.lengths[index]) > BREAKDOWN_SNIPPETS:
            break
        videos.append(test_set.videos[index])
        total += int(test_set.lengths[index])
    chunk = PackedChunk.plan([video.shape[1] for video in videos], videos[0].shape[0], device)
    model.eval()
    published.eval()
    one, fast = SectionTimer(device), SectionTimer(device)
    with torch.no_grad(), autocast(precision, device):
        scorer = PackedScorer(model, test_set.dictionary[0], dtype)
        for video in videos:  # warm-up
            published.snippet_scores(video.unsqueeze(0), test_set.dictionary)
        scorer(videos, chunk)
        with one("total"), one.modules(module_sections(published)):
            for video in videos:
                published.snippet_scores(video.unsqueeze(0), test_set.dictionary)
        with fast("total"):
            scorer(videos, chunk, timer=fast)
    breakdown = {}
    for name, timer in (("one", one), ("fast", fast)):
        totals = dict(timer.totals)
        elapsed = totals.pop("total")
        sections = {section: totals.pop(section, 0.0) * 1000 for section in BREAKDOWN_SECTIONS}
        sections["other (packing, residuals, Python)"] = max(0.0, elapsed * 1000 - sum(sections.values()))
        sections["total"] = elapsed * 1000
        breakdown[name] = sections
    return breakdown, total


__all__ = [
    "BenchmarkResult",
    "BenchmarkSettings",
    "check_settings",
    "run_benchmark",
    "settings_for",
]
