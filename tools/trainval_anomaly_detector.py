"""Train S3R on a dataset, or evaluate a checkpoint (--inference --resume PATH): the published script (``s3r train``).

    python tools/trainval_anomaly_detector.py --dataset shanghaitech --version s3r-vad-0.1
    python tools/trainval_anomaly_detector.py --dataset shanghaitech --inference --resume checkpoint/shanghaitech_s3r_i3d_best.pth
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("train", argv)


if __name__ == "__main__":
    sys.exit(main())
