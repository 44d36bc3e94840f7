"""Write a ``video-id`` csv list of every feature file of a folder, anomalous videos first (``s3r video-lists``).

    python tools/make_video_lists.py --dataset ucf-crime --features data/ucf-crime/i3d/train \
        --output data/ucf-crime/ucf-crime.training.csv
    python tools/make_video_lists.py --dataset shanghaitech --features data/shanghaitech/i3d/train \
        --anomalous test_frame_mask/ --output data/shanghaitech/shanghaitech.training.csv
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("video-lists", argv)


if __name__ == "__main__":
    sys.exit(main())
