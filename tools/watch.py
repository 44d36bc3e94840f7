"""Watch a camera, a stream or a video: live anomaly scores as the snippets arrive, alerts, and a report at the end
(``s3r watch``).

    python tools/watch.py rtsp://camera.local/stream --detector checkpoint/mine/my-cameras_s3r_i3d.detector.pth \
        --weights pretrained/i3d_r50_kinetics.pth --output output/watch/camera.jsonl
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("watch", argv)


if __name__ == "__main__":
    sys.exit(main())
