"""VadCLIP's released CLIP features (github.com/nwpu-zxr/VadCLIP, AAAI 2024) as a described dataset.

The release, as its lists (``list/ucf_CLIP_rgb.csv``, ``ucf_CLIP_rgbtest.csv``, ``xd_CLIP_rgb.csv``,
``xd_CLIP_rgbtest.csv``) name it:

- one file per video and crop, ``<video>__<k>.npy``: float ``[T, 512]``, a row per 16 frames (CLIP ViT-B/16 image
  embeddings); k = 0..9: the centre crop, the top-left, top-right, bottom-left and bottom-right ones, then the same
  five of the flipped frame. UCF-Crime's files sit in a folder per class (``Abuse/``, ...,
  ``Training_Normal_Videos_Anomaly/``, ``Testing_Normal_Videos_Anomaly/``), XD-Violence's in one folder per split;
- the lists: CSV with the header ``path,label``, one row per crop file. The training lists name all ten crops of
  every video, the test lists one (``__5`` for UCF-Crime, ``__0`` for XD-Violence). Labels: UCF-Crime's class
  names, ``Normal`` for a normal video; XD-Violence's the ``_label_`` part of the name (``B1-0-0``, ``G-B2-B6``),
  ``A`` for a normal video.

The lists' paths are the authors' (``/home/xbgydx/Desktop/UCFClipFeatures/Abuse/...``). Given ``features``
folders, a path is looked up under them by its longest tail that is there (``UCFClipFeatures/Abuse/x__0.npy``, then
``Abuse/x__0.npy``, then ``x__0.npy``), so the downloaded folder and the one above it both do; without, the paths
are read as written (VadCLIP's README has them edited to the download).

A video's crops are stacked into ``[T, crops, 512]`` float32 in VadCLIP's crop order. A dataset has one crop count:
ten where every video has its ten crop files; where some videos have only the crop their list names (the test
videos of a release that holds only the crop its test list names), that crop of every video, training videos too,
and one line says so. Frame labels are ``16 × T`` per test video, from the official annotations (UCF-Crime's
``Temporal_Anomaly_Annotation_for_Testing_Videos.txt`` or its folder of ``.mat`` files, XD-Violence's
``annotations.txt``) as ``anomaly.data.ground_truth`` reads them: every anomalous test video needs its line, a
normal one's line (UCF-Crime has them) must mark nothing, and lines of videos the test list does not name are left
out (a list may hold a part of the release).

Every check runs before anything is written, each refusal one line naming the file. The dataset is written into a
hidden folder beside its own (``.<name>.importing-*``) and renamed into place once whole: a refused, failed or
interrupted import leaves no dataset (a killed one's hidden folder goes at the next import of that name), and an
existing dataset of that name is refused, never touched.
"""

import csv
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from anomaly.config import load_dataset_config
from anomaly.data.arrays import read_npy
from anomaly.data.catalog import DATASETS
from anomaly.data.description import DatasetDescription, check_dataset_name, description_path, write_description
from anomaly.data.features import feature_file, feature_folder
from anomaly.data.ground_truth import (
    Ranges,
    ranges_to_labels,
    read_text_file,
    read_ucf_crime_annotations,
    read_xd_violence_sources,
    write_ground_truth,
)
from anomaly.data.video_lists import order_video_list, video_id_problem, write_video_list
from anomaly.dictionary_learning import check_enough_normal_videos, minimum_videos
from anomaly.errors import InputError, check_choice, check_range
from anomaly.files import check_writable_folder, ensure_folder, save_npy
from anomaly.layout import BACKBONE_FEATURE_SIZES, FRAMES_PER_SNIPPET, crops_text, dataset_files
from anomaly.video_dataset.builder import next_commands, training_batch_size

