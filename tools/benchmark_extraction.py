"""Time I3D feature extraction stage by stage beside the community extractor's way (``s3r benchmark-extraction``).

    python tools/benchmark_extraction.py            # ShanghaiTech-sized frames; ten crops
    python tools/benchmark_extraction.py --quick    # a small video and one crop (a minute on a CPU)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("benchmark-extraction", argv)


if __name__ == "__main__":
    sys.exit(main())
