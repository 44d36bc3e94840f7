"""From folders of videos to a dataset every tool takes as ``--dataset NAME`` (``s3r make-dataset``).

Layout of the videos folder: ``train/normal/**`` and ``train/anomalous/**`` (video-level labels: the weak
supervision), and ``test/**`` (videos anywhere below; their frame labels come from the annotations alone, a test
video without annotations is normal). Written under ``<root>/<NAME>/``, as for the published datasets:

- ``<backbone>/train/`` and ``<backbone>/test/`` (``i3d`` by default): the features (``anomaly.extraction``:
  resumable, split under torchrun);
- ``<NAME>.training.csv`` (anomalous videos first) and ``<NAME>.testing.csv``;
- ``<NAME>_ground_truth.testing.json``: frame labels aligned with the features, ``num_frames = 16 × T`` under the
  preset's rule (``anomaly.video_dataset.annotations.aligned_labels``);
- ``<NAME>.dataset.json``: the description (``anomaly.data.description``);

and the dictionary under ``<dictionary root>/<NAME>/``. Every check that needs no decoding runs before anything is
written; lists, ground truth and description are written only once every video is extracted and every label is
known, so a run that stops (killed, or refused) leaves nothing that a rerun would misread: the rerun continues.
"""

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from anomaly.config import load_dataset_config
from anomaly.data.catalog import DATASETS
from anomaly.data.description import DatasetDescription, check_dataset_name, description_path, write_description
from anomaly.data.features import feature_folder
from anomaly.data.ground_truth import write_ground_truth
from anomaly.data.video_lists import order_video_list, video_id_problem, write_video_list
from anomaly.dictionary_learning import check_enough_normal_videos, learn_dataset_dictionary, minimum_videos
from anomaly.errors import InputError, check_range
from anomaly.extraction import (
    ExtractionPlan,
    ExtractionSettings,
    FeatureOptions,
    Preset,
    list_videos,
    plan_extraction,
    run_plan,
)
from anomaly.extraction.video import VideoDecoder
from anomaly.layout import FRAMES_PER_SNIPPET, dataset_files
from anomaly.video_dataset.annotations import Annotations, aligned_labels, read_annotations

PathLike = Union[str, Path]
MAX_BATCH_SIZE = 32  # the published batch: a larger dataset trains with it, a smaller one with what it has


@dataclass
class VideoFolders:
    """The videos of the three groups, each sorted; stems are unique across all of them."""

    normal: List[Path]
    anomalous: List[Path]
    test: List[Path]

    @classmethod
    def scan(cls, videos: PathLike) -> "VideoFolders":
        videos = Path(videos)
        if not videos.is_dir():
            raise InputError(videos, "not a folder of videos (it needs train/normal, train/anomalous and test)")
        groups = {}
        for name, folder in (("normal", videos / "train" / "normal"), ("anomalous", videos / "train" / "anomalous"),
                             ("test", videos / "test")):  # fmt: skip
            if not folder.is_dir():
                raise InputError(folder, f"missing: the {name} videos go there (train/normal, train/anomalous, test)")
            groups[name] = list_videos([folder])  # none there: one line naming the folder
        folders = cls(**groups)
        folders.check_unique_stems()
        return folders

    def check_unique_stems(self) -> None:
        """Every video's stem is an id that the CSV lists and JSON ground truth keep as it is, and no two are one."""
        seen: Dict[str, Path] = {}
        for video in self.normal + self.anomalous + self.test:
            problem = video_id_problem(video.stem)
            if problem:
                raise InputError(video, f"its name '{video.stem}' cannot be a video id in the dataset's lists "
                                 f"({problem}): rename the file")
            other = seen.setdefault(video.stem, video)
            if other != video:
                raise InputError(video, f"has the same name as {other}: a video's name (its stem) is its id in the "
                                 "lists, the annotations and the feature files; rename one of them")


