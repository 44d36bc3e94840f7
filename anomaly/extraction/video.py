"""Decoding videos with PyAV, one RGB frame at a time: uint8 H W 3 arrays, upright, never the whole video in memory.

Frames come out as a player shows them, as FFmpeg's command line decodes them by default (its ``autorotate``): a
stream whose display matrix turns or mirrors the stored frames (a phone held upright stores its frames sideways
with a 90° matrix) is decoded into upright frames. Only turns by multiples of 90°, with or without a mirror, exist
in practice; another angle is refused in one line.

A video is a stream of moving pictures. Refused when a file is opened, in one line naming it, before a frame is
decoded: a file FFmpeg reads as one picture (a PNG, JPEG, BMP, ... whatever its name says, a GIF of one frame), and
one whose only pictures are still (an audio file's cover art). Pictures that follow one another in one file (an
animated GIF) are a video's frames.

``probe`` says what the container declares before decoding: an exact frame count (MP4, MOV, AVI, GIF index their
frames) or a duration (Matroska, WebM, FLV), from which ``incomplete`` tells a video cut short from a whole one.
"""

import itertools
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar, Union

import av
import numpy as np

from anomaly.errors import InputError

PathLike = Union[str, Path]
T = TypeVar("T")

# A duration-derived frame count is an estimate: duration × average rate is off by a frame at each end (whether the
# last frame's display time is counted), by more when the rate varies (FFmpeg averages the first frames) or when only
# the container's duration is known (an audio track may outlast the video). So a video is partial when it decodes
# fewer frames than such an estimate by more than this share of it, or by more than DURATION_SLACK_FRAMES frames,
# whichever is larger. A declared count is exact (the container's index of stored frames): any shortfall is partial.
DURATION_SLACK_SHARE = 0.05
DURATION_SLACK_FRAMES = 2
# FFmpeg's demuxers of picture files: image2 (chosen by a picture's extension: .jpg, .tga, ...), ico, those of
# animated pictures (gif, apng, jpegxl_anim), and the "piped <codec> sequence" ones, each named <codec>_pipe (chosen
# by content: png_pipe, jpeg_pipe, webp_pipe, ..., whatever the file's name). One picture is not a video; several
# (an animated GIF, pictures written one after another) are a video's frames.
PICTURE_DEMUXERS = {"image2", "ico", "gif", "apng", "jpegxl_anim"}
COVER_ART = av.stream.Disposition.attached_pic  # a video stream of one still picture: a music file's cover


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, before decoding. ``frames``: its count of stored frames when ``counted``, else an
    estimate from ``duration`` × ``fps`` (0 when neither is known; also when the duration is shorter than the
    stored count, as with an edit list). ``width`` × ``height``: the stored frames'
    size."""

    path: Path
    frames: int
    fps: Optional[float]
    width: int
    height: int
    counted: bool = False
    duration: Optional[float] = None  # seconds of video the container declares, when it declares no count


@dataclass(frozen=True)
class Orientation:
    """How a stream's display matrix turns its stored frames upright: ``rotation``, the matrix's angle in degrees
    clockwise (the turn FFmpeg's command line applies; ``ffprobe`` prints it counter-clockwise, negated), and
    ``mirrored`` when the matrix also flips them (then it is that turn followed by a flip upside down). ``apply``
    does it to an H W 3 frame as a transposition and flips (views, no copy)."""

    rotation: int = 0
    mirrored: bool = False
    transpose: bool = False
    flip_rows: bool = False
    flip_columns: bool = False

    def apply(self, frame: np.ndarray) -> np.ndarray:
        if self.transpose:
            frame = frame.transpose(1, 0, 2)
        if self.flip_rows:
            frame = frame[::-1]
        if self.flip_columns:
            frame = frame[:, ::-1]
        return frame


UPRIGHT = Orientation()


def orientation_of(matrix: Optional[bytes], path: Path) -> Orientation:
    """The :class:`Orientation` of a display matrix (FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX``: 9 int32, the 2 × 2
    part in 16.16 fixed point), or a one-line InputError for an angle that is not a multiple of 90°.

    The matrix maps a stored pixel (x, y) (y downwards) to its displayed place (x', y') = (m0 x + m3 y, m1 x + m4 y);
    turning by multiples of 90° with or without a mirror, each of x' and y' is ± one of x and y. x' taken from y
    means the frame is transposed; a negative sign reverses that axis of the result. FFmpeg's command line applies
    the same eight transforms (``transpose``, ``hflip``, ``vflip`` filters chosen from the same matrix).
    """
    if matrix is None:
        return UPRIGHT
    m0, m1, _, m3, m4 = struct.unpack("=9i", bytes(matrix))[:5]
    largest = max(abs(m0), abs(m1), abs(m3), abs(m4))
    if largest == 0:
        return UPRIGHT  # an empty matrix says nothing
    signs = [0 if abs(value) < 0.01 * largest else int(math.copysign(1, value)) for value in (m0, m1, m3, m4)]
    s0, s1, s3, s4 = signs
    rotation = round(math.degrees(math.atan2(m1, m0))) % 360
    if not ((s1 == s3 == 0 and s0 and s4) or (s0 == s4 == 0 and s1 and s3)):
        raise InputError(path, f"its display matrix turns the frames by {rotation}°: only turns by multiples of "
                               "90° are applied (re-encode it upright)")  # fmt: skip
    transpose = s0 == 0
    x_sign, y_sign = (s3, s1) if transpose else (s0, s4)
    return Orientation(rotation, m0 * m4 - m1 * m3 < 0, transpose, y_sign < 0, x_sign < 0)


def upright(frame: "av.VideoFrame", source: PathLike) -> Tuple[Orientation, np.ndarray]:
    """A decoded frame as RGB uint8 H W 3, turned upright by its display matrix (:func:`orientation_of`; a turn
    that is not a multiple of 90° is a one-line InputError naming ``source``), and that turn."""
    side_data = frame.side_data
    orientation = orientation_of(side_data["DISPLAYMATRIX"] if "DISPLAYMATRIX" in side_data else None, source)
    return orientation, orientation.apply(frame.to_ndarray(format="rgb24"))


def open_video(path: Path) -> "av.container.InputContainer":
    """The container of the video file ``path``, or a one-line InputError naming it: missing, a folder or not a
    regular file, not readable, empty, not a video (FFmpeg's reason), a single picture (:func:`single_picture`), or
    without a video stream (:func:`with_video_stream`)."""
    if not path.is_file():
        if not path.exists():
            raise InputError(path, "video not found")
        raise InputError(path, "is a folder, not a video file" if path.is_dir() else "not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "the video is not readable (permissions)")
    if path.stat().st_size == 0:
        raise InputError(path, "an empty file (0 bytes), not a video")
    container = with_video_stream(_opened(path), path)
    if container.format.name not in PICTURE_DEMUXERS and not container.format.name.endswith("_pipe"):
        return container
    with container:
        picture = single_picture(container, path)
    if picture:
        raise InputError(path, f"not a video: {picture}")
    return with_video_stream(_opened(path), path)  # read from its first picture again


def _opened(path: Path) -> "av.container.InputContainer":
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a readable video ({failure_reason(error)})") from None


def single_picture(container: "av.container.InputContainer", path: Path) -> str:
    """What the file ``path`` that FFmpeg reads with a demuxer of pictures (``PICTURE_DEMUXERS``) is when it holds a
    single picture ('a single picture (PNG image)'); '' when it holds several (an animated GIF: a video's frames).
    ``container`` is read past its first pictures."""
    stream = video_stream(container)
    pictures = stream.frames
    if not pictures:  # undeclared: its first two pictures are looked for
        try:
            pictures = sum(1 for packet in itertools.islice(container.demux(stream), 2) if packet.size)
        except (av.FFmpegError, MemoryError) as error:
            raise InputError(path, f"not a readable video ({failure_reason(error)})") from None
    if pictures > 1:
        return ""
    name = container.format.name  # image2 is FFmpeg's choice by the file's extension, the others by its content
    kind = path.suffix[1:] if name == "image2" else name.removesuffix("_pipe")
    return f"a single picture ({kind.upper()} image)"


def video_stream(container: "av.container.InputContainer") -> Optional["av.video.VideoStream"]:
    """The first video stream of moving pictures (not an attached picture: an audio file's cover art), or None."""
    return next((stream for stream in container.streams.video if not stream.disposition & COVER_ART), None)


def with_video_stream(container: "av.container.InputContainer", source: PathLike) -> "av.container.InputContainer":
    """``container`` when it has a video stream of moving pictures (:func:`video_stream`); else closed, and a
    one-line InputError naming ``source``."""
    if video_stream(container) is None:
        covered = bool(container.streams.video)
        container.close()
        raise InputError(source, "has no video stream" + (", only a still picture (cover art)" if covered else ""))
    return container


def failure_reason(error: BaseException) -> str:
    """FFmpeg's (or the system's) words for ``error``, on one line."""
    if isinstance(error, MemoryError):
        return "out of memory"
    return " ".join(str(getattr(error, "strerror", None) or error).split()) or type(error).__name__


def _duration(container: "av.container.InputContainer", stream: "av.video.VideoStream") -> Optional[float]:
    """Seconds of video the file declares: the stream's own duration, else its Matroska ``DURATION`` tag, else the
    container's (which covers every stream)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")  # HH:MM:SS.fraction
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        pass
    return container.duration / av.time_base if container.duration else None


def nominal_rate(stream: "av.video.VideoStream") -> Optional[float]:
    """Frames per second a stream declares (its average rate, else FFmpeg's guess from its timing), or None."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def probe(path: PathLike) -> VideoInfo:
    """Frame count (exact when the container records it, else duration × rate), frame rate and stored size."""
    path = Path(path)
    with open_video(path) as container:
        stream = video_stream(container)
        fps = nominal_rate(stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        duration = _duration(container, stream)
        timed = int(round(duration * fps)) if duration and fps else 0
        # An edit list (a cut made without re-encoding: ffmpeg -c copy, a phone's trim) keeps the samples before
        # the cut stored, and counted, but not shown: its duration is then shorter than the stored count.
        if stream.frames and not 0 < timed < stream.frames:
            return VideoInfo(path, int(stream.frames), fps, width, height, counted=True)
        return VideoInfo(path, timed, fps, width, height, duration=duration if timed else None)


def incomplete(info: VideoInfo, decoded: int, stopped: str = "", shown_until: Optional[float] = None) -> str:
    """Why a video of which ``decoded`` frames could be decoded is partial ('' when it is whole): decoding stopped
    with the error ``stopped``, or fewer frames than ``info`` declares (see DURATION_SLACK_SHARE). A duration's
    estimate also needs the decoded frames to end early: ``shown_until`` (seconds from the first frame to the end of
    the last decoded one), when known, must fall short of the duration by as much, since a variable frame rate
    (whose average the container's rate is not) gives fewer frames than duration × rate and still fills it."""
    if info.counted:
        declared = f" of the {info.frames} frames its container declares"
    elif info.frames:
        declared = (f" of the about {info.frames} frames its duration declares ({info.duration:.2f} s at "
                    f"{info.fps:g} frames/s)")  # fmt: skip
    else:
        declared = ""
    if stopped:
        return f"decoding failed after {decoded}{declared or ' frames'} ({stopped})"
    slack = 0 if info.counted else max(DURATION_SLACK_FRAMES, DURATION_SLACK_SHARE * info.frames)
    if info.frames - decoded <= slack:  # also when nothing is declared (a raw stream: no count, no duration)
        return ""
    filled = not info.counted and shown_until is not None and info.duration - shown_until <= slack / info.fps
    return "" if filled else f"only {decoded}{declared} could be decoded (a file cut short, or corrupt)"


def variable_frame_times(times: np.ndarray, fps: Optional[float]) -> Optional[List[float]]:
    """``times`` (each frame's, in seconds from the first), rounded to the microsecond, when frame / ``fps`` would
    misplace a frame by more than half a frame (a variable frame rate: many phones record so; or no declared rate);
    None when frame / ``fps`` places every frame, or when the times cannot (not finite, or decreasing)."""
    if len(times) < 2 or not np.isfinite(times).all() or (np.diff(times) < 0).any():
        return None
    if fps and np.abs(times - np.arange(len(times)) / fps).max() <= 0.5 / fps:
        return None
    return [round(float(time), 6) for time in times]


class DecodingStopped(InputError):
    """Decoding failed part way; ``reason`` is FFmpeg's word for it."""

    def __init__(self, path: Path, frames: int, reason: str):
        super().__init__(path, f"decoding failed after {frames} frames ({reason})")
        self.reason = reason


class VideoDecoder:
    """Every frame of the first video stream, upright (see the module docstring), as RGB uint8 H W 3, in display
    order. ``orientation`` is the first frame's (once one is decoded). An error part way raises
    :class:`DecodingStopped`: the frames so far are not passed off as the whole video."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.orientation: Optional[Orientation] = None
        self._shown_at: List[Optional[float]] = []  # the presentation time of each frame __iter__ gave

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._decoded(self._upright)

    def _upright(self, frame: "av.VideoFrame") -> np.ndarray:
        orientation, image = upright(frame, self.path)
        if self.orientation is None:
            self.orientation = orientation
        self._shown_at.append(frame.time)
        return image

    def decoded_times(self) -> np.ndarray:
        """The times of the frames ``__iter__`` has given so far, as :meth:`frame_times` gives them (no second
        decoding)."""
        return self._from_first(self._shown_at)

    def frame_times(self, count: Optional[int] = None) -> np.ndarray:
        """The presentation time of every frame (the first ``count`` when given: a partial video's that decode),
        in seconds from the first frame's (float64), decoded as ``__iter__`` decodes them (so there are as many):
        frame i is shown at ``frame_times()[i]``. A stream without timestamps takes its nominal rate."""
        decoded = self._decoded(lambda frame: frame.time)
        try:
            times = list(itertools.islice(decoded, count))
        finally:
            decoded.close()
        return self._from_first(times)

    def _from_first(self, times: List[Optional[float]]) -> np.ndarray:
        if times and all(time is not None for time in times):
            return np.asarray(times, dtype=np.float64) - times[0]
        with open_video(self.path) as container:
            rate = nominal_rate(video_stream(container))
        return np.arange(len(times)) / rate if rate else np.arange(len(times), dtype=np.float64)

    def _decoded(self, convert: Callable[["av.VideoFrame"], T]) -> Iterator[T]:
        """``convert`` of every decoded frame, in display order; a failure part way is :class:`DecodingStopped`."""
        with open_video(self.path) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"  # frame and slice threads inside FFmpeg
            decoded = 0
            try:
                for frame in container.decode(stream):
                    converted = convert(frame)
                    decoded += 1
                    yield converted
            except (av.FFmpegError, MemoryError) as error:
                raise DecodingStopped(self.path, decoded, failure_reason(error)) from None


def decode_frames(path: PathLike) -> Iterator[np.ndarray]:
    """The frames of :class:`VideoDecoder`: upright RGB uint8 H W 3, in display order."""
    return iter(VideoDecoder(path))
