"""Decoding: frames turned upright as a player shows them, and partial videos told from whole ones."""

from pathlib import Path

import numpy as np
import pytest

from anomaly.errors import InputError
from anomaly.extraction.preprocess import PRESETS, ClipReader
from anomaly.extraction.video import VideoDecoder, VideoInfo, incomplete, probe
from tests.extraction_helpers import (
    cut_in_half,
    cut_without_reencoding,
    make_audio_only,
    make_video,
    write_frames,
    write_picture,
)


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


@pytest.fixture(scope="module")
def cut_videos(tmp_path_factory):
    """40-frame videos, whole and cut in half: an MP4 with its index first (it declares 40 frames) and a Matroska
    file (it declares 1.6 s at 25 frames/s)."""
    folder = tmp_path_factory.mktemp("cut")
    whole_mp4 = make_video(folder / "whole.mp4", 40, 176, 144, options={"movflags": "faststart"})
    whole_mkv = make_video(folder / "whole.mkv", 40, 176, 144)
    return dict(whole_mp4=whole_mp4, whole_mkv=whole_mkv, mp4=cut_in_half(whole_mp4, folder / "cut.mp4"),
                mkv=cut_in_half(whole_mkv, folder / "cut.mkv"))  # fmt: skip


def decoded_count(video: Path) -> int:
    return sum(1 for _ in VideoDecoder(video))


def test_what_containers_declare(cut_videos):
    mp4, mkv = probe(cut_videos["mp4"]), probe(cut_videos["mkv"])
    assert (mp4.frames, mp4.counted) == (40, True)  # the index, written first, survives the cut
    assert (mkv.frames, mkv.counted, mkv.duration, mkv.fps) == (40, False, 1.6, 25.0)
    assert decoded_count(cut_videos["mp4"]) < 40 and decoded_count(cut_videos["mkv"]) < 40


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_a_video_cut_short_is_refused_naming_both_counts_and_the_flag(cut_videos, kind):
    video = cut_videos[kind]
    frames = decoded_count(video)
    declared = ("of the 40 frames its container declares" if kind == "mp4" else
                "of the about 40 frames its duration declares (1.60 s at 25 frames/s)")  # fmt: skip
    with pytest.raises(InputError) as error:
        list(ClipReader(video, PRESETS["rtfm"]))
    assert str(error.value) == (f"{video}: only {frames} {declared} could be decoded (a file cut short, or corrupt); "
                                "--accept_partial extracts the frames that decode")  # fmt: skip


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_accept_partial_gives_the_clips_of_the_frames_that_decode(cut_videos, kind):
    reader = ClipReader(cut_videos[kind], PRESETS["rtfm"], accept_partial=True)
    clips = list(reader)
    assert reader.frames == decoded_count(cut_videos[kind])
    assert len(clips) == PRESETS["rtfm"].snippet_count(reader.frames)
    assert reader.partial.startswith(f"only {reader.frames} of the ")


@pytest.mark.parametrize("kind", ["whole_mp4", "whole_mkv"])
def test_whole_videos_are_not_partial(cut_videos, kind):
    reader = ClipReader(cut_videos[kind], PRESETS["rtfm"])
    assert len(list(reader)) == 3 and reader.frames == 40 and reader.partial == ""


def test_a_cut_made_without_reencoding_is_whole(tmp_path):
    """Its edit list hides the frames before the cut: they are stored (and counted) but never shown, so what
    decodes is the whole video, not a partial one."""
    video = cut_without_reencoding(make_video(tmp_path / "long.mp4", 60, 64, 48), tmp_path / "cut.mp4", first_frame=15)
    assert probe(video).frames == 45
    reader = ClipReader(video, PRESETS["rtfm"])
    assert len(list(reader)) == 3 and reader.frames == decoded_count(video) == 45 and reader.partial == ""


def test_a_raw_stream_that_declares_neither_count_nor_duration_is_whole(tmp_path):
    """An H.264 elementary stream (as cameras and encoders write it: no container) declares a rate alone."""
    video = make_video(tmp_path / "camera.h264", 20, 64, 48)
    declared = probe(video)
    assert (declared.frames, declared.duration, declared.fps) == (0, None, 25.0)
    reader = ClipReader(video, PRESETS["rtfm"])
    assert len(list(reader)) == 2 and reader.frames == 20 and reader.partial == ""