def training_batch_size(classes: Dict[str, int], batch_size: Optional[int]) -> int:
    """The trainer's batch (videos per class): ``batch_size`` when the smaller class fills it, by default as many as
    the smaller class holds, up to the published 32. ``classes``: the number of training videos of each class, by
    where they are (``train/normal``: what a refusal names)."""
    smaller = min(classes, key=classes.get)
    fewest = classes[smaller]
    if batch_size is None:
        return min(MAX_BATCH_SIZE, fewest)
    check_range(batch_size, "--batch_size", minimum=1, integer=True)
    if batch_size > fewest:
        raise InputError(None, f"--batch_size {batch_size} needs {batch_size} training videos of each class, but "
                         f"{smaller} has {fewest}: --batch_size {fewest} or less would work (or add videos)")
    return batch_size


def next_commands(name: str, root: Path, dictionaries: Path, learn_dictionary: bool) -> List[str]:
    """The commands that train the dataset ``name`` (first learning its dictionary when ``learn_dictionary``), with
    the folder options that differ from the defaults."""
    options = "" if root == Path("data") else f" --root_path {shlex.quote(str(root))}"
    options += "" if dictionaries == Path("dictionary") else f" --dictionary_path {shlex.quote(str(dictionaries))}"
    learn = [f"s3r learn-dictionary --dataset {name}{options}"] if learn_dictionary else []
    return learn + [f"s3r train --dataset {name}{options} --version {name}"]


def check_same_recipe(name: str, plans: Sequence[ExtractionPlan]) -> None:
    """Features already there (a rerun) must have been made with the same recipe: never mixed."""
    for plan in plans:
        other = plan.other_recipe()
        if other is not None:
            raise InputError(other.settings, f"features of dataset '{name}' were made with {other.recipe}, not "
                             f"{plan.settings.recipe}: rerun with those, or make the dataset under another name")


def video_ground_truth(video: Path, annotations: Annotations, preset: Preset, frames: int) -> np.ndarray:
    """The frame labels of a test video aligned with its features: 16 × T of them, T as ``preset`` makes it from
    the video's ``frames`` decoded frames (loop-padded tail: labelled as the last frame; dropped tail: not there).
    Only intervals in seconds need the video decoded again, for its frames' times (the first ``frames``: those
    extracted, also of a partial video)."""
    times = None
    if annotations.needs_times and video.stem in annotations.intervals:
        times = VideoDecoder(video).frame_times(frames)
        if len(times) != frames:
            raise InputError(video, f"decodes {len(times)} frames now, {frames} when it was extracted: remove its "
                             "features to extract it again")
    labels = annotations.frame_labels(video.stem, frames, times)
    return aligned_labels(labels, preset.keep_tail, preset.snippet_count(frames), FRAMES_PER_SNIPPET)


def check_both_classes(labels: Dict[str, np.ndarray], source: PathLike) -> None:
    anomalous = int(sum(label.sum() for label in labels.values()))
    total = sum(len(label) for label in labels.values())
    if anomalous == 0 or anomalous == total:
        kind = "no anomalous" if anomalous == 0 else "no normal"
        if anomalous == 0:
            fix = ("annotate the anomalous intervals of the test videos (an interval in seconds holds the frames "
                   "shown at start <= t < end)")
        else:
            fix = "add normal test videos, or annotate only the anomalous intervals"
        raise InputError(source, f"the test videos have {kind} frame among their {total} frames: frame-level AUC "
                         f"needs both; {fix}")


