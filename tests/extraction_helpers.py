"""Inputs of the extraction and detection tests: short encoded videos, and the seeded I3D weights of
../shared/reference/i3d/README.md (``anomaly.extraction.network.seeded_state_dict``: the package measures bf16's
effect with them too, and tests without ../shared still have weights)."""

import functools
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import av
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from anomaly.extraction import network


@functools.cache
def _seeded_entries() -> Tuple[Tuple[str, Tensor], ...]:
    return tuple(network.seeded_state_dict().items())


def seeded_state_dict() -> Dict[str, Tensor]:
    """The tests' I3D weights, drawn once per test process (a second each time): a new dict of the same tensors,
    which are only ever read (saved, or copied into a network)."""
    return dict(_seeded_entries())


def write_seeded_weights(folder: Path) -> Path:
    """The seeded weights saved as the released file is named, in ``folder``."""
    weights = folder / "i3d_r50_kinetics.pth"
    torch.save(seeded_state_dict(), weights)
    return weights


def make_video(path: Path, frames: int, width: int, height: int, fps: int = 25, codec: str = "libx264", seed: int = 0,
               options: Optional[dict] = None, turn: Optional[Tuple[int, bool]] = None) -> Path:
    """A video of smooth random colour gradients (so that lossy codecs keep it close to what was drawn).
    ``options``: the container's (e.g. ``{"movflags": "faststart"}``: an MP4 with its index first); ``turn``: its
    display matrix (see ``write_frames``)."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    images = []
    for _ in range(frames):
        a, b, c = rng.uniform(0, 255, 3)
        images.append(np.stack([(a + rows) % 256, (b + columns) % 256, (c + rows + columns) % 256], axis=2))
    pixel_format = "rgb8" if codec == "gif" else "yuv420p"
    return write_frames(path, [image.astype(np.uint8) for image in images], codec, pixel_format, fps, turn, options)


def write_frames(path: Path, frames: List[np.ndarray], codec: str, pixel_format: str, fps: int = 25,
                 turn: Optional[Tuple[int, bool]] = None, options: Optional[dict] = None) -> Path:
    """Encode RGB uint8 frames H W 3. ``turn`` = (degrees counter-clockwise, mirrored): a display matrix that turns
    the stored frames by that angle, then mirrors them left to right (PyAV's ``set_display_rotation``)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
        if turn is not None:
            stream.set_display_rotation(turn[0], hflip=turn[1])
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_in_half(video: Path, path: Path) -> Path:
    """The first half of ``video``'s bytes, as a download that broke off leaves it."""
    data = video.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def cut_without_reencoding(video: Path, path: Path, first_frame: int) -> Path:
    """``video`` from ``first_frame`` on, as ``ffmpeg -ss ... -c copy`` cuts a video whose only keyframe is its first
    frame: every packet is copied, shifted so that ``first_frame`` shows at 0; MP4 writes an edit list that hides
    the earlier frames, which stay stored (and counted)."""
    with av.open(str(video)) as source, av.open(str(path), "w") as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream)
        shift = int(round(first_frame / stream.average_rate / stream.time_base))
        for packet in source.demux(stream):
            if packet.pts is None:
                continue  # the demuxer's empty packet at the end
            packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, copy
            target.mux(packet)
    return path


def make_audio_only(path: Path, cover: bool = False) -> Path:
    """Half a second of silent AAC; with ``cover``, the cover picture a music file carries (a one-frame JPEG stream,
    marked as an attached picture: MP4's muxer writes it, the .m4a suffix's would refuse it)."""
    with av.open(str(path), "w", format="mp4" if cover else None) as container:
        stream = container.add_stream("aac", rate=16000)
        if cover:
            picture = container.add_stream("mjpeg", rate=1)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            for packet in picture.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), "rgb24")):
                container.mux(packet)
            for packet in picture.encode():
                container.mux(packet)
        samples = np.zeros((1, 1024), np.float32)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_picture(path: Path, image_format: str, width: int = 64, height: int = 48) -> Path:
    """A still picture in ``image_format`` (PIL's: PNG, JPEG, BMP, GIF, ...), whatever ``path``'s suffix says."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=image_format)
    return path

