"""How long the published protocol takes: the one-at-a-time paths against the fast ones, on one device.

The published protocol is 15,000 training steps of 2 × 32 videos (10 crops × 32 snippets × 2048 channels) and an
evaluation of the whole test split before training and after every step past 5,000 (10,001 evaluations).
This module builds synthetic inputs of those sizes in one process on one device and measures, for both paths:

- one at a time (the published computation): ``S3R.published_computation()`` of the same weights (the en-Normal
  reconstruction formed in full, as published, and ``F.conv1d``); a training step whose batch is made on the host per step (each
  video resampled to 32 snippets from its full length, stacked, copied to the device: the published loader's
  work without the disk), and an evaluation that scores one video at a time (``evaluate(...,
  one_at_a_time=True)``);
- fast: the model as it runs by default (``fold_dictionary=True``: the dictionary folded into the macro
  branch, about 23 % fewer FLOPs a step; ``conv_kernel="auto"``: each convolution by the kernel measured
  faster here); a training step on training data resident on the device
  (``TrainingData``), and the batched, packed evaluation (``evaluate``) in chunks of similar lengths;

the time of a step and of an evaluation, the projected protocol time, the peak memory and the ratios, plus a
check that the fast evaluation gives the same scores and where the time of one forward goes.

Honest figures: the report names the CPU (model, vendor, instruction sets, PyTorch's kernel libraries), gives
each path's achieved GFLOP/s (FLOPs of its matrix products and convolutions counted by
``torch.utils.flop_counter.FlopCounterMode`` in one run, over the median time) as a share of a measured peak
(the best of a large oneDNN/cuDNN convolution and a large matrix product, in the run's precision), where each
path's compute time goes by kernel library (``torch.profiler``: ``mkldnn_*`` ops are oneDNN, matrix products
the BLAS), and the kernel chosen for each convolution (``anomaly.models.kernel_choice``).

The ShanghaiTech-shaped test set has the real split's 199 lengths (13 to 112 snippets, 8,932 in all); the
UCF-Crime-shaped one 290 log-normal lengths summing to about 69,600 (the real lengths are not available here).
Features are uniform in [0, 1); weights are the Xavier initialisation, with the non-local blocks' BatchNorm
given non-zero values so that every branch contributes to the scores.
"""

import copy
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from torch.utils.flop_counter import FlopCounterMode

from anomaly import hardware
from anomaly.measuring import PeakMemory, SectionTimer, best_time, device_name, run_times, synchronize
from anomaly.data.features import resample_snippets
from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.engine.evaluator import DeviceTestSet, auto_max_snippets, evaluate
from anomaly.precision import PRECISIONS, resolve_precision, tf32_switches
from anomaly.engine.trainer import ShuffledBatches, TrainingData, make_optimizer, train_step
from anomaly.models.packing import PackedChunk
from anomaly.models.s3r import S3R, PackedScorer, check_feature_size

PROTOCOL_STEPS = 15_000
PROTOCOL_EVALUATIONS = 1 + (15_000 - 5_000)  # the initial one, then every step past 5,000
QUANTIZE_SIZE = 32
FULL_BATCH_SIZE = 32  # per class: 32 normal + 32 anomalous videos a step

# Snippets per test video of ShanghaiTech in csv order (num_frames / 16 of the published ground truth).
SHANGHAITECH_TEST_LENGTHS = (
    28, 38, 26, 29, 22, 22, 29, 20, 34, 19, 26, 34, 14, 20, 13, 20, 22, 34, 26, 20, 28, 55, 20, 23, 34, 28, 41, 49,
    16, 14, 25, 29, 16, 22, 29, 19, 20, 22, 16, 28, 38, 19, 14, 22, 48, 49, 32, 64, 47, 53, 64, 46, 59, 60, 61, 75,
    56, 31, 61, 73, 55, 38, 67, 51, 61, 70, 46, 64, 46, 46, 46, 56, 41, 39, 66, 66, 66, 36, 35, 44, 65, 45, 50, 50,
    51, 57, 46, 19, 19, 37, 14, 13, 25, 26, 58, 61, 26, 103, 34, 38, 20, 31, 40, 38, 40, 55, 79, 52, 35, 51, 67, 46,
    46, 32, 55, 35, 74, 61, 31, 49, 49, 49, 49, 49, 47, 47, 47, 47, 47, 47, 65, 67, 67, 31, 65, 64, 46, 25, 16, 53,
    46, 46, 46, 46, 46, 84, 48, 48, 48, 47, 44, 19, 52, 82, 49, 50, 50, 50, 46, 46, 59, 83, 52, 47, 47, 68, 57, 57,
    51, 51, 70, 74, 50, 50, 50, 50, 52, 33, 31, 95, 110, 112, 74, 38, 47, 41, 16, 67, 34, 26, 65, 52, 44, 100, 38,
    64, 38, 25, 29,
)  # fmt: skip


