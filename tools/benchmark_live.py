"""What live detection costs here: the accuracy of causal scores beside offline ones, and the speed of a snippet
(``s3r benchmark-live``).

    python tools/benchmark_live.py --dataset synthetic --checkpoint checkpoint/demo/synthetic_s3r_i3d_best.pth
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("benchmark-live", argv)


if __name__ == "__main__":
    sys.exit(main())
