"""UCF-Crime: learn the task-aware dictionary of S3R (50 % of the 800 normal training videos: 400 atoms).

    python data/ucf-crime/ucf_crime_dictionary_learning.py [--max_iter 100] [--seed 42] [--debug] ...

Builds ``dictionary/ucf-crime/ucf-crime_regular_features-2048dim.training.pickle``
first when it is missing, then writes
``dictionary/ucf-crime/ucf-crime_dictionaries.taskaware.omp.100iters.<R>pct.npy``. The options are the published
script's; the work is done by ``anomaly.cli.learn_dictionary`` (run with --help for all options).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for ``anomaly`` and ``configs``

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("learn-dictionary", argv, defaults={"dataset": "ucf-crime"})


if __name__ == "__main__":
    sys.exit(main())