def ucf_crime_test_lengths(count: int = 290, total: int = 69_600, seed: int = 0) -> Tuple[int, ...]:
    """Log-normal lengths (a few very long videos, as in UCF-Crime) of 8 to 6,000 snippets summing to ≈ ``total``."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=count)
    lengths = np.clip(np.round(raw / raw.sum() * total), 8, 6000).astype(int)
    return tuple(int(length) for length in lengths)


@dataclass(frozen=True)
class DatasetShape:
    name: str
    test_lengths: Tuple[int, ...]
    num_atoms: int  # dictionary atoms (R % of the normal training videos)
    num_train_anomalous: int
    num_train_normal: int


SHAPES = {
    "shanghaitech": DatasetShape("shanghaitech", SHANGHAITECH_TEST_LENGTHS, 158, 63, 175),
    "ucf-crime": DatasetShape("ucf-crime", ucf_crime_test_lengths(), 400, 810, 800),
}


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
    if name in ("mm", "addmm", "bmm", "baddbmm", "addmm_", "mm_out"):
        if device.type == "cuda":
            return "cuBLAS"
        # PyTorch sends bf16 products to oneDNN where the CPU supports bf16, and fp32 ones to its BLAS.
        return "oneDNN (bf16 matmul)" if dtype == torch.bfloat16 else hardware.blas_library()
    return "other (norms, softmax, copies, elementwise)"


def _in_place_addmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``y.addmm_(a, b)`` (FlopCounterMode's formula for addmm, which it lacks for the in-place op)."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def counted_run(run: Callable[[], object], device: torch.device, dtype: torch.dtype) -> Tuple[float, Dict[str, float]]:
    """Run once under FlopCounterMode and the profiler: (FLOPs, {library: share of the operators' own time})."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    # In-place products (the packed scorer's addmm_ on column slices) are not in FlopCounterMode's table.
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _in_place_addmm_flops})
    with torch.profiler.profile(activities=activities) as profile, counter:
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
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
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


# --------------------------------------------------------------------------------------------- the inputs
def subsample(lengths: Sequence[int], count: Optional[int]) -> List[int]:
    """``count`` of ``lengths`` spread evenly over their sorted order (same length distribution), in csv order."""
    if count is None or count >= len(lengths):
        return list(lengths)
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    picked = sorted(order[int(round(position))] for position in np.linspace(0, len(lengths) - 1, count))
    return [lengths[index] for index in picked]


