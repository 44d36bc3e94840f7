"""Decoding videos with PyAV, one RGB frame at a time: uint8 H W 3 arrays, never the whole video in memory."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np

from anomaly.errors import InputError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, before decoding: ``frames`` is its count or an estimate (0 when unknown)."""

    path: Path
    frames: int
    fps: Optional[float]
    width: int
    height: int


def _open(path: Path) -> "av.container.InputContainer":
    if not path.is_file():
        raise InputError(path, "video not found" if not path.exists() else "not a file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "the video is not readable (permissions)")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a readable video ({_reason(error)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream")
    return container


def _reason(error: Exception) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split()) or type(error).__name__


def probe(path: PathLike) -> VideoInfo:
    """Frame count (exact when the container records it, else duration × rate), frame rate and size."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frames = int(stream.frames or 0)
        if not frames and fps and stream.duration is not None and stream.time_base is not None:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        elif not frames and fps and container.duration:
            frames = int(round(container.duration / av.time_base * fps))
        return VideoInfo(path, frames, fps, stream.codec_context.width, stream.codec_context.height)


def decode_frames(path: PathLike) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as RGB uint8 H W 3, in display order.

    A video that stops decoding part way raises ``InputError`` naming it (the frames so far are not returned as a
    complete video).
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads inside FFmpeg
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise InputError(path, f"decoding failed part way ({_reason(error)})") from None
