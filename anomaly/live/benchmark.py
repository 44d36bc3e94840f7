"""What live detection costs: the accuracy given up by scoring causally, and how fast a snippet is scored here.

**Causality** (:func:`causality`). Every test video of a dataset is scored as ``s3r watch`` scores a stream: snippet
t on the window of snippets t - W + 1 .. t + L (:func:`causal_window`: ``CausalScores``'s rule, cut at the video's
ends), for each W of ``windows`` and L of ``lookaheads``, beside the offline scores (each video whole, as
``--inference`` scores it). Each row gives the frame AUC and AP (step-wise) computed as ``--inference`` computes
them (``anomaly.engine.metrics`` on the test set's per-snippet frame weights), and the share of snippets whose
window is their whole video (those score as offline). The windows are many short videos: they go through the
packed evaluator (``DeviceTestSet.from_tensors`` and ``score_test_set``) in chunks of ``CHUNK_WINDOWS``, and a
window that is the same snippets for several t is scored once.

**Throughput** (:func:`throughput`). The work per snippet of a live stream, timed on this machine for each precision
asked for (``NETWORK_CHOICES``, as ``resolve_precision`` runs it) and crop count: the backbone's forward of one clip
(a batch of one, as ``s3r watch`` runs it: I3D by default, CLIP ViT-B/16 with its frame reading) and S3R's scoring
of a window of ``THROUGHPUT_WINDOW`` snippets at the backbone's channels (2048, 512), by the scorer ``s3r watch`` and ``s3r detect`` use (``anomaly.detection.window_scorer``), both in that
precision; the window's share of the clip's time, the snippets per second they make, whether 25 and 30 fps streams
(1.5625 and 1.875 snippets/s) are kept up with, and for each of the two its FLOPs (counted by ``FlopCounterMode`` as
the detector benchmark counts them, ``counted_run``), GFLOP/s and share of the machine's measured peak in that
precision (``anomaly.benchmark.detector.measure_peak``). Resizing the frames runs beside it, in the decoding thread;
its time per snippet is given apart. With ``runtimes`` beyond ``torch``, the same work by each exported runtime
(the network and an untrained S3R of the same atoms exported by ``s3r export``, once per crop count: the scorer's
crops are fixed in its graph; the time of each export said), in the precisions it runs, rows beside PyTorch's with
each network's speed against PyTorch's fp32 of the same run (its GFLOP are not counted: the runtimes' kernels are
not PyTorch's). Random weights: the speed does not depend on their values.
"""

import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from anomaly.benchmark.detector import counted_run, measure_peak
from anomaly.benchmark.extraction import check_exported_backbone, check_runtimes
from anomaly.deploy.export import export_for_timing
from anomaly.deploy.runtime import RUNTIME_PRECISIONS, resolve_runtime_precision
from anomaly.detection import window_scorer
from anomaly.engine.detector_file import Detector, FeatureSpec
from anomaly.engine.evaluator import DeviceTestSet, check_finite_scores, score_test_set
from anomaly.engine.metrics import weighted_ap_stepwise, weighted_roc_auc
from anomaly.errors import check_choice, check_range
from anomaly.extraction import PRESETS, backbone_of
from anomaly.layout import FRAMES_PER_SNIPPET, TORCH_RUNTIME, crops_text
from anomaly.measuring import device_name, run_times
from anomaly.models import S3R
from anomaly.precision import NETWORK_CHOICES, dtype_of, resolve_precision
from anomaly.tables import ascii_table

WINDOWS = (4, 8, 16, 32, 64)
LOOKAHEADS = (0, 4)
CHUNK_WINDOWS = 4096  # windows per packed test set: bounds the memory of one chunk's bookkeeping
THROUGHPUT_WINDOW = 16
STREAM_RATES = (25, 30)  # frames per second of the streams the throughput is checked against
FRAME_SIZE = (480, 640)  # (height, width) of the frames whose resizing is timed: VGA, a common camera stream
THROUGHPUT_ATOMS = 158  # dictionary atoms of the window scoring: ShanghaiTech's


def causal_window(snippet: int, length: int, window: int, lookahead: int) -> Tuple[int, int]:
    """The snippets [start, stop) that snippet ``snippet`` of a video of ``length`` snippets is scored on, as
    ``anomaly.live.causal.CausalScores`` scores it: the ``window`` up to it and ``lookahead`` after it, within the
    video."""
    return max(0, snippet - window + 1), min(length, snippet + lookahead + 1)


