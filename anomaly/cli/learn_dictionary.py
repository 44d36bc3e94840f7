"""Learn a dataset's task-aware dictionary (``s3r learn-dictionary``; the published per-dataset scripts
``data/<dataset>/<dataset>_dictionary_learning.py`` and ``tools/learn_dictionary.py`` run it).

Builds the regular-features pickle first when it is missing, then learns and saves the task-aware dictionary
(and, given ``--universal_dictionary``, the universal states). File names come from the dataset's config
(``anomaly.config.load_dataset_config``), so the dictionary written with ``--max_iter N`` is the one the trainer
reads with ``--dictionary_max_iter N``.
"""

from pathlib import Path
from typing import Optional

from anomaly.cli.command import CommandArguments
from anomaly.config import load_dataset_config
from anomaly.data.description import check_dataset_name
from anomaly.dictionary_learning import learn_dataset_dictionary
from anomaly.errors import check_range
from anomaly.layout import MAX_SEED, TRAINING_SNIPPETS, check_feature_size


class Arguments(CommandArguments):
    """The published scripts' options (same names and defaults) plus ``ratio``, ``num_anomalous``,
    ``feature_size`` and ``universal_dictionary`` (defaults from the dataset's config)."""

    backbone: Optional[str] = None  # feature extractor (folder and file suffix; default: the dataset's, i3d)
    batch_size: int = 32  # samples per mini-batch update (<= 0: the number of normal videos, as published)
    workers: int = 4  # kept for compatibility: the sparse codes are computed in this process (faster)
    dataset: str = "shanghaitech"  # a built-in dataset or one described under --root_path (s3r make-dataset)
    quantize_size: int = TRAINING_SNIPPETS  # snippets per video in the regular-features pickle (as in training)
    max_iter: int = 100  # mini-batch updates (scikit-learn 0.24's n_iter); also in the output file name
    root_path: Path = Path("data")  # folder of the datasets
    dictionary_path: Path = Path("dictionary")  # folder of the dictionaries
    seed: Optional[int] = 42  # random state of dictionary learning
    debug: bool = False  # smoke test: 1 update on at most 2 × batch_size videos, nothing but "1iters" written
    ratio: Optional[int] = None  # atoms in percent of the normal videos (default: the config's, 90 / 50)
    num_anomalous: Optional[int] = None  # anomalous rows at the top of the training list (default: config)
    feature_size: Optional[int] = None  # channels C (default: the config's, 2048)
    universal_dictionary: Optional[Path] = None  # also cache the universal states from this [K, C'] .npy

    def process_args(self) -> None:
        """Refuse impossible values before any work (exit status 2, one line)."""
        if self.ratio is not None:
            check_range(self.ratio, "--ratio", minimum=1, maximum=100, integer=True,
                        fix="the atoms are a percentage of the normal videos")
        if self.backbone is not None:
            check_dataset_name(self.backbone, what="a backbone name")
        if self.seed is not None:
            check_range(self.seed, "--seed", minimum=0, maximum=MAX_SEED, integer=True)
        for name in ("max_iter", "quantize_size", "num_anomalous"):
            if getattr(self, name) is not None:
                check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        if self.feature_size is not None:
            check_feature_size(self.feature_size, "--feature_size")


def run(args: Arguments) -> int:
    """Learn, and print the files written."""
    max_iter = 1 if args.debug else args.max_iter
    config = load_dataset_config(
        args.dataset, args.root_path, args.dictionary_path, feature_size=args.feature_size,
        dictionary_ratio=args.ratio, dictionary_max_iter=max_iter, num_anomalous_train=args.num_anomalous,
        backbone=args.backbone,
    )
    written = learn_dataset_dictionary(
        config, args.root_path, quantize_size=args.quantize_size, batch_size=args.batch_size,
        seed=args.seed, debug=args.debug, universal_dictionary=args.universal_dictionary,
    )
    for path in written:
        print(f"wrote {path}")
    return 0