def test_a_declared_count_is_exact_and_a_duration_has_slack():
    """Counted: one frame short is partial. From a duration (±1 frame at each end, rates averaged, audio outlasting
    the video): up to 5 % of the estimate or 2 frames, whichever is more, is not."""
    counted = VideoInfo(Path("a.mp4"), 40, 25.0, 176, 144, counted=True)
    assert incomplete(counted, 40) == "" and incomplete(counted, 41) == ""
    assert incomplete(counted, 39) == (
        "only 39 of the 40 frames its container declares could be decoded (a file cut short, or corrupt)")
    short = VideoInfo(Path("a.mkv"), 40, 25.0, 176, 144, duration=1.6)
    assert incomplete(short, 38) == ""
    assert incomplete(short, 37).startswith("only 37 of the about 40 frames its duration declares")
    long = VideoInfo(Path("b.mkv"), 1000, 25.0, 176, 144, duration=40.0)
    assert incomplete(long, 950) == "" and incomplete(long, 949) != ""
    unknown = VideoInfo(Path("c.webm"), 0, None, 176, 144)
    assert incomplete(unknown, 1) == ""
    assert incomplete(unknown, 7, stopped="Invalid data") == "decoding failed after 7 frames (Invalid data)"
    assert incomplete(counted, 7, stopped="Invalid data") == (
        "decoding failed after 7 of the 40 frames its container declares (Invalid data)")


def test_a_variable_frame_rate_that_fills_its_duration_is_whole():
    """40 frames declared by 1.6 s at 25 frames/s, 20 decoded: whole when they are shown until the end (a variable
    rate, slower than the declared one), cut short when they end early."""
    declared = VideoInfo(Path("a.mkv"), 40, 25.0, 176, 144, duration=1.6)
    assert incomplete(declared, 20, shown_until=1.58) == ""
    assert incomplete(declared, 20, shown_until=0.8).startswith("only 20 of the about 40 frames its duration declares")
    assert incomplete(declared, 20).startswith("only 20 of the about 40 frames")  # no times: the count decides


def not_a_video(tmp_path: Path, kind: str) -> Path:
    """A file a video command may be given that is no video: what ``kind`` says."""
    if kind == "PNG named .mp4":
        return write_picture(tmp_path / "clip.mp4", "PNG")
    if kind == "PNG":
        return write_picture(tmp_path / "photo.png", "PNG")
    if kind == "JPEG":  # FFmpeg chooses its image2 demuxer by the suffix: the line names the suffix
        return write_picture(tmp_path / "photo.jpg", "JPEG")
    if kind == "BMP named .avi":
        return write_picture(tmp_path / "scan.avi", "BMP")
    if kind == "GIF of one frame":
        return write_picture(tmp_path / "logo.gif", "GIF")
    if kind == "music with cover art":
        return make_audio_only(tmp_path / "song.m4a", cover=True)
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.touch()
        return path
    if kind == "text named .mkv":
        path = tmp_path / "notes.mkv"
        path.write_text("not a video\n")
        return path
    path = tmp_path / "folder.mp4"
    path.mkdir()
    return path


@pytest.mark.parametrize("kind, problem", [
    ("PNG named .mp4", "not a video: a single picture (PNG image)"),
    ("PNG", "not a video: a single picture (PNG image)"),
    ("JPEG", "not a video: a single picture (JPG image)"),
    ("BMP named .avi", "not a video: a single picture (BMP image)"),
    ("GIF of one frame", "not a video: a single picture (GIF image)"),
    ("music with cover art", "has no video stream, only a still picture (cover art)"),
    ("empty", "an empty file (0 bytes), not a video"),
    ("text named .mkv", "not a readable video (Invalid data found when processing input)"),
    ("folder", "is a folder, not a video file"),
])  # fmt: skip
def test_a_file_that_is_not_a_video_is_one_line_saying_what_it_is(tmp_path, kind, problem):
    """Whatever its name says: FFmpeg's demuxer tells a picture from a video, and a picture is refused before a
    frame is decoded (a PNG would otherwise make a snippet of sixteen copies of itself)."""
    path = not_a_video(tmp_path, kind)
    for read in (probe, lambda video: list(ClipReader(video, PRESETS["rtfm"]))):
        with pytest.raises(InputError) as error:
            read(path)
        assert str(error.value) == f"{path}: {problem}"


def test_pictures_that_follow_one_another_are_a_video(tmp_path):
    """An animated GIF, two PNGs written one after another (as FFmpeg's image2pipe sends frames) and a video of one
    frame are videos: one picture alone is not."""
    animated = make_video(tmp_path / "animated.gif", 8, 64, 48, codec="gif")
    picture = write_picture(tmp_path / "frame.png", "PNG").read_bytes()
    (tmp_path / "frames.mp4").write_bytes(picture + picture)
    single = make_video(tmp_path / "single.mp4", 1, 64, 48)
    for video, frames in ((animated, 8), (tmp_path / "frames.mp4", 2), (single, 1)):
        reader = ClipReader(video, PRESETS["rtfm"])
        assert len(list(reader)) == 1 and reader.frames == frames
