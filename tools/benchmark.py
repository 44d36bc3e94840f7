"""Time the published protocol's training steps and evaluations: one at a time against the fast paths.

    python tools/benchmark.py                          # full sizes on a GPU, reduced sizes on a CPU
    python tools/benchmark.py --device cuda --precision bf16 --shape ucf-crime
    python tools/benchmark.py --quick                  # a small model, seconds on a CPU

Prints the train-step and evaluation times, the projected protocol time (15,000 steps + 10,001 evaluations),
the peak memory and the ratios, a check that both evaluations give the same scores, and where the time of one
forward goes. See anomaly/engine/benchmark.py.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

import torch  # noqa: E402

from anomaly.engine.benchmark import SHAPES, format_report, result_json, run_benchmark, settings_for  # noqa: E402
from anomaly.engine.precision import PRECISIONS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="shanghaitech", help="test-set shape")
    parser.add_argument("--quick", action="store_true", help="a small model on a few videos (seconds on a CPU)")
    parser.add_argument("--steps", type=int, help="timed training steps per path")
    parser.add_argument("--repeats", type=int, help="timed evaluations per path")
    parser.add_argument("--warmup", type=int, help="untimed steps and evaluations before timing")
    parser.add_argument("--batch-size", type=int, help="videos per class in a step (full: 32)")
    parser.add_argument("--test-videos", type=int, help="test videos to use, spread over the lengths (0: all)")
    parser.add_argument("--train-videos", type=int, help="resident training videos per class (default: dataset's)")
    parser.add_argument("--feature-size", type=int, help="channels (full: 2048)")
    parser.add_argument("--num-crops", type=int, help="crops (full: 10)")
    parser.add_argument("--num-atoms", type=int, help="dictionary atoms (default: 158 shanghaitech, 400 ucf-crime)")
    parser.add_argument("--max-snippets", type=int, help="padded positions per evaluation chunk (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-section timing")
    parser.add_argument("--no-check", action="store_true", help="skip comparing the two evaluations' scores")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


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
        args.json.write_text(result_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