def make_dataset(
    name: str,
    videos: PathLike,
    annotations: Optional[PathLike],
    options: FeatureOptions,
    batch_size: Optional[int] = None,
    root_path: PathLike = "data",
    dictionary_path: PathLike = "dictionary",
    dictionary_ratio: int = 90,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> int:
    """Make the dataset ``name`` from the folder ``videos`` (see the module docstring), extracting its features
    with ``options`` (its ``batch_size`` is the extraction's; ``batch_size`` here is the training batch the
    description records). Returns the number of videos that could not be extracted (each said in one line): then
    nothing but features is written, and a rerun after fixing or removing them continues. Bad input raises a
    one-line ``InputError`` first."""
    root, videos = Path(root_path), Path(videos)
    check_dataset_name(name)
    if name in DATASETS:
        raise InputError(None, f"'{name}' is a built-in dataset: choose another name for yours")
    check_range(dictionary_ratio, "--dictionary_ratio", minimum=1, maximum=100, integer=True)
    folders = VideoFolders.scan(videos)
    train_batch = training_batch_size({"train/normal": len(folders.normal),
                                       "train/anomalous": len(folders.anomalous)}, batch_size)
    check_enough_normal_videos(len(folders.normal), dictionary_ratio, videos / "train" / "normal",
                               fix=f"add normal videos (at least {minimum_videos(dictionary_ratio)}) or raise "
                               "--dictionary_ratio")
    if annotations is None:
        raise InputError(None, "--annotations is needed: without it every test frame is normal, and frame-level AUC "
                         "needs anomalous frames too (a CSV in seconds or frames, or a folder of frame masks)")
    read = read_annotations(annotations)
    read.check_videos([video.stem for video in folders.test])
    plans = [
        plan_extraction(group, feature_folder(root, name, options.backbone, subset), options)
        for group, subset in ((folders.anomalous + folders.normal, "train"), (folders.test, "test"))
    ]
    check_same_recipe(name, plans)
    summaries = [run_plan(plan, progress, log) for plan in plans]
    if not all(summary.is_main for summary in summaries):
        return 0  # under torchrun the first process writes the rest
    failed = [result for summary in summaries for result in summary.results if result.status == "failed"]
    if failed:
        log(f"{len(failed)} video(s) could not be extracted (said above): fix or remove them and run again; the "
            "dataset's lists, ground truth and description are written once every video is extracted")
        return len(failed)
    records = {result.video: result.record for summary in summaries for result in summary.results}
    labels = {video.stem: video_ground_truth(video, read, plans[1].preset, records[video]["frames"])
              for video in plans[1].videos}
    check_both_classes(labels, annotations)
    return _write_dataset(name, folders, labels, root, Path(dictionary_path), plans[0].settings,
                          train_batch, dictionary_ratio, log)


def _write_dataset(
    name: str, folders: VideoFolders, labels: Dict[str, np.ndarray], root: Path, dictionaries: Path,
    settings: ExtractionSettings, batch_size: int, ratio: int, log: Callable[[str], None],
) -> int:  # fmt: skip
    """Lists, ground truth and description (that last: a dataset is described once it is whole; it records the
    features' ``settings``), then the dictionary; says the command that trains it."""
    feature_size = settings.network.feature_size
    files = dataset_files(name, ratio, feature_size, 1)
    anomalous = [video.stem for video in folders.anomalous]
    write_video_list(order_video_list(anomalous + [video.stem for video in folders.normal], anomalous),
                     root / files["data_file_train"])
    write_video_list(sorted(labels), root / files["data_file_test"])
    write_ground_truth({stem: labels[stem] for stem in sorted(labels)}, root / files["ann_file_test"])
    description = DatasetDescription(name, settings.num_crops, feature_size, "AUC", len(anomalous), ratio, batch_size,
                                     backbone=settings.backbone, preset=settings.preset, frames=settings.frames,
                                     weights_sha256=settings.weights_sha256)  # fmt: skip
    write_description(description, root)
    config = load_dataset_config(name, root, dictionaries)
    config.files.regular_features.unlink(missing_ok=True)  # derived from the features: rebuilt for these videos
    for path in learn_dataset_dictionary(config, root):
        log(f"wrote {path}")
    log(f"dataset '{name}': {len(folders.anomalous)} anomalous and {len(folders.normal)} normal training videos, "
        f"{len(labels)} test videos; described by {description_path(root, name)}")
    print("\n".join(next_commands(name, root, dictionaries, learn_dictionary=False)))
    return 0