PathLike = Union[str, Path]
BACKBONE = "clip"  # the features' folder and file suffix: <root>/<name>/clip/{train,test}/<id>_clip.npy
FEATURE_SIZE = BACKBONE_FEATURE_SIZES[BACKBONE]  # CLIP ViT-B/16's image embedding
PRESET = "vadclip"  # VadCLIP's frame recipe (anomaly.extraction.preprocess), as far as it is published
CROPS = 10  # VadCLIP's crops of a frame, in its order: centre, 4 corners, then the same five of the flipped frame
PRESET_CROPS = ([0], list(range(CROPS)))  # the crops that recipe cuts (1 crop: the centre, VadCLIP's crop 0)
LIST_HEADER = ("path", "label")
CROP_FILE = re.compile(r"(?P<video>.+)__(?P<crop>[0-9])\.npy")
ROW_AXES = (("T", "rows"), ("C", "channels"))
STAGING = "importing"  # .<name>.importing-<random>: the hidden folder a dataset is written into


@dataclass(frozen=True)
class Benchmark:
    """What VadCLIP's lists of one benchmark's videos hold, and where its frame labels come from."""

    title: str
    normal_label: str
    classes: Tuple[str, ...]  # the anomalous videos' labels
    joined: bool  # a label joins up to three classes with '-', padded with '0' (XD-Violence's B2-G-0)
    read_annotations: Callable[[PathLike], Tuple[Dict[str, Ranges], Dict[str, Path]]]  # ranges and their files

    def label_problem(self, label: str) -> str:
        """Why ``label`` is not one of this benchmark's ('' when it is)."""
        parts = label.split("-") if self.joined else [label]
        if label == self.normal_label or (len(parts) <= 3 and parts[0] in self.classes and
                                          all(part in self.classes + ("0",) for part in parts[1:])):
            return ""
        known = f"{self.normal_label} for a normal video, else one of {', '.join(self.classes)}"
        if self.joined:
            known += " or up to three of them joined by '-' and padded with 0 (B2-G-0)"
        return f"label {label!r} is not one of VadCLIP's {self.title} labels ({known})"


# By built-in dataset, whose config gives the imported dataset its metric, dictionary ratio and seed
BENCHMARKS: Dict[str, Benchmark] = {
    "ucf-crime": Benchmark("UCF-Crime", "Normal", (
        "Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents", "Robbery",
        "Shooting", "Shoplifting", "Stealing", "Vandalism"), joined=False, read_annotations=read_ucf_crime_annotations),
    # B1 fighting, B2 shooting, B4 riot, B5 abuse, B6 car accident, G explosion (VadCLIP's xd_train.py)
    "xd-violence": Benchmark("XD-Violence", "A", ("B1", "B2", "B4", "B5", "B6", "G"), joined=True,
                             read_annotations=read_xd_violence_sources),
}  # fmt: skip


@dataclass
class ListedVideo:
    """A video of a VadCLIP list: its crop files that the list names (found on this machine) and its label."""

    video_id: str
    label: str
    anomalous: bool
    line: int  # its first row in the list
    named: Dict[int, Path] = field(default_factory=dict)  # crop -> file

    def crop_file(self, crop: int) -> Path:
        """The file of a crop: the one the list names, else ``<video>__<crop>.npy`` beside the first it names."""
        return self.named.get(crop) or next(iter(self.named.values())).with_name(f"{self.video_id}__{crop}.npy")

    def crops_on_disk(self) -> Tuple[int, ...]:
        return tuple(crop for crop in range(CROPS) if self.crop_file(crop).is_file())


class FeatureLocator:
    """Where a path written in a list is on this machine: under ``folders`` by the longest tail of the path that is
    there (the tail that worked for a written folder is used for its other files), or as written without folders."""

    def __init__(self, folders: Sequence[PathLike]):
        self.folders = [Path(folder) for folder in folders]
        for folder in self.folders:
            if not folder.is_dir():
                raise InputError(folder, "not a folder: --features names folders that hold the release's features")
        self.found: Dict[Tuple[str, ...], Path] = {}  # a written folder -> where its files are here

    def locate(self, written: str) -> Optional[Path]:
        """The file ``written`` names, or None when it is not there."""
        if not self.folders:
            path = Path(written)
            return path if path.is_file() else None
        *parent, name = (part for part in re.split(r"[\\/]+", written) if part)
        parent = tuple(parent)
        if parent in self.found:
            path = self.found[parent] / name
            return path if path.is_file() else None
        for kept in range(len(parent), -1, -1):  # the longest tail first: the most specific place
            for folder in self.folders:
                path = folder.joinpath(*parent[len(parent) - kept :], name)
                if path.is_file():
                    self.found[parent] = path.parent
                    return path
        return None

    def where(self) -> str:
        return f" under {', '.join(map(str, self.folders))} (by any tail of its path)" if self.folders else ""


