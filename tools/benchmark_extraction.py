"""Time I3D feature extraction stage by stage (decode, preprocess, network fp32/bf16, end to end) beside the
(installed as ``s3r-benchmark-extraction``; runs ``anomaly.cli.benchmark_extraction``).

    python tools/benchmark_extraction.py            # ShanghaiTech-sized frames; ten crops
    python tools/benchmark_extraction.py --quick    # a small video and one crop (a minute on a CPU)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.benchmark_extraction import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
