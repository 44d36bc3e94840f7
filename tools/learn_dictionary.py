"""Learn any configured dataset's task-aware dictionary (the per-dataset scripts in data/ do the same for theirs).

    python tools/learn_dictionary.py --dataset synthetic

Options as in data/shanghaitech/shanghaitech_dictionary_learning.py (run with --help).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("learn-dictionary", argv, defaults={"dataset": "synthetic"})


if __name__ == "__main__":
    sys.exit(main())
