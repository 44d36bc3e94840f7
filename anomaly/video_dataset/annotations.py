"""Where the anomalies of a user's test videos are: three forms, read into frame labels of the decoded frames.

- a CSV with the header ``video,start,end`` in seconds: frame i, shown at time t_i (its presentation time
  relative to the first frame's), is anomalous when ``start <= t_i < end``;
- a CSV with the header ``video,start_frame,end_frame``: 0-based frame indices, the end inclusive (UCF-Crime's
  convention);
- a folder of ``<stem>.npy`` 0/1 frame masks, one value per frame (ShanghaiTech's ``test_frame_mask``).

``video`` is the video file's stem; a video may have several rows, and overlapping rows are merged. A test video
without any row (or mask) is normal. An interval that runs past the video's end is cut there; one that ends before
it starts (in seconds: not after it; a frame range with end = start is that one frame), or that starts after the
video's last frame, is refused in one line naming the file and row. Masks are read and checked when the annotations
are read, before any video is decoded.
"""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from anomaly.data.ground_truth import mask_to_labels, read_frame_mask, read_text_file
from anomaly.errors import InputError

PathLike = Union[str, Path]
SECONDS_HEADER = ("video", "start", "end")
FRAMES_HEADER = ("video", "start_frame", "end_frame")


@dataclass(frozen=True)
class Interval:
    start: float  # seconds, or the first frame
    end: float  # seconds (exclusive), or the last frame (inclusive)
    row: int  # the CSV line, for messages


@dataclass
class Annotations:
    """The anomalous intervals (or masks) of some videos, by stem, as read from ``source``."""

    source: Path
    form: str  # "seconds", "frames" or "masks"
    intervals: Dict[str, List[Interval]] = field(default_factory=dict)
    masks: Dict[str, np.ndarray] = field(default_factory=dict)  # 0/1 per frame, read (and checked) up front
    mask_files: Dict[str, Path] = field(default_factory=dict)

    @property
    def videos(self) -> List[str]:
        return sorted(set(self.intervals) | set(self.masks))

    def check_videos(self, test_stems: Sequence[str]) -> None:
        """Every annotated video must be a test video (a typo would otherwise leave an anomaly unlabelled)."""
        known = set(test_stems)
        for stem in self.videos:
            if stem not in known:
                where = (f"line {self.intervals[stem][0].row}: " if stem in self.intervals else "")
                fix = (f"; name it by its file's stem, '{Path(stem).stem}'" if Path(stem).stem in known
                       else "")
                raise InputError(self.mask_files.get(stem, self.source), f"{where}video '{stem}' is not a test video "
                                 f"(no video of that name under test/){fix}")

    @property
    def needs_times(self) -> bool:
        """Whether frame labels need the frames' presentation times (the seconds form), not only their count."""
        return self.form == "seconds"

    def frame_labels(self, stem: str, num_frames: int, frame_times: Optional[np.ndarray] = None) -> np.ndarray:
        """0/1 labels (float64) of the ``num_frames`` decoded frames of the test video ``stem``; in the seconds
        form, ``frame_times`` are their presentation times in seconds from the first frame's."""
        if stem in self.masks:
            return mask_to_labels(self.masks[stem], num_frames, self.mask_files[stem], stem,
                                  length=f"the video has {num_frames} decoded frames")
        labels = np.zeros(num_frames)
        for interval in self.intervals.get(stem, []):
            if self.form == "seconds":
                inside = (frame_times >= interval.start) & (frame_times < interval.end)
                if interval.start > frame_times[-1]:
                    raise self._late(interval, stem, f"starts at {interval.start:g} s, after the video's last frame "
                                     f"(at {frame_times[-1]:.3f} s)")
            else:
                if interval.start >= num_frames:
                    raise self._late(interval, stem, f"starts at frame {int(interval.start)}, after the video's last "
                                     f"frame ({num_frames - 1})")
                inside = np.zeros(num_frames, dtype=bool)
                inside[int(interval.start) : int(interval.end) + 1] = True
            labels[inside] = 1.0
        return labels

    def _late(self, interval: Interval, stem: str, problem: str) -> InputError:
        return InputError(self.source, f"line {interval.row}: video '{stem}': the interval {problem}")


