"""Summarize training runs over seeds: best value per run, mean ± std, min, max beside the published figure
(``s3r summarize``).

    python tools/summarize_runs.py logs/seed-*
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("summarize", argv)


if __name__ == "__main__":
    sys.exit(main())
