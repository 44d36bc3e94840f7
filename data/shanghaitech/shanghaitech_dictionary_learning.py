"""ShanghaiTech: learn the task-aware dictionary of S3R (90 % of the 175 normal training videos: 158 atoms).

    python data/shanghaitech/shanghaitech_dictionary_learning.py [--max_iter 100] [--seed 42] [--debug] ...

Builds ``dictionary/shanghaitech/shanghaitech_regular_features-2048dim.training.pickle``
first when it is missing, then writes
``dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.<R>pct.npy``. The options are the published
script's; the work is done by ``anomaly.cli.learn_dictionary`` (run with --help for all options).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for ``anomaly`` and ``configs``

from anomaly.cli.command import run_command  # noqa: E402


def main(argv=None) -> int:
    return run_command("learn-dictionary", argv, defaults={"dataset": "shanghaitech"})


if __name__ == "__main__":
    sys.exit(main())