def read_vadclip_list(path: PathLike, benchmark: Benchmark, locator: FeatureLocator) -> List[ListedVideo]:
    """The videos of a VadCLIP list (``path,label`` rows, one per crop file), in list order; every row's file is
    found on this machine and every label is one of ``benchmark``'s, or a one-line InputError names the row."""
    path = Path(path)
    lines = read_text_file(path, "VadCLIP feature list").splitlines()
    try:
        rows = [(number, row) for number, row in enumerate(csv.reader(lines), start=1) if any(map(str.strip, row))]
    except csv.Error as error:
        raise InputError(path, f"not a readable CSV file ({error})") from None
    header = tuple(cell.strip() for cell in rows[0][1]) if rows else ()
    if header != LIST_HEADER:
        raise InputError(path, f"line 1 must be the header {','.join(LIST_HEADER)} (VadCLIP's feature lists), not "
                         f"{','.join(header) or 'empty'}")
    videos: Dict[str, ListedVideo] = {}
    for number, row in rows[1:]:
        if len(row) != 2:
            raise InputError(path, f"line {number}: expected {','.join(LIST_HEADER)} (two fields), found {len(row)}")
        written, label = row[0].strip(), row[1].strip()
        match = CROP_FILE.fullmatch(re.split(r"[\\/]", written)[-1])
        if match is None:
            raise InputError(path, f"line {number}: {written!r} is not a VadCLIP feature file "
                             "(<video>__<crop>.npy, crop 0 to 9)")
        video_id, crop = match["video"], int(match["crop"])
        problem = benchmark.label_problem(label)
        if problem:
            raise InputError(path, f"line {number}: {problem}")
        named_label = video_id.rsplit("_label_", 1)[1] if benchmark.joined and "_label_" in video_id else label
        if named_label != label:
            raise InputError(path, f"line {number}: label {label!r}, but the file's name says {named_label!r}")
        problem = video_id_problem(video_id)
        if problem:
            raise InputError(path, f"line {number}: the video name '{video_id}' cannot be a video id in the "
                             f"dataset's lists ({problem})")
        video = videos.setdefault(video_id, ListedVideo(video_id, label, label != benchmark.normal_label, number))
        if label != video.label:
            raise InputError(path, f"line {number}: video '{video_id}' is labelled {label!r} here, {video.label!r} "
                             f"on line {video.line}")
        if crop in video.named:
            raise InputError(path, f"line {number}: crop {crop} of video '{video_id}' is listed twice")
        found = locator.locate(written)
        if found is None:
            raise InputError(path, f"line {number}: feature file {written} not found{locator.where()}")
        video.named[crop] = found
    if not videos:
        raise InputError(path, "lists no video")
    return list(videos.values())


