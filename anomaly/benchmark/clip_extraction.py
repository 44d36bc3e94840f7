"""How fast CLIP ViT-B/16 features are made here (``s3r benchmark-extraction --backbone clip``), stage by stage, in
one run.

On one synthetic video (``make_test_video``): decoding (frames/s), the vadclip resize (OpenCV's bilinear to
340 × 256, frames/s), the network (snippets/s of ``ClipExtractor``, ``batch_size`` snippets per forward call) for
each frame reading — ``mean`` (16 images a crop: every frame's embedding) against ``middle`` (1 image) — in fp32 and,
where the device computes it natively, bf16 (elsewhere emulated and far slower: skipped, and said), each with its
GFLOP/s (``GFLOP_PER_IMAGE`` × images) and its share of this machine's peak (the better of a large convolution and
matrix product, ``measure_peak``: the encoder is matrix products); and end to end in fp32 with the default reading
(the pipeline: a decoding thread feeding the network). The network's runs take turns (``interleaved_best``), the
best of ``repeats`` each. Ratios: mean's cost against middle's, bf16 against fp32, end to end against the network.
Seeded random weights: the speed does not depend on their values.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple

import numpy as np
import torch

from anomaly.benchmark.detector import measure_peak
from anomaly.benchmark.extraction import (check_video_size, interleaved_best, make_test_video, time_decoding,
                                          timed_precisions)
from anomaly.errors import check_range
from anomaly.extraction.backbones import BACKBONES
from anomaly.extraction.extractor import extract_features
from anomaly.extraction.preprocess import PRESETS
from anomaly.layout import FRAME_READINGS, FRAMES_PER_SNIPPET, crops_text
from anomaly.measuring import device_name, timed
from anomaly.tables import ascii_table

PEAK_ROWS = 4096  # rows of the peak's matrix product: a batch of ViT tokens


@dataclass(frozen=True)
class ClipBenchmarkSettings:
    device: str
    frames: int = 48
    width: int = 640
    height: int = 480
    num_crops: int = 1
    batch_size: int = 1
    repeats: int = 1

    @classmethod
    def for_device(cls, device: str, quick: bool = False, **overrides) -> "ClipBenchmarkSettings":
        base = dict(frames=32, width=320, height=240) if quick else {}
        base.update({key: value for key, value in overrides.items() if value is not None})
        return cls(device=device, **base)

    def check(self) -> "ClipBenchmarkSettings":
        """Every size possible (one-line InputError otherwise), before anything is encoded or timed."""
        check_range(self.frames, "--frames", minimum=FRAMES_PER_SNIPPET, integer=True,
                    fix=f"the vadclip recipe makes a row of every {FRAMES_PER_SNIPPET} frames")
        check_video_size(self.width, self.height)
        for name in ("batch_size", "repeats"):
            check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        return self


class NetworkRate(NamedTuple):
    precision: str
    snippets_per_second: float
    gflop_per_second: float


@dataclass
class ClipBenchmarkResult:
    settings: ClipBenchmarkSettings
    machine: str
    peaks: Dict[str, float] = field(default_factory=dict)  # precision -> GFLOP/s
    rates: Dict[str, float] = field(default_factory=dict)  # decoding and resizing: label -> frames/s
    network: Dict[str, NetworkRate] = field(default_factory=dict)  # label ("network <precision> <reading>") -> rate
    end_to_end: Dict[str, float] = field(default_factory=dict)  # label -> snippets/s
    ratios: Dict[str, float] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def table(self) -> str:
        settings = self.settings
        rows = [["stage", "rate", "GFLOP/s", "% of peak"]]
        rows += [[label, f"{rate:,.2f}", "", ""] for label, rate in self.rates.items()]
        for label, (precision, rate, gflops) in self.network.items():
            rows.append([f"{label} (snippets/s)", f"{rate:,.3f}", f"{gflops:,.1f}",
                         f"{100 * gflops / self.peaks[precision]:.0f}"])  # fmt: skip
        rows += [[label, f"{rate:,.3f}", "", ""] for label, rate in self.end_to_end.items()]
        rows += [[label, f"{ratio:.2f}x", "", ""] for label, ratio in self.ratios.items()]
        peaks = ", ".join(f"{precision} {rate:,.1f}" for precision, rate in self.peaks.items())
        lines = [
            ascii_table(rows, f" CLIP ViT-B/16 extraction: {self.machine} ", {1: "right", 2: "right", 3: "right"}),
            f"video: {settings.frames} frames of {settings.width}x{settings.height}, vadclip recipe, "
            f"{crops_text(settings.num_crops)}, {settings.batch_size} snippet(s) per forward call",
            f"peak GFLOP/s: {peaks} (the better of a large convolution and matrix product)",
            *self.notes,
        ]
        return "\n".join(lines)


def run_clip_extraction_benchmark(settings: ClipBenchmarkSettings,
                                  log: Callable[[str], None] = print) -> ClipBenchmarkResult:  # fmt: skip
    device = torch.device(settings.check().device)
    result = ClipBenchmarkResult(settings, device_name(device))
    backbone = BACKBONES["clip"]
    preset = PRESETS[backbone.presets[0]]
    snippets = preset.snippet_count(settings.frames)
    precisions = timed_precisions(device, result.notes)
    with tempfile.TemporaryDirectory() as temporary:
        log(f"encoding a {settings.frames}-frame {settings.width}x{settings.height} video")
        video = make_test_video(Path(temporary) / "video.mp4", settings.frames, settings.width, settings.height)
        frames = time_decoding(video, preset, result.rates, "preprocess, vadclip resize (frames/s)")

        encoder = backbone.seeded_network()
        resized = np.stack([preset.resize(frame) for frame in frames[: FRAMES_PER_SNIPPET * settings.batch_size]])
        clips = torch.from_numpy(resized.reshape(-1, FRAMES_PER_SNIPPET, *resized.shape[1:]))
        extractors, runs = {}, {}
        for precision in precisions:
            for reading in FRAME_READINGS:
                label = f"network {precision} {reading}"
                extractors[label] = backbone.runner(encoder, device, precision, reading, None, "eager", log)
                runs[label] = lambda run=extractors[label]: run(clips, preset, settings.num_crops)
        log(f"the network: {', '.join(runs)}: one untimed forward each, then the best of {settings.repeats} taking "
            "turns")
        best = interleaved_best(runs, settings.repeats, device)
        for precision in precisions:
            log(f"the peak: a large convolution and matrix product in {precision}")
            result.peaks[precision] = max(measure_peak(device, precision, PEAK_ROWS).values())
        for label, seconds in best.items():
            _, precision, reading = label.split()
            rate = len(clips) / seconds
            gflop = backbone.gflop_per_crop(reading) * settings.num_crops
            result.network[label] = NetworkRate(precision, rate, rate * gflop)
        for precision in precisions:
            mean, middle = (result.network[f"network {precision} {reading}"].snippets_per_second
                            for reading in ("mean", "middle"))
            result.ratios[f"{precision}: mean / middle, time per snippet"] = middle / mean
        if "bf16" in precisions:
            for reading in FRAME_READINGS:
                result.ratios[f"{reading}: bf16 / fp32, snippets/s"] = (
                    result.network[f"network bf16 {reading}"].snippets_per_second
                    / result.network[f"network fp32 {reading}"].snippets_per_second)
        default = backbone.frame_readings[0]
        label = f"network fp32 {default}"
        log(f"end to end: the pipeline, fp32, {default}")
        seconds = timed(lambda: extract_features([video], extractors[label], preset, settings.num_crops,
                                                 settings.batch_size, on_video=lambda *_: None), device)  # fmt: skip
        result.end_to_end[f"end to end fp32 {default} (snippets/s)"] = snippets / seconds
        result.ratios[f"end to end / network, fp32 {default}"] = (
            snippets / seconds / result.network[label].snippets_per_second)
    return result