def read_annotations(path: PathLike) -> Annotations:
    """The annotations of ``path``: a folder of frame masks, or a CSV in seconds or in frames (by its header)."""
    path = Path(path)
    if path.is_dir():
        files = {mask.stem: mask for mask in sorted(path.glob("*.npy"))}
        if not files:
            raise InputError(path, "holds no <video>.npy frame mask")
        masks = {stem: read_frame_mask(file) for stem, file in files.items()}
        if not any(mask.any() for mask in masks.values()):
            raise InputError(path, "no frame of these masks is anomalous (1): frame-level AUC needs anomalous frames")
        return Annotations(path, "masks", masks=masks, mask_files=files)
    rows = _csv_rows(path)
    header = tuple(cell.strip() for cell in rows[0]) if rows else ()
    forms = {SECONDS_HEADER: "seconds", FRAMES_HEADER: "frames"}
    if header not in forms:
        raise InputError(path, f"line 1 must be the header {','.join(SECONDS_HEADER)} (seconds) or "
                         f"{','.join(FRAMES_HEADER)} (frames), not {','.join(header) or 'empty'}")
    annotations = Annotations(path, forms[header])
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        stem, interval = _interval(row, line, annotations.form, path)
        annotations.intervals.setdefault(stem, []).append(interval)
    if not annotations.intervals:
        raise InputError(path, "holds no annotation row")
    return annotations


def _csv_rows(path: Path) -> List[List[str]]:
    try:
        return list(csv.reader(read_text_file(path, "annotations file").splitlines()))
    except csv.Error as error:
        raise InputError(path, f"not a readable CSV file ({error})") from None


def _interval(row: List[str], line: int, form: str, path: Path) -> Tuple[str, Interval]:
    """One row: (stem, interval), or a one-line refusal naming the row."""
    if len(row) != 3 or not row[0].strip():
        raise InputError(path, f"line {line}: expected video,start,end (three fields, a video name first)")
    stem = row[0].strip()
    try:
        start, end = (float(cell) if form == "seconds" else _integer(cell) for cell in row[1:])
    except ValueError:
        unit = "numbers of seconds" if form == "seconds" else "frame indices (integers)"
        raise InputError(path, f"line {line}: start and end must be {unit}, not {row[1].strip()!r} and "
                         f"{row[2].strip()!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        raise InputError(path, f"line {line}: start and end must be finite and start at least 0, not {start:g} and "
                         f"{end:g}")
    if (end <= start) if form == "seconds" else (end < start):  # a frame range includes both its ends
        relation = "not after" if form == "seconds" else "before"
        raise InputError(path, f"line {line}: video '{stem}': the interval ends at {end:g}, {relation} its start "
                         f"({start:g})")
    return stem, Interval(start, end, line)


def _integer(cell: str) -> int:
    value = float(cell)
    if not value.is_integer():
        raise ValueError(cell)
    return int(value)


def aligned_labels(frame_labels: np.ndarray, keep_tail: bool, snippets: int, frames_per_snippet: int) -> np.ndarray:
    """Labels of the decoded frames aligned with a video's features: ``frames_per_snippet × snippets`` of them.

    ``keep_tail`` (rtfm): the last partial snippet was loop-padded, so its padded frames take the label of the
    video's last real frame. Otherwise (gowtham) the tail shorter than a snippet was dropped, and so are its labels.
    """
    num_frames = frames_per_snippet * snippets
    if keep_tail:
        padding = max(num_frames - len(frame_labels), 0)
        return np.concatenate((frame_labels, np.full(padding, frame_labels[-1])))[:num_frames]
    return frame_labels[:num_frames].copy()