def chosen_crops(lists: Sequence[Tuple[Path, List[ListedVideo]]], log: Callable[[str], None]) -> Tuple[int, ...]:
    """The crops of the dataset: all ten when every video has them on disk, else the one crop that the videos with
    only their listed crops name (said in one line). A video with some of its crops beyond those listed, but not
    all ten, misses a crop file: refused, naming it."""
    partial: Dict[Path, List[ListedVideo]] = {}
    for source, videos in lists:
        for video in videos:
            on_disk = video.crops_on_disk()
            if len(on_disk) == CROPS:
                continue
            if set(on_disk) != set(video.named):
                missing = next(crop for crop in range(CROPS) if crop not in on_disk)
                raise InputError(video.crop_file(missing), f"missing: video '{video.video_id}' ({source} line "
                                 f"{video.line}) has crops {', '.join(map(str, on_disk))} of VadCLIP's {CROPS}")
            partial.setdefault(source, []).append(video)
    if not partial:
        return tuple(range(CROPS))
    source = next(iter(partial))
    named = {tuple(video.named) for videos in partial.values() for video in videos}
    if len(named) != 1 or len(next(iter(named))) != 1:
        shown = " and ".join(sorted({", ".join(map(str, crops)) for crops in named}))
        raise InputError(source, f"its videos have only the crops it names ({shown}), not VadCLIP's {CROPS}: a "
                         "dataset takes one crop of every video where not all have ten, so name one crop, the same "
                         "for every video")
    (crop,), = named
    for video in (video for _, videos in lists for video in videos):
        if not video.crop_file(crop).is_file():
            raise InputError(video.crop_file(crop), f"missing: crop {crop} of video '{video.video_id}' ({source} "
                             f"line {video.line}), the one crop the dataset keeps of every video")
    count, total = sum(map(len, partial.values())), sum(len(videos) for _, videos in lists)
    log(f"{source}: {count} of the {total} videos have only the crop their list names, crop {crop}, not VadCLIP's "
        f"{CROPS}: the dataset keeps crop {crop} of every video, training videos too ({crops_text(1)})")
    return (crop,)


def video_rows(video: ListedVideo, crops: Sequence[int]) -> int:
    """The rows T of a video's crop files, read from their headers: 512 channels each, the same T for all."""
    rows = None
    for crop in crops:
        path = video.crop_file(crop)
        length = read_npy(path, "VadCLIP CLIP features", ROW_AXES, sizes={1: FEATURE_SIZE}, header_only=True).shape[0]
        if rows is not None and length != rows:
            first = video.crop_file(crops[0])
            raise InputError(path, f"{length} rows, but {first} has {rows}: every crop of video '{video.video_id}' "
                             "needs a row per 16 frames of the same video")
        rows = length
    return rows


def ground_truth_of(videos: List[ListedVideo], rows: Dict[str, int], benchmark: Benchmark, annotations: PathLike,
                    test_list: Path) -> Dict[str, np.ndarray]:
    """Frame labels (``16 × T``) of the test videos, in list order, from the official annotations."""
    ranges, sources = benchmark.read_annotations(annotations)
    labels = {}
    for video in videos:
        where = f"video '{video.video_id}' ({test_list} line {video.line}, label {video.label})"
        events = ranges.get(video.video_id)
        if events is None and video.anomalous:
            raise InputError(annotations, f"has no annotation of the anomalous test {where}")
        if events and not video.anomalous:
            raise InputError(sources[video.video_id], f"marks anomalous frames of the normal test {where}")
        if events == [] and video.anomalous:
            raise InputError(sources[video.video_id], f"marks no anomalous frame of the anomalous test {where}")
        labels[video.video_id] = ranges_to_labels(events or [], FRAMES_PER_SNIPPET * rows[video.video_id],
                                                  sources.get(video.video_id, annotations), video.video_id)
    return labels