@torch.no_grad()
def causal_scores(model: S3R, test_set: DeviceTestSet, window: int, lookahead: int) -> List[Tensor]:
    """Every test video's causal snippet scores (T each, float32), in the test set's order."""
    index: Dict[Tuple[int, int, int], int] = {}  # (video, start, stop) -> its place in ``windows``
    windows: List[Tensor] = []
    wanted: List[Tuple[int, int]] = []  # per snippet of every video, in order: its window, its place in it
    for number, video in enumerate(test_set.videos):  # N T C each
        length = video.shape[1]
        for snippet in range(length):
            start, stop = causal_window(snippet, length, window, lookahead)
            key = (number, start, stop)
            if key not in index:
                index[key] = len(windows)
                windows.append(video[:, start:stop])
            wanted.append((index[key], snippet - start))
    scores: List[Tensor] = []
    for first in range(0, len(windows), CHUNK_WINDOWS):
        chunk = windows[first : first + CHUNK_WINDOWS]
        frames = FRAMES_PER_SNIPPET * sum(part.shape[1] for part in chunk)
        # The metric is computed on the whole test set below: these windows' labels are never read.
        part = DeviceTestSet.from_tensors(list(map(str, range(len(chunk)))), chunk, test_set.dictionary[0],
                                          np.zeros(frames, np.float32), test_set.device)  # fmt: skip
        scores += score_test_set(model, part)
    starts = np.cumsum([0] + [len(score) for score in scores[:-1]])
    flat = torch.cat(scores).flatten()
    picked = flat[torch.as_tensor([starts[place] + offset for place, offset in wanted], device=flat.device)]
    bounds = np.cumsum([0] + [video.shape[1] for video in test_set.videos])
    return [picked[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


@dataclass
class CausalityRow:
    window: Optional[int]  # None: offline (each video whole)
    lookahead: Optional[int]
    auc: float
    ap: float
    whole: float  # share of snippets whose window is their whole video


@dataclass
class Causality:
    dataset: str
    videos: int
    snippets: int
    rows: List[CausalityRow] = field(default_factory=list)
    seconds: float = 0.0

    def table(self) -> str:
        offline = self.rows[0]
        rows = [["window W", "lookahead L", "frame AUC (%)", "AP (%)", "AUC - offline", "whole video (%)"]]
        for row in self.rows:
            name = ["offline", "(whole video)"] if row.window is None else [row.window, row.lookahead]
            change = "" if row.window is None else f"{100 * (row.auc - offline.auc):+.2f}"
            rows.append([*name, f"{100 * row.auc:.2f}", f"{100 * row.ap:.2f}", change, f"{100 * row.whole:.1f}"])
        title = f" causal scores on {self.dataset}: {self.videos} test videos, {self.snippets:,} snippets "
        return ascii_table(rows, title, dict.fromkeys(range(2, 6), "right"))


def causality(
    model: S3R, test_set: DeviceTestSet, dataset: str, windows: Sequence[int] = WINDOWS,
    lookaheads: Sequence[int] = LOOKAHEADS, log: Callable[[str], None] = print,
) -> Causality:  # fmt: skip
    """The offline row, then one row per (W, L): frame AUC, AP and the share of whole-video windows."""
    for window in windows:
        check_range(window, "--windows", minimum=1, integer=True)
    for lookahead in lookaheads:
        check_range(lookahead, "--lookaheads", minimum=0, integer=True)
    started = time.perf_counter()
    lengths = [video.shape[1] for video in test_set.videos]
    result = Causality(dataset, len(lengths), sum(lengths))
    model.eval()

    def row(window: Optional[int], lookahead: Optional[int], scores: List[Tensor]) -> CausalityRow:
        check_finite_scores(scores, test_set.video_ids, "AUC")
        flat = torch.cat(scores).flatten()
        if window is None:
            whole = 1.0
        else:
            whole = sum(causal_window(t, length, window, lookahead) == (0, length)
                        for length in lengths for t in range(length)) / result.snippets  # fmt: skip
        return CausalityRow(window, lookahead, weighted_roc_auc(flat, test_set.positives, test_set.negatives),
                            weighted_ap_stepwise(flat, test_set.positives, test_set.negatives), whole)  # fmt: skip

    log(f"scoring {result.videos} test videos ({result.snippets:,} snippets) offline ...")
    result.rows.append(row(None, None, [score[:, 0] for score in score_test_set(model, test_set)]))
    for window in windows:
        for lookahead in lookaheads:
            log(f"scoring every snippet on its window: W = {window}, L = {lookahead} ...")
            result.rows.append(row(window, lookahead, causal_scores(model, test_set, window, lookahead)))
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------- throughput
@dataclass
class ThroughputRow:
    precision: str  # what the network and S3R ran (never auto)
    crops: int
    network_ms: float  # median time of the network's forward of one clip
    window_ms: float  # median time of S3R's scoring of a window of THROUGHPUT_WINDOW snippets
    network_gflop: float  # FLOPs of one forward of the network, counted (NaN: not counted, another runtime's)
    window_gflop: float  # FLOPs of one window's scoring, counted (NaN likewise)
    runtime: str = TORCH_RUNTIME

    @property
    def snippet_ms(self) -> float:
        return self.network_ms + self.window_ms

    @property
    def snippets_per_second(self) -> float:
        return 1000 / self.snippet_ms

    def keeps_up(self, fps: float) -> bool:
        return self.snippets_per_second >= fps / FRAMES_PER_SNIPPET

    @property
    def network_gflops(self) -> float:
        return self.network_gflop / self.network_ms * 1000

    @property
    def window_gflops(self) -> float:
        return self.window_gflop / self.window_ms * 1000


@dataclass
class Throughput:
    machine: str
    network: str  # the backbone timed, as the tables name it: I3D, CLIP
    description: str  # what one forward of it is
    feature_size: int  # channels of its features: S3R's window
    preset: str  # the frame recipe resized in the decoding thread
    peaks: Dict[str, float]  # GFLOP/s per precision run
    resize_ms: float  # resizing the 16 frames of a snippet (the preset, FRAME_SIZE), in the decoding thread
    rows: List[ThroughputRow] = field(default_factory=list)
    stand_ins: List[str] = field(default_factory=list)  # one line per precision asked for that ran as another

    def table(self) -> str:
        rates = [f"{fps} fps ({fps / FRAMES_PER_SNIPPET:g}/s)" for fps in STREAM_RATES]
        window = f"S3R W={THROUGHPUT_WINDOW}"
        network = self.network
        # The runtime and the network against PyTorch's fp32: columns of a table with exported runtimes' rows.
        runtimes = any(row.runtime != TORCH_RUNTIME for row in self.rows)
        times = [[*(["runtime"] if runtimes else []), "precision", "crops", f"{network} (ms)",
                  *([f"{network} vs torch fp32"] if runtimes else []), f"{window} (ms)", f"S3R / {network} (%)",
                  "per snippet (ms)", "snippets/s", *rates]]  # fmt: skip
        torch_fp32 = {row.crops: row.network_ms for row in self.rows
                      if row.runtime == TORCH_RUNTIME and row.precision == "fp32"}  # fmt: skip
        work = [["precision", "crops", f"{network} GFLOP", f"{network} GFLOP/s", f"{network} % of peak",
                 f"{window} GFLOP", "S3R GFLOP/s", "S3R % of peak"]]  # fmt: skip
        for row in self.rows:
            keeps_up = ["yes" if row.keeps_up(fps) else "no" for fps in STREAM_RATES]
            against = f"{torch_fp32[row.crops] / row.network_ms:.2f}x" if row.crops in torch_fp32 else ""
            times.append([*([row.runtime] if runtimes else []), row.precision, row.crops, f"{row.network_ms:,.0f}",
                          *([against] if runtimes else []), f"{row.window_ms:,.1f}",
                          f"{100 * row.window_ms / row.network_ms:.1f}", f"{row.snippet_ms:,.0f}",
                          f"{row.snippets_per_second:.2f}", *keeps_up])  # fmt: skip
            if row.runtime != TORCH_RUNTIME:
                continue
            work.append([row.precision, row.crops, f"{row.network_gflop:.1f}", f"{row.network_gflops:,.1f}",
                         f"{100 * row.network_gflops / self.peaks[row.precision]:.0f}", f"{row.window_gflop:.2f}",
                         f"{row.window_gflops:,.1f}", f"{100 * row.window_gflops / self.peaks[row.precision]:.0f}"])
        right = dict.fromkeys(range(1, len(times[0])), "right")
        height, width = FRAME_SIZE
        peaks = ", ".join(f"{precision} {rate:,.1f}" for precision, rate in self.peaks.items())
        notes = [
            f"per snippet: the {self.description} (a batch of one, as s3r watch runs it), then S3R on a window of "
            f"{THROUGHPUT_WINDOW} snippets ({self.feature_size} channels, {THROUGHPUT_ATOMS} atoms, by the packed "
            "scorer s3r watch and s3r detect use), both in the row's precision; medians",
            *self.stand_ins,
            f"peak GFLOP/s: {peaks} (the better of a large convolution and matrix product); S3R's GFLOP are those of "
            "the products it runs (the dictionary folded, padding rows included)",
            f"beside it, in the decoding thread: resizing the 16 frames of a snippet ({width}x{height}, "
            f"{self.preset}) {self.resize_ms:.0f} ms",
        ]
        return "\n".join([ascii_table(times, f" live throughput: {self.machine} ", right),
                          ascii_table(work, " the work of a snippet, and its rate ", right), *notes])


def throughput(device: torch.device, crops: Sequence[int] = (1, 10), precisions: Sequence[str] = ("fp32",),
               repeats: int = 3, log: Callable[[str], None] = print, backbone: str = "i3d",
               frames: Optional[str] = None, runtimes: Sequence[str] = (TORCH_RUNTIME,)) -> Throughput:  # fmt: skip
    """Time the work of one snippet here (see the module docstring) for each precision of ``precisions`` (of
    ``NETWORK_CHOICES``) and crop count of ``crops``, the network that of ``backbone`` (with its frame reading
    ``frames``, None: its default). A precision runs as ``resolve_precision`` makes it (auto: bf16 where native;
    bf16 elsewhere: fp32, said in one line): those that run the same are measured once, their rows labelled with
    what ran and a line under the table saying which others they stand for. ``runtimes``: PyTorch and the exported
    runtimes timed beside it (see the module docstring; CPU, I3D)."""
    check_range(repeats, "--repeats", minimum=1, integer=True)
    check_runtimes(runtimes, device)
    network = backbone_of(backbone)
    check_exported_backbone(runtimes, network.name)
    exported_runtimes = [runtime for runtime in dict.fromkeys(runtimes) if runtime != TORCH_RUNTIME]
    preset_name, frames = network.recipe(None, frames)
    asked_for: Dict[str, List[str]] = {}  # precision run -> the precisions given that run it
    for precision in dict.fromkeys(precisions):  # each once, in order
        check_choice(precision, NETWORK_CHOICES, "--precision")
        ran, note = resolve_precision(precision, device)
        if note:
            log(note)
        asked_for.setdefault(ran, []).append(precision)
    generator = torch.Generator().manual_seed(0)
    preset = PRESETS[preset_name]
    decoded = torch.randint(0, 256, (FRAMES_PER_SNIPPET, *FRAME_SIZE, 3), generator=generator, dtype=torch.uint8)
    log(f"timing the resizing of {FRAMES_PER_SNIPPET} frames ...")
    resize_ms = 1000 * float(np.median(run_times(lambda: [preset.resize(frame) for frame in decoded.numpy()],
                                                 torch.device("cpu"), repeats)))  # fmt: skip
    clip = np.stack([preset.resize(frame) for frame in decoded.numpy()])[None]  # 1 16 h w 3
    log("measuring the peak rate of this machine's kernels ...")
    reading = f", {frames} of its 16 frames" if frames else ""
    description = f"{network.title} forward of one clip{reading}, {network.gflop_per_crop(frames):,.1f} GFLOP a crop"
    result = Throughput(device_name(device), network.name.upper(), description, network.feature_size, preset.name,
                        {precision: _peak(device, precision) for precision in asked_for}, resize_ms)  # fmt: skip
    for ran, asked in asked_for.items():
        others = [precision for precision in asked if precision != ran]
        if others:
            result.stand_ins.append(f"--precision {' and '.join(others)} ran {ran} here (said above): the {ran} rows "
                                    f"are {'theirs' if len(others) > 1 else 'its'}")
    weights = network.seeded_network()
    model = S3R(network.feature_size).to(device).eval()
    dictionary = torch.rand(1, THROUGHPUT_ATOMS, network.feature_size, generator=generator).to(device)
    for ran in asked_for:
        extractor = network.runner(weights, device, ran, frames, None, "eager", log)
        for count in crops:
            log(f"timing a snippet with {crops_text(count)} in {ran} ...")
            forward = lambda: extractor(clip, preset, count)  # noqa: E731
            # Built as s3r watch builds it: weights laid out once, kernels chosen for a window of this size.
            detector = Detector(model, dictionary, FeatureSpec(network.name, preset.name, count, network.feature_size))
            score = window_scorer(detector, ran, THROUGHPUT_WINDOW)
            window = torch.rand(count, THROUGHPUT_WINDOW, network.feature_size, generator=generator).to(device)
            scoring = lambda: score(window)  # noqa: E731
            network_ms, window_ms = (1000 * float(np.median(run_times(run, device, repeats)))
                                     for run in (forward, scoring))  # fmt: skip
            result.rows.append(ThroughputRow(ran, count, network_ms, window_ms,
                                             _gflop(forward, device, dtype_of(ran)),
                                             _gflop(scoring, device, dtype_of(ran))))  # fmt: skip
    if exported_runtimes:
        _time_runtimes(result, exported_runtimes, weights, preset, clip, crops, asked_for, repeats, generator, log)
    # The peaks again at the end: on a shared machine the load at the start may not be the load of the runs.
    result.peaks = {precision: max(rate, _peak(device, precision)) for precision, rate in result.peaks.items()}
    return result


def _time_runtimes(result: Throughput, runtimes: List[str], weights: torch.nn.Module, preset, clip: np.ndarray,
                   crops: Sequence[int], asked_for: Dict[str, List[str]], repeats: int, generator: torch.Generator,
                   log: Callable[[str], None]) -> None:  # fmt: skip
    """The rows of the exported ``runtimes`` (on the CPU): for each crop count, the network ``weights`` and an
    S3R exported once, then each runtime's network and window scoring timed in each precision asked for
    (``asked_for``: as PyTorch ran them) that it runs."""
    cpu = torch.device("cpu")
    precisions: Dict[str, List[str]] = {}  # runtime -> the precisions it runs, resolved by its rules
    for runtime in runtimes:
        for asked in dict.fromkeys(precision for given in asked_for.values() for precision in given):
            if asked != "auto" and asked not in RUNTIME_PRECISIONS[runtime]:
                result.stand_ins.append(f"{runtime} runs {', '.join(RUNTIME_PRECISIONS[runtime])} alone: no "
                                        f"{asked} row for it")
                continue
            ran = resolve_runtime_precision(runtime, asked, cpu)[0]
            precisions.setdefault(runtime, [])
            if ran not in precisions[runtime]:
                precisions[runtime].append(ran)
    for count in crops:
        with tempfile.TemporaryDirectory() as folder:
            log(f"exporting the network and S3R for {crops_text(count)} (s3r export) ...")
            exported, seconds = export_for_timing(folder, weights, preset.name, count, THROUGHPUT_ATOMS, log)
            result.stand_ins.append(f"the runtimes' models for {crops_text(count)}: exported in {seconds:.0f} s")
            window = torch.rand(count, THROUGHPUT_WINDOW, result.feature_size, generator=generator)
            for runtime, ran_in in precisions.items():
                for ran in ran_in:
                    log(f"timing a snippet with {crops_text(count)} by {runtime} in {ran} ...")
                    features, score = exported.features(runtime, ran), exported.scorer(runtime, ran)
                    network_ms, window_ms = (1000 * float(np.median(run_times(run, cpu, repeats)))
                                             for run in (lambda: features(clip, preset, count), lambda: score(window)))
                    result.rows.append(ThroughputRow(ran, count, network_ms, window_ms, float("nan"), float("nan"),
                                                     runtime))  # fmt: skip


def _peak(device: torch.device, precision: str) -> float:
    return max(measure_peak(device, precision, 2048).values())


def _gflop(run: Callable[[], object], device: torch.device, dtype: torch.dtype) -> float:
    """The GFLOP of one call of ``run``: its products and convolutions, counted as the detector benchmark counts."""
    return counted_run(run, device, dtype)[0] / 1e9
