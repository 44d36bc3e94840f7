"""Time I3D feature extraction stage by stage (decode, preprocess, network fp32/bf16 eager and compiled, end to end)
beside the community extractor's way (JPEG files, PIL, float64 numpy, one snippet per forward), in the same run.

    python tools/benchmark_extraction.py               # ShanghaiTech-sized frames; ten crops
    python tools/benchmark_extraction.py --no_compile  # without the compiled formulations (a minute each to compile)
    python tools/benchmark_extraction.py --quick       # a small video and one crop, nothing compiled (a minute)
    s3r benchmark-extraction --backbone clip           # CLIP ViT-B/16: mean against middle, fp32 and bf16
    s3r benchmark-extraction --quick --runtime torch onnxruntime openvino  # the exported runtimes beside PyTorch

Prints the machine (CPU model or GPU), the rates, each network's share of the ceiling (a 3x3x3 convolution in the
same precision) and the ratios. See anomaly/benchmark/extraction.py (I3D) and anomaly/benchmark/clip_extraction.py.
"""

import sys
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.benchmark.clip_extraction import ClipBenchmarkSettings, run_clip_extraction_benchmark
from anomaly.benchmark.extraction import (
    ExtractionBenchmarkSettings,
    check_exported_backbone,
    format_extraction_report,
    run_extraction_benchmark,
)
from anomaly.hardware import resolve_device
from anomaly.layout import BACKBONE_NAMES, NUM_CROPS, RUNTIME_NAMES, TORCH_RUNTIME


class Arguments(CommandArguments):
    backbone: Literal[BACKBONE_NAMES] = "i3d"  # the network timed: i3d (beside the community extractor) or clip
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    quick: bool = False  # a 48-frame (clip: 32-frame) 320x240 video, one crop
    frames: Optional[int] = None  # frames of the test video (more than 16)
    width: Optional[int] = None  # its width (even)
    height: Optional[int] = None  # its height (even)
    num_crops: Optional[Literal[NUM_CROPS]] = None  # crops per snippet (default: i3d 10, clip 1; 1 with --quick)
    batch_size: Optional[int] = None  # snippets per forward
    repeats: Optional[int] = None  # timed runs of each formulation and pipeline, taking turns (the best is kept)
    no_compile: bool = False  # skip the compiled formulations of I3D (CPU; each takes a minute or so to compile)
    runtime: List[str] = [TORCH_RUNTIME]  # what runs the I3D network: torch, and beside it onnxruntime, openvino (exported once, CPU)

    def configure(self) -> None:
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)
        self.add_argument("--runtime", nargs="+", choices=RUNTIME_NAMES)

    def process_args(self) -> None:
        check_exported_backbone(self.runtime, self.backbone)


def run(args: Arguments) -> int:
    device = resolve_device(args.device, "the extraction benchmark")
    if args.backbone == "clip":
        settings = ClipBenchmarkSettings.for_device(
            str(device), quick=args.quick, frames=args.frames, width=args.width, height=args.height,
            num_crops=args.num_crops, batch_size=args.batch_size, repeats=args.repeats,
        )  # fmt: skip
        result = run_clip_extraction_benchmark(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
        print(result.table())
        return 0
    settings = ExtractionBenchmarkSettings.for_device(
        str(device), quick=args.quick, frames=args.frames, width=args.width, height=args.height,
        num_crops=args.num_crops, batch_size=args.batch_size, repeats=args.repeats,
        compile=False if args.no_compile else None, runtimes=tuple(dict.fromkeys([TORCH_RUNTIME, *args.runtime])),
    )  # fmt: skip
    result = run_extraction_benchmark(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_extraction_report(result))
    return 0