def import_vadclip(
    name: str,
    benchmark: str,
    train_list: PathLike,
    test_list: PathLike,
    annotations: PathLike,
    features: Sequence[PathLike] = (),
    batch_size: Optional[int] = None,
    dictionary_ratio: Optional[int] = None,
    root_path: PathLike = "data",
    dictionary_path: PathLike = "dictionary",
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> int:
    """Import VadCLIP's features of ``benchmark`` (ucf-crime, xd-violence) as the dataset ``name`` under
    ``root_path`` (see the module docstring); ``batch_size`` (default: the smaller class, up to 32) and
    ``dictionary_ratio`` (default: the benchmark's) go into its description. Prints the commands that learn its
    dictionary and train it; returns 0. Bad input raises a one-line ``InputError`` before anything is written."""
    root, dictionaries = Path(root_path), Path(dictionary_path)
    check_dataset_name(name)
    if name in DATASETS:
        raise InputError(None, f"'{name}' is a built-in dataset: choose another name for the imported one")
    check_choice(benchmark, BENCHMARKS, "--benchmark")
    target = root / name
    if target.exists() or target.is_symlink():
        raise InputError(target, f"dataset '{name}' exists already: import under another name, or remove this "
                         "folder to import again")
    check_writable_folder(root)
    recipe = BENCHMARKS[benchmark]
    defaults = load_dataset_config(benchmark)
    ratio = defaults.dictionary_ratio if dictionary_ratio is None else dictionary_ratio
    check_range(ratio, "--dictionary_ratio", minimum=1, maximum=100, integer=True)
    locator = FeatureLocator(features)
    lists = [(Path(path), read_vadclip_list(path, recipe, locator)) for path in (train_list, test_list)]
    (train_path, train), (test_path, test) = lists
    anomalous = [video.video_id for video in train if video.anomalous]
    normal = [video.video_id for video in train if not video.anomalous]
    if not anomalous:
        raise InputError(train_path, "lists no anomalous video: weak supervision needs videos of both classes")
    check_enough_normal_videos(len(normal), ratio, train_path, fix=f"list at least {minimum_videos(ratio)} normal "
                               "videos or raise --dictionary_ratio")
    batch = training_batch_size({f"the normal class of {train_path}": len(normal),
                                 f"the anomalous class of {train_path}": len(anomalous)}, batch_size)
    if not any(video.anomalous for video in test):
        raise InputError(test_path, f"lists no anomalous video: frame-level {defaults.metric} needs anomalous frames")
    crops = chosen_crops(lists, log)
    rows = {subset: {video.video_id: video_rows(video, crops) for video in videos}
            for subset, videos in (("train", train), ("test", test))}
    labels = ground_truth_of(test, rows["test"], recipe, annotations, test_path)
    description = DatasetDescription(name, len(crops), FEATURE_SIZE, defaults.metric, len(anomalous), ratio, batch,
                                     backbone=BACKBONE, preset=PRESET if list(crops) in PRESET_CROPS else None,
                                     random_state=defaults.random_state).check()  # fmt: skip
    ensure_folder(root)
    for leftover in root.glob(f".{name}.{STAGING}-*"):  # a killed import's
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.{STAGING}-", dir=root))
    try:
        bar = tqdm(total=len(train) + len(test), desc="videos", unit="video", disable=not progress, file=sys.stderr)
        for subset, videos in (("train", train), ("test", test)):
            folder = ensure_folder(feature_folder(staging, name, BACKBONE, subset))
            for video in videos:
                stacked = np.stack([read_npy(video.crop_file(crop), "VadCLIP CLIP features", ROW_AXES)
                                    for crop in crops], axis=1)  # T crops C
                save_npy(stacked, feature_file(folder, video.video_id, BACKBONE))
                bar.update()
        bar.close()
        files = dataset_files(name, ratio, FEATURE_SIZE, defaults.dictionary_max_iter, BACKBONE)
        write_video_list(order_video_list(anomalous + normal, anomalous), staging / files["data_file_train"])
        write_video_list(list(labels), staging / files["data_file_test"])
        write_ground_truth(labels, staging / files["ann_file_test"])
        write_description(description, staging)
        try:
            os.rename(staging / name, target)
        except OSError as error:
            raise InputError(target, f"the imported dataset could not be put here ({error.strerror or error})") \
                from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Of an earlier dataset of this name: learn-dictionary would reuse it.
    (dictionaries / files["regular_file"]).unlink(missing_ok=True)
    log(f"dataset '{name}': VadCLIP's {benchmark} features, {len(anomalous)} anomalous and {len(normal)} normal "
        f"training videos, {len(test)} test videos, {crops_text(len(crops))} of {FEATURE_SIZE} channels; described "
        f"by {description_path(root, name)}")
    print("\n".join(next_commands(name, root, dictionaries, learn_dictionary=True)))
    return 0
