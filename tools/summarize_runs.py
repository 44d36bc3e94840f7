"""Summarize training runs over seeds: best value per run, mean ± std, min, max beside the published figure
(installed as ``s3r-summarize``; runs ``anomaly.cli.summarize_runs``).

    python tools/summarize_runs.py logs/seed-*
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.summarize_runs import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