def synthetic_test_set(
    lengths: Sequence[int], num_crops: int, channels: int, num_atoms: int, device: torch.device, seed: int
) -> DeviceTestSet:
    """Uniform features made on the device; about a fifth of the videos anomalous in their middle third."""
    generator = torch.Generator(device=device).manual_seed(seed)
    videos = [torch.rand((num_crops, length, channels), generator=generator, device=device) for length in lengths]
    dictionary = torch.rand((num_atoms, channels), generator=generator, device=device)
    labels = []
    for index, length in enumerate(lengths):
        frames = np.zeros(FRAMES_PER_SNIPPET * length, dtype=np.float32)
        if index % 5 == 2:
            frames[len(frames) // 3 : 2 * len(frames) // 3 + 1] = 1
        labels.append(frames)
    if not any(label.any() for label in labels):
        labels[0][:] = 1
    video_ids = [f"video_{index:04d}" for index in range(len(lengths))]
    return DeviceTestSet.from_tensors(video_ids, videos, dictionary, np.concatenate(labels), device)


def benchmark_model(settings: BenchmarkSettings, device: torch.device) -> S3R:
    torch.manual_seed(settings.seed)
    model = S3R(settings.feature_size, batch_size=settings.batch_size, quantize_size=QUANTIZE_SIZE)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "alter.1" in name and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model.to(device)


class HostBatches:
    """The published loader's work per step, from memory: pick, resample to 32 snippets, stack, copy over."""

    def __init__(self, normal: List[np.ndarray], anomalous: List[np.ndarray], batch_size: int, device: torch.device, seed: int):
        self.normal, self.anomalous, self.device = normal, anomalous, device
        self.normal_batches = ShuffledBatches(len(normal), batch_size, seed)
        self.anomalous_batches = ShuffledBatches(len(anomalous), batch_size, seed + 1)

    def _batch(self, videos: List[np.ndarray], indices: Tensor) -> Tensor:
        batch = np.stack([resample_snippets(videos[index], QUANTIZE_SIZE) for index in indices.tolist()])
        return torch.from_numpy(batch).to(self.device)

    def next_batch(self) -> Tuple[Tensor, Tensor]:
        return self._batch(self.normal, next(self.normal_batches)), self._batch(self.anomalous, next(self.anomalous_batches))


def raw_training_videos(count: int, lengths: Sequence[int], num_crops: int, channels: int, rng: np.random.Generator) -> List[np.ndarray]:
    """``count`` videos ``T N C`` of lengths drawn from ``lengths``."""
    return [rng.random((int(rng.choice(lengths)), num_crops, channels), dtype=np.float32) for _ in range(count)]


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class BenchmarkResult:
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


def _time_training(
    model: S3R, next_batch: Callable[[], Tuple[Tensor, Tensor]], dictionary: Tensor, settings: BenchmarkSettings,
    device: torch.device, memory: PeakMemory,
) -> Measurement:  # fmt: skip
    optimizer = make_optimizer(model)

    def step():
        normal, anomalous = next_batch()
        train_step(model, optimizer, normal, anomalous, dictionary, settings.precision)

    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
    return measure(step, device, memory, settings.warmup, settings.steps, dtype)


def check_settings(settings: BenchmarkSettings) -> None:
    """ValueError with a one-line message for settings that cannot be measured (before any work is done)."""
    if settings.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if settings.shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    minimums = dict(batch_size=1, steps=1, repeats=1, warmup=0, num_crops=1, feature_size=32)
    optional_minimums = dict(num_atoms=1, test_videos=1, train_videos=1, max_snippets=1, threads=1)
    for name, minimum in (*minimums.items(), *optional_minimums.items()):
        value = getattr(settings, name)
        if (value is not None or name in minimums) and value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, not {value}")
    check_feature_size(settings.feature_size)
    shape = SHAPES[settings.shape]
    for kind, count in (("normal", settings.train_videos or shape.num_train_normal),
                        ("anomalous", settings.train_videos or shape.num_train_anomalous)):
        if count < settings.batch_size:
            raise ValueError(f"{count} resident {kind} training videos cannot fill a batch of {settings.batch_size} "
                             "(raise --train-videos or lower --batch-size)")


def run_benchmark(settings: BenchmarkSettings, log: Callable[[str], None] = print) -> BenchmarkResult:
    """Measure both paths (see the module docstring); ``log`` receives progress lines."""
    check_settings(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine: use --device cpu")
    precision, note = resolve_precision(settings.precision, device)
    if note:
        log(note)
        settings = replace(settings, precision=precision, notes=[*settings.notes, note])
    shape = SHAPES[settings.shape]
    num_atoms = settings.num_atoms or shape.num_atoms
    memory = PeakMemory(device)
    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32

    lengths = subsample(shape.test_lengths, settings.test_videos)
    log(f"building a test set of {len(lengths)} videos ({sum(lengths):,} snippets) on {device} ...")
    test_set = synthetic_test_set(lengths, settings.num_crops, settings.feature_size, num_atoms, device, settings.seed)
    model = benchmark_model(settings, device)
    published = model.published_computation()
    max_snippets = settings.max_snippets or auto_max_snippets(test_set, dtype)
    plan = test_set.plan(max_snippets)
    result = BenchmarkResult(
        settings=asdict(settings),
        device=device_name(device),
        memory_kind=memory.kind,
        test_videos=len(lengths),
        test_snippets=sum(lengths),
        full_test_snippets=sum(shape.test_lengths),
        chunks=len(plan),
        max_snippets=max_snippets,
        padded_positions=sum(chunk.padded_snippets for _, chunk in plan),
        notes=list(settings.notes),
    )

    log(f"measuring the peak rate of this machine's kernels in {settings.precision} ...")
    result.peak_gflops = measure_peak(device, settings.precision, settings.peak_rows)

    # Evaluation: the fast path first on a GPU would warm the allocator for the other; each gets its warm-up.
    evaluations = {}

    def evaluation(one_at_a_time: bool):
        def run():
            evaluations[one_at_a_time] = evaluate(
                published if one_at_a_time else model, test_set, one_at_a_time=one_at_a_time,
                max_snippets=max_snippets, precision=settings.precision,
            )

        return run

    log("timing evaluation, one video at a time ...")
    one_eval = measure(evaluation(True), device, memory, settings.warmup, settings.repeats, dtype)
    log("timing evaluation, fast path (the kernels are chosen in its first run) ...")
    fast_eval = measure(evaluation(False), device, memory, settings.warmup, settings.repeats, dtype)
    if settings.check:
        alone, fast = evaluations[True], evaluations[False]
        result.checks["max |score fast - one at a time|"] = max(
            float(np.abs(fast.snippet_scores[key] - alone.snippet_scores[key]).max()) for key in alone.snippet_scores
        )
        result.checks["|AUC fast - one at a time|"] = abs(fast.value - alone.value)
        if settings.precision != "fp32":
            reference = evaluate(model, test_set, max_snippets=max_snippets, precision="fp32")
            result.checks[f"max |score {settings.precision} - fp32| (fast)"] = max(
                float(np.abs(fast.snippet_scores[key] - reference.snippet_scores[key]).max()) for key in reference.snippet_scores
            )
            result.checks[f"|AUC {settings.precision} - fp32| (fast)"] = abs(fast.value - reference.value)

    if settings.breakdown:
        log("timing the parts of one forward ...")
        result.breakdown, result.breakdown_snippets = _breakdown(
            model, published, test_set, plan, dtype, settings.precision, device
        )
    del test_set, evaluations, plan

    # Training.
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
    one_train = _time_training(published, host.next_batch, dictionary, settings, device, memory)
    del host

    normal_count = settings.train_videos or shape.num_train_normal
    anomalous_count = settings.train_videos or shape.num_train_anomalous
    log(f"making resident training data ({anomalous_count} anomalous + {normal_count} normal videos) ...")
    resident = TrainingData(
        rng.random((normal_count, settings.num_crops, QUANTIZE_SIZE, settings.feature_size), dtype=np.float32),
        rng.random((anomalous_count, settings.num_crops, QUANTIZE_SIZE, settings.feature_size), dtype=np.float32),
        settings.batch_size, device,
    )  # fmt: skip
    model.load_state_dict(initial_state)
    log("timing training steps, resident data ...")
    fast_train = _time_training(model, resident.next_batch, dictionary, settings, device, memory)

    train_scale = FULL_BATCH_SIZE / settings.batch_size
    eval_scale = result.full_test_snippets / result.test_snippets
    # The peak again at the end: on a shared machine the load at the start may not be the load of the runs.
    log("measuring the peak rate again ...")
    again = measure_peak(device, settings.precision, settings.peak_rows)
    result.peak_gflops = {name: max(rate, again[name]) for name, rate in result.peak_gflops.items()}
    peak = max(result.peak_gflops.values())
    for name, one, fast in (("train step", one_train, fast_train), ("evaluation", one_eval, fast_eval)):
        result.rows[f"{name} (ms)"] = {"one": one.ms, "fast": fast.ms}
        result.rows[f"{name} (GFLOP/s)"] = {"one": one.gflops, "fast": fast.gflops}
        result.rows[f"{name} (% of peak)"] = {"one": 100 * one.gflops / peak, "fast": 100 * fast.gflops / peak}
        result.times_ms[name] = {"one": one.times_ms, "fast": fast.times_ms}
        result.libraries[f"{name}, one at a time"] = one.libraries
        result.libraries[f"{name}, fast"] = fast.libraries
    result.kernels = model.kernel_choice.measured()
    protocol = {
        path: (PROTOCOL_STEPS * train.ms * train_scale + PROTOCOL_EVALUATIONS * evaluation.ms * eval_scale) / 3.6e6
        for path, train, evaluation in (("one", one_train, one_eval), ("fast", fast_train, fast_eval))
    }
    result.rows["protocol (h)"] = protocol
    result.rows["peak memory, evaluation (MiB)"] = {"one": one_eval.peak_bytes / 2**20, "fast": fast_eval.peak_bytes / 2**20}
    result.rows["peak memory, training (MiB)"] = {"one": one_train.peak_bytes / 2**20, "fast": fast_train.peak_bytes / 2**20}
    if train_scale != 1 or eval_scale != 1:
        result.notes.append(
            f"protocol extrapolated: step times x {train_scale:g} (batch {settings.batch_size} -> {FULL_BATCH_SIZE}), "
            f"evaluation times x {eval_scale:.3g} ({result.test_snippets:,} -> {result.full_test_snippets:,} snippets)"
        )
    return result


def _breakdown(
    model: S3R, published: S3R, test_set: DeviceTestSet, plan, dtype: torch.dtype, precision: str, device: torch.device
):  # fmt: skip
    """Milliseconds per section for a few videos of the middle chunk (at most ``BREAKDOWN_SNIPPETS`` snippets):
    one at a time through the modules of ``published`` (forward hooks), and packed as one chunk by ``model``'s
    scorer; each after a warm-up run."""
    from anomaly.precision import autocast

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


# ------------------------------------------------------------------------------------------- the report
def _format_value(row: str, value: float) -> str:
    if "(h)" in row:
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.1f}"


def format_report(result: BenchmarkResult) -> str:
    settings = result.settings
    lines = [
        f"S3R benchmark: device {settings['device']} ({result.device}), precision {settings['precision']}, "
        f"shape {settings['shape']}",
        f"  training: 2 x {settings['batch_size']} videos x {settings['num_crops']} crops x {QUANTIZE_SIZE} snippets x "
        f"{settings['feature_size']} channels, {settings['num_atoms'] or SHAPES[settings['shape']].num_atoms} atoms; "
        f"{settings['steps']} timed steps after {settings['warmup']} warm-up",
        f"  test set: {result.test_videos} videos, {result.test_snippets:,} snippets (full split: "
        f"{len(SHAPES[settings['shape']].test_lengths)} videos, {result.full_test_snippets:,}); "
        f"{settings['repeats']} timed evaluations after {settings['warmup']} warm-up",
        f"  fast evaluation: {result.chunks} chunks of at most {result.max_snippets:,} padded positions, "
        f"{result.padded_positions:,} positions for {result.test_snippets:,} snippets "
        f"({100 * (result.padded_positions / result.test_snippets - 1):.1f} % padding and gaps)",
        f"  protocol: {PROTOCOL_STEPS:,} steps + {PROTOCOL_EVALUATIONS:,} evaluations; times: medians; memory: {result.memory_kind}",
    ]
    lines += [f"  note: {note}" for note in result.notes]
    header = f"{'':32}{'one at a time':>16}{'fast':>14}{'ratio (one/fast)':>20}"
    lines += ["", header, "-" * len(header)]
    for row, values in result.rows.items():
        ratio = values["one"] / values["fast"] if values["fast"] else math.inf
        line = f"{row:32}{_format_value(row, values['one']):>16}{_format_value(row, values['fast']):>14}"
        lines.append(line if "GFLOP/s" in row or "% of peak" in row else f"{line}{ratio:>19.2f}x")
    if result.peak_gflops:
        lines += ["", f"peak ({settings['precision']}, GFLOP/s, the better of a measurement before and after the "
                      "runs; '% of peak' above is of the best):"]
        lines += [f"  {name}: {rate:,.1f}" for name, rate in result.peak_gflops.items()]
    if result.libraries:
        lines += ["", "where each path's operator time goes, by library (torch.profiler, one run):"]
        for path, shares in result.libraries.items():
            ordered = sorted(shares.items(), key=lambda item: -item[1])
            lines.append(f"  {path}: " + ", ".join(f"{library} {100 * share:.0f} %" for library, share in ordered))
    if result.kernels:
        lines += ["", "convolution kernels chosen by a one-time measurement (best time per candidate):"]
        for key, (chosen, times) in result.kernels.items():
            timings = ", ".join(f"{name} {seconds * 1000:.2f} ms" for name, seconds in times.items())
            lines.append(f"  {key}: {chosen} ({timings or 'the default: too little work to time reliably'})")
    if result.checks:
        lines += ["", "check:"]
        lines += [f"  {name}: {value:.3g}" for name, value in result.checks.items()]
    if result.breakdown:
        one_total, fast_total = result.breakdown["one"]["total"], result.breakdown["fast"]["total"]
        lines += [
            "",
            f"where the time goes (ms; one forward of {result.breakdown_snippets:,} snippets of similar length, after a "
            "warm-up; the sections are timed with the device synchronised around each):",
            f"{'section':40}{'one at a time':>16}{'%':>6}{'fast':>12}{'%':>6}",
        ]
        for section in result.breakdown["one"]:
            one, fast = result.breakdown["one"][section], result.breakdown["fast"][section]
            lines.append(
                f"{section:40}{one:>16,.1f}{100 * one / one_total:>6.1f}{fast:>12,.1f}{100 * fast / fast_total:>6.1f}"
            )
    return "\n".join(lines)


def result_json(result: BenchmarkResult) -> str:
    return json.dumps(asdict(result), indent=2)


__all__ = [
    "BenchmarkResult",
    "BenchmarkSettings",
    "check_settings",
    "SHAPES",
    "format_report",
    "result_json",
    "run_benchmark",
    "settings_for",
]
