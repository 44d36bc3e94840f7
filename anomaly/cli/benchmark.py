"""Time the published protocol's training steps and evaluations: one at a time against the fast paths.

    python tools/benchmark.py                          # full sizes on a GPU, reduced sizes on a CPU
    python tools/benchmark.py --device cuda --precision bf16 --shape ucf-crime
    python tools/benchmark.py --quick                  # a small model, seconds on a CPU

Prints the CPU (or GPU) it ran on, the train-step and evaluation times, each path's achieved GFLOP/s and its
share of a measured peak, the projected protocol time (15,000 steps + 10,001 evaluations), the peak memory and
the ratios, where each path's time goes by kernel library, the convolution kernels chosen, a check that both
evaluations give the same scores, and where the time of one forward goes. See anomaly/benchmark/detector.py.
Impossible options (--batch-size 0, --device foo, a --json in a missing folder, ...) are refused before any work.
"""

import sys
from pathlib import Path
from typing import Literal, Optional

from anomaly.benchmark.detector import run_benchmark, settings_for
from anomaly.benchmark.inputs import SHAPES
from anomaly.benchmark.report import format_report, result_json
from anomaly.cli.command import CommandArguments
from anomaly.errors import InputError, check_range
from anomaly.files import save_text
from anomaly.hardware import resolve_device
from anomaly.layout import MAX_SEED, check_feature_size
from anomaly.precision import PRECISIONS


class Arguments(CommandArguments):
    """Options spelled with dashes (--batch-size): ``underscores_to_dashes`` is always on."""

    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    precision: Literal[PRECISIONS] = "fp32"  # arithmetic of both paths; bf16 where native (CUDA, a CPU with AVX512-BF16/AMX), else fp32 with a one-line note
    shape: Literal[tuple(sorted(SHAPES))] = "shanghaitech"  # test-set shape
    quick: bool = False  # a small model on a few videos (seconds on a CPU)
    steps: Optional[int] = None  # timed training steps per path
    repeats: Optional[int] = None  # timed evaluations per path
    warmup: Optional[int] = None  # untimed steps and evaluations before timing
    batch_size: Optional[int] = None  # videos per class in a step (full: 32)
    test_videos: Optional[int] = None  # test videos to use, spread over the lengths (0: all)
    train_videos: Optional[int] = None  # resident training videos per class, at least --batch-size (default: dataset's)
    feature_size: Optional[int] = None  # channels, a multiple of 32 (full: 2048)
    num_crops: Optional[int] = None  # crops (full: 10)
    num_atoms: Optional[int] = None  # dictionary atoms (default: 158 shanghaitech, 400 ucf-crime)
    max_snippets: Optional[int] = None  # padded positions per evaluation chunk (default: auto)
    threads: Optional[int] = None  # CPU threads
    seed: Optional[int] = None  # random seed
    no_breakdown: bool = False  # skip the per-section timing
    no_check: bool = False  # skip comparing the two evaluations' scores
    json: Optional[Path] = None  # also write the results to this file (its folder must exist)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, underscores_to_dashes=True, **kwargs)

    def configure(self) -> None:
        self.add_argument("--precision", type=str, choices=PRECISIONS)  # argparse's "invalid choice: 'x'"
        self.add_argument("--shape", type=str, choices=sorted(SHAPES))

    def process_args(self) -> None:
        for name in ("steps", "repeats", "batch_size", "train_videos", "num_crops", "num_atoms", "max_snippets",
                     "threads", "warmup", "test_videos", "seed"):
            if getattr(self, name) is not None:
                minimum = 0 if name in ("warmup", "test_videos", "seed") else 1
                maximum = MAX_SEED if name == "seed" else None
                check_range(getattr(self, name), f"--{name.replace('_', '-')}", minimum=minimum, maximum=maximum,
                            integer=True)
        if self.feature_size is not None:
            check_feature_size(self.feature_size, "--feature-size")


def run(args: Arguments) -> int:
    # What this machine and its files allow is checked here, not while parsing: a command line parses the same
    # everywhere (the documentation's command lines are parsed by the tests on machines without CUDA).
    device = resolve_device(args.device, "the benchmark")
    if args.json is not None:
        if args.json.is_dir():
            raise InputError(args.json, "is a folder, not a file (--json)")
        if not args.json.parent.is_dir():
            raise InputError(args.json, f"the folder {args.json.parent} does not exist (--json)")
    settings = settings_for(
        str(device),
        quick=args.quick,
        precision=args.precision,
        shape=args.shape,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        batch_size=args.batch_size,
        test_videos=args.test_videos,
        train_videos=args.train_videos,
        feature_size=args.feature_size,
        num_crops=args.num_crops,
        num_atoms=args.num_atoms,
        max_snippets=args.max_snippets,
        threads=args.threads,
        seed=args.seed,
        breakdown=False if args.no_breakdown else None,
        check=False if args.no_check else None,
    )
    result = run_benchmark(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_report(result))
    if args.json:
        save_text(result_json(result), args.json)
    return 0
