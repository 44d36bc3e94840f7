"""Write a synthetic dataset in the real on-disk layout (lists, ground truth, ten-crop features) from a seed
(``s3r synthetic``).

    python tools/make_synthetic_dataset.py                       # data/synthetic/, 128 channels, seed 0
    python tools/make_synthetic_dataset.py --feature_size 2048   # a full-size one
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("synthetic", argv)


if __name__ == "__main__":
    sys.exit(main())
