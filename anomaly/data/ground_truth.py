"""Frame-level ground truth and ``video-id`` lists from the datasets' own annotations.

Every video's length comes from its feature file: ``num_frames = 16 × T`` where ``T`` is read from the ``.npy``
header (the array is never loaded). Labels are 0/1 per frame, written as floats:
``{video_id: {"num_frames": F, "labels": [F floats]}}`` in list order, with ``json``'s default separators and
no trailing newline, which is byte for byte the published ``shanghaitech_ground_truth.testing.json``.

Sources:

- ShanghaiTech: a folder of ``<video_id>.npy`` frame masks (``test_frame_mask``). A mask shorter than the video
  is padded with its last label; a listed video without a mask is normal (all 0). The official folder holds the
  masks of BOTH splits of the weakly supervised (Zhong et al.) resplit, so masks of other videos that have
  features (in the features folder or a sibling split folder, e.g. ``i3d/train``) are skipped.
- UCF-Crime: the official ``Temporal_Anomaly_Annotation_for_Testing_Videos.txt`` (``Name.mp4  Class  s1 e1 s2
  e2``, ``-1`` for no event) or a folder of the per-video ``.mat`` files (``Annotation_file.Anno``: rows of
  ``[start, end]``, any integer dtype, ``[-1, -1]`` for a normal video). Both give the same labels.
- XD-Violence: the official ``annotations.txt`` (``name s1 e1 [s2 e2 ...]``; a trailing ``.mp4`` is dropped);
  videos without a line are normal.

Frame ranges are 0-based with the end inclusive: ``[s, e]`` marks frames ``s .. e``. A range running past the
video's end is cut at ``num_frames`` (features drop the last partial snippet); a range or mask event that STARTS
at or after ``num_frames`` is an error, as is an annotation (mask, line, .mat file) for a video that has no
feature file in the features folder or its sibling split folders.
"""

import json
import re
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from anomaly.data.arrays import read_npy
from anomaly.data.catalog import ANNOTATED_DATASETS, DATASETS
from anomaly.data.features import feature_file, num_snippets
from anomaly.errors import InputError, check_choice
from anomaly.layout import FRAMES_PER_SNIPPET, feature_file_name, video_id_of_feature_file
from anomaly.files import ensure_folder, save_text

PathLike = Union[str, Path]
Ranges = List[Tuple[int, int]]

# --------------------------------------------------------------------------------------------------------------
# Feature files and lengths
# --------------------------------------------------------------------------------------------------------------


def list_feature_videos(features_dir: PathLike, backbone: str = "i3d") -> List[str]:
    """Sorted ids of the ``<id>_<backbone>.npy`` files of a features folder."""
    features_dir = Path(features_dir)
    if not features_dir.is_dir():
        raise InputError(features_dir, "features folder not found")
    video_ids = sorted(filter(None, (video_id_of_feature_file(path.name, backbone) for path in features_dir.iterdir())))
    if not video_ids:
        raise InputError(features_dir, f"no '*{feature_file_name('', backbone)}' feature files in this folder")
    return video_ids


def video_num_frames(
    features_dir: PathLike, video_ids: Sequence[str], backbone: str = "i3d", list_file: Optional[PathLike] = None
) -> Dict[str, int]:
    """``{video_id: 16 × T}`` for the listed videos, T read from each feature file's header."""
    frames = {}
    for video_id in video_ids:
        path = feature_file(features_dir, video_id, backbone)
        if not path.is_file():
            where = f" (listed in {list_file})" if list_file is not None else ""
            raise InputError(path, f"feature file of video '{video_id}' not found{where}")
        frames[video_id] = FRAMES_PER_SNIPPET * num_snippets(path)
    return frames


