"""The ground truth of a user's test videos: frame labels computed by hand from the annotations (seconds, frames,
masks) and the frames' times, aligned with the features by each preset's rule, for videos of 15, 16, 17 and 33
frames at 25 and 29.97 frames per second; every malformed annotation refused in one line naming its file and row."""

from fractions import Fraction

import numpy as np
import pytest

from anomaly.errors import InputError
from anomaly.extraction import PRESETS
from anomaly.video_dataset.annotations import read_annotations
from anomaly.video_dataset.builder import video_ground_truth
from tests.extraction_helpers import make_video

RATES = {"25": Fraction(25), "29.97": Fraction(30000, 1001)}
# Interval ends between frame times (never within a millisecond of one: Matroska keeps milliseconds).
SECONDS_ROWS = [(0.115, 0.29), (0.39, 5.0)]  # the last runs past every video's end: cut there
FRAME_ROWS = [(2, 4), (10, 40)]


def hand_labels_seconds(frames: int, fps: Fraction) -> np.ndarray:
    """Frame i is shown at i / fps; anomalous when start <= i / fps < end for a row."""
    times = np.arange(frames) * float(1 / fps)
    return np.array([any(start <= time < end for start, end in SECONDS_ROWS) for time in times], dtype=float)


def hand_labels_frames(frames: int) -> np.ndarray:
    return np.array([any(start <= index <= end for start, end in FRAME_ROWS) for index in range(frames)], dtype=float)


