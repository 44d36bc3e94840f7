"""What live detection costs: the accuracy given up by scoring causally, and how fast a snippet is scored here.

**Causality** (:func:`causality`). Every test video of a dataset is scored as ``s3r watch`` scores a stream: snippet
t on the window of snippets t - W + 1 .. t + L (:func:`causal_window`: ``CausalScores``'s rule, cut at the video's
ends), for each W of ``windows`` and L of ``lookaheads``, beside the offline scores (each video whole, as
``--inference`` scores it). Each row gives the frame AUC and AP (step-wise) computed as ``--inference`` computes
them (``anomaly.engine.metrics`` on the test set's per-snippet frame weights), and the share of snippets whose
window is their whole video (those score as offline). The windows are many short videos: they go through the
packed evaluator (``DeviceTestSet.from_tensors`` and ``score_test_set``) in chunks of ``CHUNK_WINDOWS``, and a
window that is the same snippets for several t is scored once.

**Throughput** (:func:`throughput`). The work per snippet of a live stream, timed on this machine: the I3D forward
of one clip (a batch of one, as ``s3r watch`` runs it; 1 and 10 crops) and S3R's scoring of a window of
``THROUGHPUT_WINDOW`` snippets at 2048 channels; the snippets per second that makes, the latency it adds, whether
25 and 30 fps streams (1.5625 and 1.875 snippets/s) are kept up with, and the I3D's GFLOP/s (its FLOPs counted by
``FlopCounterMode``) as a share of the machine's measured peak (``anomaly.benchmark.detector.measure_peak``).
Resizing the frames runs beside it, in the decoding thread; its time per snippet is given apart. Random weights:
the speed does not depend on their values.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from anomaly.benchmark.detector import measure_peak
from anomaly.engine.evaluator import DeviceTestSet, check_finite_scores, score_test_set
from anomaly.engine.metrics import weighted_ap_stepwise, weighted_roc_auc
from anomaly.errors import check_range
from anomaly.extraction import FEATURE_SIZE, PRESETS, FeatureExtractor, I3DResNet50
from anomaly.extraction.network import GFLOP_PER_CLIP
from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.measuring import device_name, run_times
from anomaly.models import S3R
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
    crops: int
    i3d_ms: float  # median time of the I3D forward of one clip
    window_ms: float  # median time of S3R's scoring of a window of THROUGHPUT_WINDOW snippets
    i3d_gflop: float  # FLOPs of one I3D forward, counted

    @property
    def snippet_ms(self) -> float:
        return self.i3d_ms + self.window_ms

    @property
    def snippets_per_second(self) -> float:
        return 1000 / self.snippet_ms

    def keeps_up(self, fps: float) -> bool:
        return self.snippets_per_second >= fps / FRAMES_PER_SNIPPET

    @property
    def i3d_gflops(self) -> float:
        return self.i3d_gflop / self.i3d_ms * 1000


@dataclass
class Throughput:
    machine: str
    peak_gflops: float
    resize_ms: float  # resizing the 16 frames of a snippet (rtfm, FRAME_SIZE), in the decoding thread
    rows: List[ThroughputRow] = field(default_factory=list)

    def table(self) -> str:
        rates = [f"{fps} fps ({fps / FRAMES_PER_SNIPPET:g}/s)" for fps in STREAM_RATES]
        rows = [["crops", "I3D (ms)", f"S3R W={THROUGHPUT_WINDOW} (ms)", "per snippet (ms)", "snippets/s", *rates,
                 "I3D GFLOP", "I3D GFLOP/s", "% of peak"]]  # fmt: skip
        for row in self.rows:
            rows.append([row.crops, f"{row.i3d_ms:,.0f}", f"{row.window_ms:,.1f}", f"{row.snippet_ms:,.0f}",
                         f"{row.snippets_per_second:.2f}",
                         *("yes" if row.keeps_up(fps) else "no" for fps in STREAM_RATES),
                         f"{row.i3d_gflop:.1f}", f"{row.i3d_gflops:,.1f}",
                         f"{100 * row.i3d_gflops / self.peak_gflops:.0f}"])  # fmt: skip
        table = ascii_table(rows, f" live throughput: {self.machine} ", dict.fromkeys(range(len(rows[0])), "right"))
        height, width = FRAME_SIZE
        notes = [
            f"per snippet: the I3D forward of one clip (fp32, a batch of one, as s3r watch runs it), then S3R on a "
            f"window of {THROUGHPUT_WINDOW} snippets (2048 channels, {THROUGHPUT_ATOMS} atoms); medians",
            f"peak: {self.peak_gflops:,.1f} GFLOP/s (the better of a large convolution and matrix product, fp32); "
            f"the I3D is {GFLOP_PER_CLIP:g} GFLOP per crop, its first convolution shared between overlapping crops",
            f"beside it, in the decoding thread: resizing the 16 frames of a snippet ({width}x{height}, rtfm) "
            f"{self.resize_ms:.0f} ms",
        ]
        return "\n".join([table, *notes])


def throughput(device: torch.device, crops: Sequence[int] = (1, 10), repeats: int = 3,
               log: Callable[[str], None] = print) -> Throughput:  # fmt: skip
    """Time the work of one snippet here (see the module docstring) for each crop count of ``crops``."""
    check_range(repeats, "--repeats", minimum=1, integer=True)
    generator = torch.Generator().manual_seed(0)
    preset = PRESETS["rtfm"]
    frames = torch.randint(0, 256, (FRAMES_PER_SNIPPET, *FRAME_SIZE, 3), generator=generator, dtype=torch.uint8)
    log(f"timing the resizing of {FRAMES_PER_SNIPPET} frames ...")
    resize_ms = 1000 * float(np.median(run_times(lambda: [preset.resize(frame) for frame in frames.numpy()],
                                                 torch.device("cpu"), repeats)))  # fmt: skip
    clip = np.stack([preset.resize(frame) for frame in frames.numpy()])[None]  # 1 16 256 341 3
    log("measuring the peak rate of this machine's kernels ...")
    peak = max(measure_peak(device, "fp32", 2048).values())
    extractor = FeatureExtractor(I3DResNet50().eval(), device)
    model = S3R(FEATURE_SIZE).to(device).eval()
    dictionary = torch.rand(1, THROUGHPUT_ATOMS, FEATURE_SIZE, generator=generator).to(device)
    result = Throughput(device_name(device), peak, resize_ms)
    for count in crops:
        log(f"timing a snippet with {count} crop{'s' if count != 1 else ''} ...")
        forward = lambda: extractor(clip, preset, count)  # noqa: E731
        i3d = run_times(forward, device, repeats)
        counter = FlopCounterMode(display=False)
        with counter:
            forward()
        window = torch.rand(1, count, THROUGHPUT_WINDOW, FEATURE_SIZE, generator=generator).to(device)
        with torch.no_grad():
            scoring = run_times(lambda: model.snippet_scores(window, dictionary), device, repeats)
        result.rows.append(ThroughputRow(count, 1000 * float(np.median(i3d)), 1000 * float(np.median(scoring)),
                                         counter.get_total_flops() / 1e9))  # fmt: skip
    # The peak again at the end: on a shared machine the load at the start may not be the load of the runs.
    result.peak_gflops = max(result.peak_gflops, max(measure_peak(device, "fp32", 2048).values()))
    return result
