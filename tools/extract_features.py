"""Extract ten-crop I3D ResNet-50 features (float32 [T, N, 2048] per video) from videos (``s3r extract``).

    python tools/extract_features.py --videos path/to/videos/ --output data/mine/i3d/test \
        --weights pretrained/i3d_r50_kinetics.pth
    torchrun --nproc_per_node 4 tools/extract_features.py --videos list.txt --output features/ --weights ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("extract", argv)


if __name__ == "__main__":
    sys.exit(main())