def read_text_file(path: PathLike, what: str) -> str:
    """The text of ``path`` (UTF-8; a leading byte-order mark is dropped, as pandas does), or a one-line InputError
    when it is missing, unreadable or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is dropped, as pandas does
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise InputError(path, f"not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}); save it "
                         "as UTF-8") from None
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or error})") from None


def has_features_nearby(features_dir: Path, video_id: str, backbone: str) -> bool:
    """Whether ``video_id`` has a feature file in ``features_dir`` or a sibling folder (the other split)."""
    name = feature_file_name(video_id, backbone)
    if (features_dir / name).is_file():
        return True
    parent = features_dir.resolve().parent
    return any((sibling / name).is_file() for sibling in parent.iterdir() if sibling.is_dir())


def _check_annotated_video(
    source: PathLike, video_id: str, num_frames: Dict[str, int], features_dir: Optional[PathLike], backbone: str
) -> bool:
    """True when ``video_id`` is one of the videos being built, False when it is another video that has features
    (in ``features_dir`` or a sibling split folder: it is skipped); an annotation for a video without any feature
    file is an error."""
    if video_id in num_frames:
        return True
    if features_dir is not None and has_features_nearby(Path(features_dir), video_id, backbone):
        return False
    where = f" in {features_dir} or its sibling folders" if features_dir is not None else ""
    raise InputError(source, f"annotation for video '{video_id}' which has no feature file{where}")


# --------------------------------------------------------------------------------------------------------------
# Ranges -> frame labels
# --------------------------------------------------------------------------------------------------------------


def ranges_to_labels(ranges: Iterable[Tuple[int, int]], num_frames: int, source: PathLike, video_id: str) -> np.ndarray:
    """0/1 float labels of ``num_frames`` frames with every inclusive ``[start, end]`` range set to 1.

    Ranges are cut at ``num_frames``; a range that starts at or after ``num_frames`` is an error.
    """
    labels = np.zeros(num_frames, dtype=np.float64)
    for start, end in ranges:
        if start >= num_frames:
            raise InputError(
                source,
                f"video '{video_id}': annotation [{start}, {end}] starts past the video's end "
                f"(num_frames = {num_frames} = 16 x T of its features)",
            )
        labels[start : min(end + 1, num_frames)] = 1.0
    return labels


def _parse_ranges(values: Sequence[str], source: PathLike, where: str) -> Ranges:
    """Pairs of non-negative integers with start <= end; a ``-1 -1`` pair means no event."""
    try:
        numbers = [int(value) for value in values]
    except ValueError:
        raise InputError(source, f"{where}: frame numbers must be integers, found {' '.join(values)!r}") from None
    if len(numbers) % 2:
        raise InputError(source, f"{where}: frame numbers must come in start/end pairs, found {len(numbers)}")
    ranges = []
    for start, end in zip(numbers[0::2], numbers[1::2]):
        if start == -1 and end == -1:
            continue
        if start < 0 or end < start:
            raise InputError(source, f"{where}: invalid frame range [{start}, {end}]")
        ranges.append((start, end))
    return ranges


# --------------------------------------------------------------------------------------------------------------
# ShanghaiTech
# --------------------------------------------------------------------------------------------------------------


def read_frame_mask(path: PathLike) -> np.ndarray:
    """A ShanghaiTech ``test_frame_mask/<id>.npy``: a 1-D array of 0/1 per frame, as float."""
    mask = read_npy(path, "a frame mask", (("F", "frames"),), kinds="biuf")
    if not np.isin(mask, (0, 1)).all():
        raise InputError(path, "a frame mask must hold only 0 and 1")
    return mask.astype(np.float64)


def mask_to_labels(mask: np.ndarray, num_frames: int, source: PathLike, video_id: str, length: str = "") -> np.ndarray:
    """Pad a frame mask with its last label up to ``num_frames`` (or cut it there, as for ranges). ``length``: where
    ``num_frames`` comes from, for the error (default: 16 × T of the video's features)."""
    if len(mask) >= num_frames:
        starts = np.flatnonzero(np.diff(np.concatenate(([0.0], mask))) > 0)
        late = starts[starts >= num_frames]
        if late.size:
            raise InputError(
                source,
                f"video '{video_id}': an anomalous event starts at frame {late[0]}, past the video's end "
                f"({length or f'num_frames = {num_frames} = 16 x T of its features'})",
            )
        return mask[:num_frames].copy()
    return np.concatenate((mask, np.full(num_frames - len(mask), mask[-1])))


def shanghaitech_ground_truth(
    mask_dir: PathLike, num_frames: Dict[str, int], features_dir: Optional[PathLike] = None, backbone: str = "i3d"
) -> Dict[str, np.ndarray]:
    """Labels of every video of ``num_frames`` from a folder of ``<video_id>.npy`` frame masks.

    Masks of other videos are skipped when those videos have features (the official folder covers both splits of
    the resplit: the training videos' features sit in the sibling ``train`` folder); a mask of a video with no
    feature file anywhere is an error.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise InputError(mask_dir, "frame-mask folder not found (expected ShanghaiTech's test_frame_mask/)")
    for path in sorted(mask_dir.glob("*.npy")):
        _check_annotated_video(path, path.stem, num_frames, features_dir, backbone)
    labels = {}
    for video_id, frames in num_frames.items():
        path = mask_dir / f"{video_id}.npy"
        if path.is_file():
            labels[video_id] = mask_to_labels(read_frame_mask(path), frames, path, video_id)
        else:
            labels[video_id] = np.zeros(frames, dtype=np.float64)
    return labels


def anomalous_from_masks(mask_dir: PathLike) -> List[str]:
    """Ids of the videos whose mask in ``mask_dir`` marks at least one anomalous frame."""
    mask_dir = Path(mask_dir)
    return sorted(path.stem for path in mask_dir.glob("*.npy") if read_frame_mask(path).any())


# --------------------------------------------------------------------------------------------------------------
# UCF-Crime
# --------------------------------------------------------------------------------------------------------------


def strip_video_extension(name: str) -> str:
    return re.sub(r"\.(mp4|avi|mkv|webm)$", "", name.strip(), flags=re.IGNORECASE)


def _read_annotation_lines(
    path: PathLike, what: str, layout: str, accepts: Callable[[int], bool], first_range_field: int
) -> Dict[str, Ranges]:
    """Annotation text with one ``<video name> ... <start end pairs>`` line per video.

    ``accepts(number of fields)`` checks a line's shape (``layout`` describes it in the error); the frame ranges
    start at field ``first_range_field``. Blank lines are skipped; a video annotated twice is an error.
    """
    path = Path(path)
    annotations: Dict[str, Ranges] = {}
    for line_number, line in enumerate(read_text_file(path, f"{what} annotation file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {line_number}"
        if not accepts(len(fields)):
            raise InputError(path, f"{where}: expected '{layout}', found {len(fields)} fields")
        video_id = strip_video_extension(fields[0])
        if video_id in annotations:
            raise InputError(path, f"{where}: video '{video_id}' is annotated twice")
        annotations[video_id] = _parse_ranges(fields[first_range_field:], path, where)
    if not annotations:
        raise InputError(path, "the annotation file is empty")
    return annotations


def read_ucf_crime_txt(path: PathLike) -> Dict[str, Ranges]:
    """``Temporal_Anomaly_Annotation_for_Testing_Videos.txt``: ``Name.mp4  Class  s1 e1 s2 e2`` per line."""
    return _read_annotation_lines(
        path, "UCF-Crime", "Name.mp4 Class start1 end1 start2 end2", lambda count: count == 6, first_range_field=2
    )


def read_ucf_crime_mat(path: PathLike) -> Tuple[str, Ranges]:
    """One per-video ``.mat`` file: its video id and ``Annotation_file.Anno`` ranges ([-1, -1] for none)."""
    from scipy.io import loadmat  # scipy comes with scikit-learn

    path = Path(path)
    try:
        content = loadmat(str(path))
        record = content["Annotation_file"]
        anno = np.asarray(record["Anno"][0, 0])
    except Exception as error:  # scipy raises many kinds of errors for unreadable files
        raise InputError(path, f"not a UCF-Crime annotation .mat file with Annotation_file.Anno ({error})") from None
    if anno.dtype.kind not in "iu" or anno.ndim != 2 or anno.shape[1] != 2:
        raise InputError(path, f"Annotation_file.Anno must be integer rows of [start, end], found {anno.dtype} "
                         f"{list(anno.shape)}")
    video_id = path.stem
    names = record.dtype.names or ()
    if "VideoName" in names:
        name = np.asarray(record["VideoName"][0, 0]).ravel()
        if name.size and strip_video_extension(str(name[0])) != video_id:
            raise InputError(path, f"VideoName '{name[0]}' does not match the file name")
    # Mixed dtypes (uint8, uint16, int16): widen before any arithmetic.
    values = [str(int(value)) for value in anno.astype(np.int64).ravel()]
    return video_id, _parse_ranges(values, path, "Annotation_file.Anno")


def read_ucf_crime_annotations(path: PathLike) -> Tuple[Dict[str, Ranges], Dict[str, Path]]:
    """Ranges per video from the official .txt or a folder of .mat files; also each video's source file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.mat"))
        if not files:
            raise InputError(path, "no .mat annotation files in this folder")
        annotations, sources = {}, {}
        for file in files:
            video_id, ranges = read_ucf_crime_mat(file)
            annotations[video_id] = ranges
            sources[video_id] = file
        return annotations, sources
    annotations = read_ucf_crime_txt(path)
    return annotations, {video_id: path for video_id in annotations}


def ucf_crime_ground_truth(
    annotations: PathLike, num_frames: Dict[str, int], features_dir: Optional[PathLike] = None, backbone: str = "i3d"
) -> Dict[str, np.ndarray]:
    """Labels of every video of ``num_frames`` from the UCF-Crime .txt or .mat folder; unannotated videos are 0."""
    ranges, sources = read_ucf_crime_annotations(annotations)
    return _ranges_ground_truth(ranges, sources, num_frames, features_dir, backbone)


# --------------------------------------------------------------------------------------------------------------
# XD-Violence
# --------------------------------------------------------------------------------------------------------------


def read_xd_violence_annotations(path: PathLike) -> Dict[str, Ranges]:
    """XD-Violence ``annotations.txt``: ``video_name start1 end1 [start2 end2 ...]`` per line."""
    return _read_annotation_lines(
        path, "XD-Violence", "video_name start1 end1 [start2 end2 ...]", lambda count: count >= 3, first_range_field=1
    )


def read_xd_violence_sources(path: PathLike) -> Tuple[Dict[str, Ranges], Dict[str, Path]]:
    """``read_xd_violence_annotations`` and each video's source file (that one file), as
    ``read_ucf_crime_annotations`` gives them."""
    ranges = read_xd_violence_annotations(path)
    return ranges, {video_id: Path(path) for video_id in ranges}


def xd_violence_ground_truth(
    annotations: PathLike, num_frames: Dict[str, int], features_dir: Optional[PathLike] = None, backbone: str = "i3d"
) -> Dict[str, np.ndarray]:
    """Labels of every video of ``num_frames`` from XD-Violence's annotation text; unannotated videos are 0."""
    ranges, sources = read_xd_violence_sources(annotations)
    return _ranges_ground_truth(ranges, sources, num_frames, features_dir, backbone)


def _ranges_ground_truth(
    ranges: Dict[str, Ranges],
    sources: Dict[str, Path],
    num_frames: Dict[str, int],
    features_dir: Optional[PathLike],
    backbone: str,
) -> Dict[str, np.ndarray]:
    for video_id in ranges:
        _check_annotated_video(sources[video_id], video_id, num_frames, features_dir, backbone)
    labels = {}
    for video_id, frames in num_frames.items():
        if video_id in ranges:
            labels[video_id] = ranges_to_labels(ranges[video_id], frames, sources[video_id], video_id)
        else:
            labels[video_id] = np.zeros(frames, dtype=np.float64)
    return labels


# --------------------------------------------------------------------------------------------------------------
# Whole builds and files
# --------------------------------------------------------------------------------------------------------------


READERS: Dict[str, Callable[..., Dict[str, np.ndarray]]] = {  # the catalog's annotation formats
    "frame-masks": shanghaitech_ground_truth,
    "ucf-crime-temporal": ucf_crime_ground_truth,
    "xd-violence": xd_violence_ground_truth,
}


def build_ground_truth(
    dataset: str,
    annotations: PathLike,
    features_dir: PathLike,
    video_ids: Optional[Sequence[str]] = None,
    backbone: str = "i3d",
    list_file: Optional[PathLike] = None,
) -> Dict[str, np.ndarray]:
    """Frame labels of the test videos, in list order.

    ``video_ids``: the test list (default: every feature file of ``features_dir``, sorted).
    """
    check_choice(dataset, ANNOTATED_DATASETS, "--dataset", fix="the other datasets have no official annotations")
    if video_ids is None:
        video_ids = list_feature_videos(features_dir, backbone)
    num_frames = video_num_frames(features_dir, video_ids, backbone, list_file)
    return READERS[DATASETS[dataset].annotations](annotations, num_frames, features_dir, backbone)


def ground_truth_json(labels: Dict[str, np.ndarray]) -> str:
    """The published json text: ``{id: {"num_frames": F, "labels": [floats]}}``, default separators."""
    database = {
        video_id: {"num_frames": int(len(frame_labels)), "labels": [float(label) for label in frame_labels]}
        for video_id, frame_labels in labels.items()
    }
    return json.dumps(database)


def write_ground_truth(labels: Dict[str, np.ndarray], path: PathLike) -> Path:
    """Write ``labels`` as the published ground-truth json (no trailing newline, as the published file)."""
    path = Path(path)
    ensure_folder(path.parent)
    save_text(ground_truth_json(labels), path)
    return path
