"""Time the published protocol's training steps and evaluations: one at a time against the fast paths.

    python tools/benchmark.py                          # full sizes on a GPU, reduced sizes on a CPU
    python tools/benchmark.py --device cuda --precision bf16 --shape ucf-crime
    python tools/benchmark.py --quick                  # a small model, seconds on a CPU

Prints the train-step and evaluation times, the projected protocol time (15,000 steps + 10,001 evaluations),
the peak memory and the ratios, a check that both evaluations give the same scores, and where the time of one
forward goes. See anomaly/engine/benchmark.py. Impossible options (--batch-size 0, --device foo, a --json in a
missing folder, ...) are refused before any work: one line on stderr and exit status 2.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

import torch  # noqa: E402

from anomaly.engine.benchmark import SHAPES, format_report, result_json, run_benchmark, settings_for  # noqa: E402
from anomaly.engine.precision import PRECISIONS  # noqa: E402
from anomaly.errors import InputError  # noqa: E402
from anomaly.files import save_text  # noqa: E402


def at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def channels(text: str) -> int:
    value = at_least(32)(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 32 (the model's GroupNorm), not {value}")
    return value


def device_problem(name: str) -> str:
    """Why ``name`` is not a usable device here, or '' when it is."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "not a torch device (cpu, cuda, cuda:1, ...)"
    if device.type not in ("cpu", "cuda"):
        return f"the benchmark runs on cpu or cuda, not {device.type}"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device is available here (use --device cpu)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    return ""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="shanghaitech", help="test-set shape")
    parser.add_argument("--quick", action="store_true", help="a small model on a few videos (seconds on a CPU)")
    parser.add_argument("--steps", type=at_least(1), help="timed training steps per path")
    parser.add_argument("--repeats", type=at_least(1), help="timed evaluations per path")
    parser.add_argument("--warmup", type=at_least(0), help="untimed steps and evaluations before timing")
    parser.add_argument("--batch-size", type=at_least(1), help="videos per class in a step (full: 32)")
    parser.add_argument("--test-videos", type=at_least(0), help="test videos to use, spread over the lengths (0: all)")
    parser.add_argument("--train-videos", type=at_least(1),
                        help="resident training videos per class, at least --batch-size (default: dataset's)")
    parser.add_argument("--feature-size", type=channels, help="channels, a multiple of 32 (full: 2048)")
    parser.add_argument("--num-crops", type=at_least(1), help="crops (full: 10)")
    parser.add_argument("--num-atoms", type=at_least(1),
                        help="dictionary atoms (default: 158 shanghaitech, 400 ucf-crime)")
    parser.add_argument("--max-snippets", type=at_least(1), help="padded positions per evaluation chunk (default: auto)")
    parser.add_argument("--threads", type=at_least(1), help="CPU threads")
    parser.add_argument("--seed", type=at_least(0))
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-section timing")
    parser.add_argument("--no-check", action="store_true", help="skip comparing the two evaluations' scores")
    parser.add_argument("--json", type=Path, help="also write the results to this file (its folder must exist)")
    args = parser.parse_args(argv)
    problem = device_problem(args.device)
    if problem:
        parser.error(f"--device {args.device}: {problem}")
    if args.json is not None:
        if args.json.is_dir():
            parser.error(f"--json {args.json}: is a folder, not a file")
        if not args.json.parent.is_dir():
            parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = settings_for(
        args.device,
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
    try:
        result = run_benchmark(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        try:
            save_text(result_json(result), args.json)
        except InputError as error:
            print(error, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
