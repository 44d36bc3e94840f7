"""Decoding: frames turned upright as a player shows them."""

import numpy as np
import pytest

from anomaly.errors import InputError
from anomaly.extraction.video import VideoDecoder
from tests.extraction_helpers import write_frames


def stored_frames(count: int = 3) -> list:
    """Frames of 48 rows × 64 columns, each corner a different colour, so that every turn and mirror shows."""
    frames = []
    for index in range(count):
        frame = np.full((48, 64, 3), 40 * index, np.uint8)
        frame[:8, :8] = (255, 0, 0)
        frame[:8, -8:] = (0, 255, 0)
        frame[-8:, :8] = (0, 0, 255)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_frames_are_shown_as_the_display_matrix_says(tmp_path, degrees, mirrored):
    """A lossless video whose display matrix turns its stored frames ``degrees`` counter-clockwise (a phone's
    sideways frames: 270, i.e. 90 clockwise), then mirrors them: decoding gives the frames so turned and mirrored."""
    frames = stored_frames()
    video = write_frames(tmp_path / "phone.mkv", frames, "ffv1", "bgr0", turn=(degrees, mirrored))
    decoder = VideoDecoder(video)
    decoded = list(decoder)
    expected = [np.rot90(frame, degrees // 90) for frame in frames]  # np.rot90 turns counter-clockwise
    expected = [frame[:, ::-1] if mirrored else frame for frame in expected]
    assert len(decoded) == 3
    for actual, wanted in zip(decoded, expected):
        np.testing.assert_array_equal(actual, wanted)
    # Recorded as FFmpeg names the matrix: its clockwise angle (a mirror is that turn and a flip upside down).
    assert decoder.orientation.rotation == ((degrees + 180) if mirrored else -degrees) % 360
    assert decoder.orientation.mirrored == mirrored


def test_a_turn_that_is_not_a_multiple_of_90_degrees_is_refused(tmp_path):
    video = write_frames(tmp_path / "tilted.mkv", stored_frames(1), "ffv1", "bgr0", turn=(30, False))
    with pytest.raises(InputError) as error:
        list(VideoDecoder(video))
    assert str(error.value) == (f"{video}: its display matrix turns the frames by 330°: only turns by multiples of "
                                "90° are applied (re-encode it upright)")  # fmt: skip
