"""``video-id`` lists: reading them (as pandas would), splitting the training list, and writing them from a
folder of features with the anomalous videos first (the order of the published lists)."""

import csv
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from anomaly.data.ground_truth import (
    anomalous_from_masks,
    has_features_nearby,
    list_feature_videos,
    read_text_file,
    strip_video_extension,
)
from anomaly.data.catalog import DATASETS
from anomaly.errors import InputError
from anomaly.files import check_name, ensure_folder, save_text

PathLike = Union[str, Path]
VIDEO_ID_COLUMN = "video-id"


def read_video_list(path: PathLike) -> List[str]:
    """Video ids of a csv list: the ``video-id`` column (any position, as pandas would read it), in file order.

    Empty rows are skipped; a missing column, an empty list or a video listed twice is an error.
    """
    path = Path(path)
    try:
        rows = [row for row in csv.reader(read_text_file(path, "video list").splitlines()) if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise InputError(path, f"not a readable csv list ({error})") from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    if VIDEO_ID_COLUMN not in header:
        raise InputError(path, f"a video list needs a '{VIDEO_ID_COLUMN}' column in its header line")
    column = header.index(VIDEO_ID_COLUMN)
    video_ids = []
    for line_number, row in enumerate(rows[1:], start=2):
        if column >= len(row) or not row[column].strip():
            raise InputError(path, f"row {line_number} has no '{VIDEO_ID_COLUMN}' value")
        video_ids.append(check_name(row[column].strip(), f"row {line_number}: video id", path))
    if not video_ids:
        raise InputError(path, "the video list is empty")
    seen = set()
    for video_id in video_ids:
        if video_id in seen:
            raise InputError(path, f"video '{video_id}' is listed twice")
        seen.add(video_id)
    return video_ids


def split_training_list(path: PathLike, num_anomalous: int) -> Dict[str, List[str]]:
    """Split a training list whose first ``num_anomalous`` rows are anomalous into normal and anomalous ids."""
    video_ids = read_video_list(path)
    if not 0 < num_anomalous < len(video_ids):
        raise InputError(
            path, f"expected {num_anomalous} anomalous videos first and normal ones after, but it lists {len(video_ids)}"
        )
    return {"normal": video_ids[num_anomalous:], "anomalous": video_ids[:num_anomalous]}


def read_id_list(path: PathLike) -> List[str]:
    """Video ids, one per line (an optional ``video-id`` header, blank lines and ``#`` comments ignored)."""
    ids = []
    for line_number, line in enumerate(read_text_file(path, "list of anomalous videos").splitlines(), start=1):
        value = line.split("#", 1)[0].strip().split(",")[0].strip()
        if value and value != VIDEO_ID_COLUMN:
            ids.append(check_name(strip_video_extension(value), f"line {line_number}: video id", path))
    return ids


def anomalous_videos(
    dataset: str,
    video_ids: Sequence[str],
    anomalous: Optional[PathLike] = None,
    features_dir: Optional[PathLike] = None,
    backbone: str = "i3d",
) -> List[str]:
    """Which of ``video_ids`` are anomalous (at least one, or an InputError).

    ``anomalous`` (any dataset; required for ShanghaiTech and synthetic data): a folder of frame masks (a video
    is anomalous when its mask marks an anomalous frame) or a text/csv file of anomalous ids. Every id of such a
    file must have a feature file in ``features_dir`` or a sibling split folder (one file may list both splits'
    anomalous videos; an id with no features anywhere is a typo or another dataset's). Without ``anomalous``,
    UCF-Crime's normal videos are those whose name contains ``Normal`` and XD-Violence's those containing
    ``label_A``; every other video is anomalous.
    """
    if anomalous is not None:
        anomalous = Path(anomalous)
        if anomalous.is_dir():
            marked = set(anomalous_from_masks(anomalous))
            how = "no frame mask of this folder marks an anomalous frame of these videos"
        else:
            listed = read_id_list(anomalous)
            if features_dir is not None:
                known = set(video_ids)
                missing = [video_id for video_id in dict.fromkeys(listed)
                           if video_id not in known and not has_features_nearby(Path(features_dir), video_id, backbone)]
                if missing:
                    shown = ", ".join(f"'{video_id}'" for video_id in missing[:5])
                    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                    raise InputError(anomalous, f"{len(missing)} listed video(s) have no feature file in {features_dir} "
                                     f"or its sibling folders: {shown}{more}")
            marked = set(listed)
            how = "none of the videos listed in this file has a feature file here"
        selected = [video_id for video_id in video_ids if video_id in marked]
        if not selected:
            where = f" of {features_dir}" if features_dir is not None else ""
            raise InputError(anomalous, f"no video{where} is anomalous: {how}")
        return selected
    mark = DATASETS[dataset].normal_name_mark if dataset in DATASETS else None
    if mark is not None:
        selected = [video_id for video_id in video_ids if mark not in video_id]
        if not selected:
            raise InputError(features_dir, f"no video is anomalous: every {dataset} video name here contains "
                             f"'{mark}' (the mark of normal videos); give --anomalous if the names do not tell")
        return selected
    raise InputError(
        None,
        f"{dataset}: video names do not tell anomalous videos apart; give --anomalous (a frame-mask folder or a "
        f"file of anomalous video ids)",
    )


def order_video_list(video_ids: Sequence[str], anomalous_ids: Iterable[str]) -> List[str]:
    """Anomalous videos first, then normal ones, each group sorted by id (the order of the published lists)."""
    marked = set(anomalous_ids)
    return sorted(v for v in video_ids if v in marked) + sorted(v for v in video_ids if v not in marked)


def video_id_problem(video_id: str) -> str:
    """Why ``video_id`` would not read back from a list as itself (:func:`read_video_list`), or '' when it would."""
    try:
        video_id.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not UTF-8"
    if video_id != video_id.strip():
        return "it starts or ends with a space"
    special = [character for character in ',"\r\n' if character in video_id]
    return f"it holds {special[0]!r}" if special else ""


def write_video_list(video_ids: Sequence[str], path: PathLike) -> Path:
    """A one-column csv with the header ``video-id``; an id that would not read back as itself is refused."""
    path = Path(path)
    for video_id in video_ids:
        problem = video_id_problem(video_id)
        if problem:
            raise InputError(path, f"'{video_id}' cannot be a video id in a list ({problem}): rename its video")
    ensure_folder(path.parent)
    save_text("\n".join([VIDEO_ID_COLUMN, *video_ids]) + "\n", path)
    return path


def make_video_list(
    dataset: str,
    features_dir: PathLike,
    output: PathLike,
    anomalous: Optional[PathLike] = None,
    backbone: str = "i3d",
) -> Tuple[List[str], int]:
    """Write the list of every feature file of ``features_dir``, anomalous first; returns (ids, number anomalous)."""
    ensure_folder(Path(output).parent)  # before reading the annotations
    video_ids = list_feature_videos(features_dir, backbone)
    marked = anomalous_videos(dataset, video_ids, anomalous, features_dir, backbone)
    ordered = order_video_list(video_ids, marked)
    write_video_list(ordered, output)
    return ordered, len(marked)
