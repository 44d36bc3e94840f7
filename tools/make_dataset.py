"""Make a trainable dataset from folders of your videos (``s3r make-dataset``).

    python tools/make_dataset.py my-cameras --videos clips/ --annotations incidents.csv \
        --weights pretrained/i3d_r50_kinetics.pth
    torchrun --nproc_per_node 4 tools/make_dataset.py my-cameras --videos clips/ ...   # extraction split over GPUs
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("make-dataset", argv)


if __name__ == "__main__":
    sys.exit(main())
