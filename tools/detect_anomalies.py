"""Score videos with a trained S3R: an anomaly curve per video (CSV, PNG, HTML report) and the segments above a
threshold (``s3r detect``).

    python tools/detect_anomalies.py street.mp4 --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth \
        --dictionary dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.90pct.npy \
        --weights pretrained/i3d_r50_kinetics.pth --output output/street
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("detect", argv)


if __name__ == "__main__":
    sys.exit(main())
