"""Build a test split's frame-level ground-truth json from a dataset's own annotations (``s3r ground-truth``).

    python tools/make_ground_truth.py --dataset shanghaitech --annotations test_frame_mask/ \
        --features data/shanghaitech/i3d/test --list data/shanghaitech/shanghaitech.testing.csv \
        --output data/shanghaitech/shanghaitech_ground_truth.testing.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("ground-truth", argv)


if __name__ == "__main__":
    sys.exit(main())
