"""Learn a dataset's task-aware dictionary (``s3r learn-dictionary``; the published per-dataset scripts
``data/<dataset>/<dataset>_dictionary_learning.py`` and ``tools/learn_dictionary.py`` run it).

Builds the regular-features pickle first when it is missing, then learns and saves the task-aware dictionary
(and, given ``--universal_dictionary``, the universal states). File names come from the dataset's config
(``anomaly.config.load_dataset_config``), so the dictionary written with ``--max_iter N`` is the one the trainer
reads with ``--dictionary_max_iter N``.
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.cli.options import check_feature_size_option
from anomaly.config import load_dataset_config
from anomaly.data.datasets import load_dictionary
from anomaly.data.video_lists import split_training_list
from anomaly.dictionary_learning import (
    TRANSFORM_NONZERO_COEFS,
    build_regular_features,
    learn_task_dictionary,
    load_regular_features,
    minimum_videos,
    number_of_atoms,
    universal_states,
    video_means,
    write_regular_features,
)
from anomaly.errors import InputError, check_range
from anomaly.files import ensure_folder, save_npy
from anomaly.layout import TRAINING_SNIPPETS


class Arguments(CommandArguments):
    """The published scripts' options (same names and defaults) plus ``ratio``, ``num_anomalous``,
    ``feature_size`` and ``universal_dictionary`` (defaults from the dataset's config)."""

    backbone: Literal["i3d", "c3d"] = "i3d"  # feature extractor (folder and file suffix)
    batch_size: int = 32  # samples per mini-batch update (<= 0: the number of normal videos, as published)
    workers: int = 4  # parallel jobs for the final sparse coding (when C >= 1024)
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
        for name in ("max_iter", "quantize_size", "num_anomalous"):
            if getattr(self, name) is not None:
                check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        check_feature_size_option(self.feature_size)


def run(args: Arguments) -> int:
    """Learn, and print the files written."""
    for path in learn_dataset_dictionary(args):
        print(f"wrote {path}")
    return 0


def learn_dataset_dictionary(args: Arguments) -> List[Path]:
    """Learn the dictionary the options describe; returns the files written."""
    max_iter = 1 if args.debug else args.max_iter
    config = load_dataset_config(
        args.dataset, args.root_path, args.dictionary_path, feature_size=args.feature_size,
        dictionary_ratio=args.ratio, dictionary_max_iter=max_iter, num_anomalous_train=args.num_anomalous,
    )
    ratio, files = config.dictionary_ratio, config.files
    normal_ids = split_training_list(files.training_list, config.num_anomalous_train)["normal"]
    if args.debug:
        normal_ids = normal_ids[: 2 * max(args.batch_size, 1)]
    if number_of_atoms(len(normal_ids), ratio) < TRANSFORM_NONZERO_COEFS:  # fail before reading any features
        raise InputError(
            files.training_list,
            f"{len(normal_ids)} normal video(s) at {ratio} % give {number_of_atoms(len(normal_ids), ratio)} "
            f"atom(s); dictionary learning needs at least {minimum_videos(ratio)} normal videos",
        )
    universal = None if args.universal_dictionary is None else load_dictionary(args.universal_dictionary)
    ensure_folder(files.task_dictionary.parent)  # a blocked output fails before any feature is read

    written = []
    regular_file = files.regular_features
    if regular_file.is_file() and not args.debug:
        regular = load_regular_features(regular_file, config.feature_size, args.quantize_size)
        if list(regular) != list(normal_ids):
            raise InputError(regular_file, f"its videos are not the normal videos of {files.training_list}; delete "
                             "it to rebuild it")
    else:
        regular = build_regular_features(args.root_path, args.dataset, normal_ids, args.backbone,
                                         args.quantize_size, feature_size=config.feature_size)
        if not args.debug:
            written.append(write_regular_features(regular, regular_file))
    dictionary = learn_task_dictionary(
        video_means(regular), ratio, max_iter=max_iter, batch_size=args.batch_size, seed=args.seed,
        n_jobs=args.workers if args.workers > 0 else None,
        source=files.training_list if args.debug else regular_file, progress=True,
    )
    save_npy(dictionary, files.task_dictionary)
    written.append(files.task_dictionary)
    if universal is not None:
        states = universal_states(regular.values(), universal, source=args.universal_dictionary)
        save_npy(states, files.universal_states)
        written.append(files.universal_states)
    return written
