"""Time the published protocol's training steps and evaluations: one at a time against the fast paths (``s3r benchmark``).

    python tools/benchmark.py                          # full sizes on a GPU, reduced sizes on a CPU
    python tools/benchmark.py --device cuda --precision bf16 --shape ucf-crime
    python tools/benchmark.py --quick                  # a small model, seconds on a CPU
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("benchmark", argv)


if __name__ == "__main__":
    sys.exit(main())