def hand_aligned(labels: np.ndarray, preset: str) -> np.ndarray:
    frames = len(labels)
    if preset == "rtfm":  # T = ceil(F / 16): the loop-padded frames are labelled as the last real frame
        length = 16 * -(-frames // 16)
        return np.concatenate((labels, np.full(length - frames, labels[-1])))
    return labels[: 16 * (frames // 16)] if frames > 16 else labels[:0]  # T = floor(F / 16); 16 or fewer: none


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    return {(frames, rate, container): make_video(folder / f"v{frames}_{rate}.{container}", frames, 32, 32,
                                                  fps=fps, codec="libx264" if container == "mp4" else "ffv1")
            for frames in (15, 16, 17, 33) for rate, fps in RATES.items() for container in ("mp4", "mkv")}


def annotations_file(tmp_path, form, stem):
    path = tmp_path / f"{form}.csv"
    if form == "seconds":
        rows = [f"{stem},{start},{end}" for start, end in SECONDS_ROWS]
        path.write_text("video,start,end\n" + "\n".join(rows) + "\n")
    else:
        rows = [f"{stem},{start},{end}" for start, end in FRAME_ROWS]
        path.write_text("video,start_frame,end_frame\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("container", ["mp4", "mkv"])
@pytest.mark.parametrize("preset", ["rtfm", "gowtham"])
@pytest.mark.parametrize("form", ["seconds", "frames"])
@pytest.mark.parametrize("rate", list(RATES))
@pytest.mark.parametrize("frames", [15, 16, 17, 33])
def test_ground_truth_equals_labels_computed_by_hand(videos, tmp_path, frames, rate, form, preset, container):
    video = videos[(frames, rate, container)]
    annotations = read_annotations(annotations_file(tmp_path, form, video.stem))
    labels = video_ground_truth(video, annotations, PRESETS[preset], frames)
    by_hand = hand_labels_seconds(frames, RATES[rate]) if form == "seconds" else hand_labels_frames(frames)
    np.testing.assert_array_equal(labels, hand_aligned(by_hand, preset))
    assert len(labels) == 16 * PRESETS[preset].snippet_count(frames)


def test_a_test_video_without_annotation_rows_is_normal(videos, tmp_path):
    video = videos[(33, "25", "mp4")]
    annotations = read_annotations(annotations_file(tmp_path, "frames", "another"))
    assert not video_ground_truth(video, annotations, PRESETS["rtfm"], 33).any()


def test_overlapping_rows_are_merged_and_masks_are_padded_with_their_last_label(videos, tmp_path):
    video = videos[(33, "25", "mp4")]
    overlapping = tmp_path / "overlap.csv"
    overlapping.write_text(f"video,start_frame,end_frame\n{video.stem},3,10\n{video.stem},8,12\n")
    labels = video_ground_truth(video, read_annotations(overlapping), PRESETS["gowtham"], 33)
    np.testing.assert_array_equal(np.flatnonzero(labels), np.arange(3, 13))
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / f"{video.stem}.npy", np.array([0] * 30 + [1]))  # 31 values for 33 frames
    labels = video_ground_truth(video, read_annotations(masks), PRESETS["rtfm"], 33)
    np.testing.assert_array_equal(labels, [0] * 30 + [1] * 18)  # frames 30..32, then the 15 padded ones


@pytest.mark.parametrize("text, problem", [
    ("video,begin,end\nv,1,2\n", "line 1 must be the header video,start,end (seconds) or video,start_frame,end_frame "
                                 "(frames), not video,begin,end"),
    ("video,start,end\nv,2.5,2.5\n", "line 2: video 'v': the interval ends at 2.5, not after its start (2.5)"),
    ("video,start,end\nv,3,1\n", "line 2: video 'v': the interval ends at 1, not after its start (3)"),
    ("video,start_frame,end_frame\nv,9,4\n", "line 2: video 'v': the interval ends at 4, before its start (9)"),
    ("video,start_frame,end_frame\nv,1.5,4\n", "line 2: start and end must be frame indices (integers), not '1.5' "
                                               "and '4'"),
    ("video,start,end\nv,-1,4\n", "line 2: start and end must be finite and start at least 0, not -1 and 4"),
    ("video,start,end\nv,1\n", "line 2: expected video,start,end (three fields, a video name first)"),
    ("video,start,end\n", "holds no annotation row"),
])
def test_malformed_annotations_are_refused_naming_the_row(tmp_path, text, problem):
    path = tmp_path / "annotations.csv"
    path.write_text(text)
    with pytest.raises(InputError) as refused:
        read_annotations(path)
    assert str(refused.value) == f"{path}: {problem}"


def test_an_interval_starting_after_the_video_is_refused(videos, tmp_path):
    video = videos[(17, "25", "mp4")]
    path = tmp_path / "late.csv"
    path.write_text(f"video,start,end\n{video.stem},0.1,0.2\n{video.stem},0.7,2\n")
    with pytest.raises(InputError) as refused:
        video_ground_truth(video, read_annotations(path), PRESETS["rtfm"], 17)
    assert str(refused.value) == (f"{path}: line 3: video '{video.stem}': the interval starts at 0.7 s, after the "
                                  "video's last frame (at 0.640 s)")
    path.write_text(f"video,start_frame,end_frame\n{video.stem},17,20\n")
    with pytest.raises(InputError, match=r"line 2: video 'v17_25': the interval starts at frame 17, after the "
                                         r"video's last frame \(16\)$"):
        video_ground_truth(video, read_annotations(path), PRESETS["rtfm"], 17)


def test_an_annotated_video_must_be_a_test_video(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("video,start,end\nstreet,1,2\nyard,1,2\n")
    with pytest.raises(InputError) as refused:
        read_annotations(path).check_videos(["street", "park"])
    assert str(refused.value) == f"{path}: line 3: video 'yard' is not a test video (no video of that name under test/)"


def test_an_annotation_naming_the_file_instead_of_its_stem_says_which_name_to_write(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("video,start,end\nstreet.mp4,1,2\n")
    with pytest.raises(InputError) as refused:
        read_annotations(path).check_videos(["street", "park"])
    assert str(refused.value) == (f"{path}: line 2: video 'street.mp4' is not a test video (no video of that name "
                                  "under test/); name it by its file's stem, 'street'")
