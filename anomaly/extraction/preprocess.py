"""The preprocessing recipes of ten-crop features (I3D's two, CLIP's one), and cutting a video into 16-frame clips.

A decoded frame (uint8 H W 3) is resized (``Preset.resize``, uint8 h w 3) and stacked into clips of 16 frames
(``ClipBuilder``, frame by frame, as a live stream's frames arrive; ``ClipReader``, a video file's: uint8 16 h w 3). The crops are boxes of the resized frame (``Preset.crop_boxes``: the preset's
order, the flipped frame's after the frame's), cut on the network's device (``I3DResNet50.crop_features``, which
shares the first convolution between overlapping crops); ``Preset.crops`` cuts them on the host, for a look at
them. The pixel scaling (``Preset.normalise``) is applied to whole batches on the network's device: uint8
B 16 h w 3 -> float32 B 3 16 h w, channels-last 3-D (the layout that ``I3DResNet50.inference_copy`` runs in).

- ``rtfm`` (default; the RTFM features): shorter side to 256 with PIL bilinear (torchvision ``Resize(256)``),
  torchvision ``TenCrop(224)`` order (top-left, top-right, bottom-left, bottom-right, centre, then the same five of
  the flipped frame), (x − 114.75) / 57.375, the last partial clip loop-padded: T = ceil(frames / 16).
- ``gowtham`` (the community extractor I3D_Feature_Extraction_resnet): 340 × 256 with PIL Lanczos, crops
  top-left, top-right, centre [16:240, 58:282], bottom-left, bottom-right, then the flipped five, x · 2 / 255 − 1,
  the tail shorter than 16 dropped: T = floor(frames / 16), and only videos of more than 16 frames.
- ``vadclip`` (CLIP ViT-B/16 features as VadCLIP's released ones, its ``src/crop.py``): 340 × 256 with OpenCV's
  bilinear (``opencv_bilinear_resize``: no antialiasing), crops centre [16:240, 58:282], top-left, top-right,
  bottom-left, bottom-right, then the flipped five, CLIP's normalisation (x / 255 − mean) / std per channel, the
  tail shorter than 16 dropped: T = floor(frames / 16), videos of at least 16 frames.

``num_crops`` 10 is the published layout, 5 the first five crops (XD-Violence), 1 the centre crop.

Memory does not grow with the input's size: frames are decoded and resized one at a time, and a frame whose resized
size would exceed MAX_RESIZED_PIXELS (1024 × 256: a 4:1 frame at 256 on its shorter side) is refused, before it is
resized, in one line naming the video. A clip of resized frames is then at most 16 × 1024 × 256 × 3 bytes (12.6 MB),
less than its ten 224 × 224 crops (24 MB); without the bound a 2048 × 2 video would resize to 262,144 × 256 (3 GiB
a clip). Only rtfm can exceed it (it keeps the aspect ratio); gowtham and vadclip always resize to 340 × 256.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from anomaly.errors import InputError, check_choice
from anomaly.extraction.clip import CLIP_MEAN, CLIP_STD
from anomaly.extraction.network import CROP_SIZE, CropBox
from anomaly.extraction.video import UPRIGHT, DecodingStopped, Orientation, VideoDecoder, incomplete, probe
from anomaly.layout import FRAMES_PER_SNIPPET, NUM_CROPS, PRESET_NAMES

PathLike = Union[str, Path]
MAX_RESIZED_PIXELS = 1024 * 256  # the largest resized frame accepted (see the module docstring)
SHORTER_SIDE = 256  # rtfm's resized shorter side (torchvision Resize(256))


def _shorter_side_size(height: int, width: int) -> Tuple[int, int]:
    """torchvision ``Resize(256)``'s (h, w): the longer side becomes int(256 · long / short)."""
    if width <= height:
        return int(SHORTER_SIDE * height / width), SHORTER_SIDE
    return SHORTER_SIDE, int(SHORTER_SIDE * width / height)


def _resize_shorter_side(frame: np.ndarray) -> np.ndarray:
    """torchvision ``Resize(256)`` on a PIL image, PIL bilinear."""
    height, width = _shorter_side_size(*frame.shape[:2])
    if frame.shape[:2] == (height, width):  # torchvision returns the image untouched then
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def _resize_340x256(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((340, 256), Image.LANCZOS))


# OpenCV's fixed-point bilinear weights: a pair of shorts summing to 2048 (INTER_RESIZE_COEF_BITS = 11).
OPENCV_WEIGHT_BITS = 11


def _opencv_bilinear_taps(destination: int, source: int, clamp_weights: bool) -> Tuple[np.ndarray, ...]:
    """The two source indices (clamped) and the two fixed-point weights of each destination index, computed as
    OpenCV's ``resize`` computes them: the position (d + 0.5) · scale − 0.5 in double, rounded to float, its
    floor and float fraction, the weights (1 − f) · 2048 and f · 2048 rounded to nearest-even. Columns beyond an
    edge (``clamp_weights``) take the edge pixel with weight 2048; rows keep their fraction, their two taps both
    clamped to the edge row (OpenCV treats the two axes differently there, and the rounding shows it)."""
    scale = 1.0 / (destination / source)  # OpenCV stores the inverse scale and inverts it
    position = ((np.arange(destination) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position)
    fraction = position - first
    first = first.astype(np.int64)
    if clamp_weights:
        fraction[(first < 0) | (first >= source - 1)] = 0
    one = np.float32(1 << OPENCV_WEIGHT_BITS)
    weights = np.rint(np.stack([(np.float32(1) - fraction) * one, fraction * one])).astype(np.int32)
    return np.clip(first, 0, source - 1), np.clip(first + 1, 0, source - 1), weights


def opencv_bilinear_resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 H W C -> uint8 ``height`` ``width`` C, bit for bit ``cv2.resize(frame, (width, height))`` (its default
    INTER_LINEAR), without OpenCV.

    Half-pixel-centred bilinear, no antialiasing when shrinking, in OpenCV's fixed-point arithmetic: each row is
    interpolated horizontally with 11-bit weights (S = a0·p0 + a1·p1, at most 255·2048), then two such rows
    vertically as OpenCV's vectorised kernel does, each product rounded down on its own:
    ((b0·(S0 >> 4)) >> 16) + ((b1·(S1 >> 4)) >> 16), rounded to nearest by (· + 2) >> 2. Equal sizes give the frame
    unchanged. Only the pixels read are converted to integers, so the cost follows the output's size more than the
    input's (a 1920 × 1080 frame to 340 × 256: about 2.5 ms, a seventh of PIL's bilinear resize).
    """
    src_height, src_width = frame.shape[:2]
    left, right, alpha = _opencv_bilinear_taps(width, src_width, clamp_weights=True)
    top, bottom, beta = _opencv_bilinear_taps(height, src_height, clamp_weights=False)
    channels = int(np.prod(frame.shape[2:], dtype=np.int64))
    # Rows as flat W·C vectors, so that each tap is one gather along the last axis: [top, bottom] × [left, right].
    columns = (np.stack([left, right])[..., None] * channels + np.arange(channels)).reshape(-1)
    rows = frame.reshape(src_height, src_width * channels)[np.concatenate([top, bottom])]
    taps = np.take(rows, columns, axis=1).reshape(2, height, 2, width * channels).astype(np.int32)
    alpha = np.repeat(alpha, channels, axis=1)
    horizontal = (taps[:, :, 0] * alpha[0] + taps[:, :, 1] * alpha[1]) >> 4
    vertical = ((horizontal[0] * beta[0][:, None]) >> 16) + ((horizontal[1] * beta[1][:, None]) >> 16)
    return ((vertical + 2) >> 2).astype(np.uint8).reshape(height, width, *frame.shape[2:])


def _ten_crop_corners(height: int, width: int) -> List[Tuple[int, int]]:
    """torchvision ``FiveCrop`` order: top-left, top-right, bottom-left, bottom-right, centre."""
    bottom, right = height - CROP_SIZE, width - CROP_SIZE
    centre = (int(round(bottom / 2.0)), int(round(right / 2.0)))
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), centre]


def _gowtham_corners(height: int, width: int) -> List[Tuple[int, int]]:
    """[:224, :224], [:224, -224:], [16:240, 58:282], [-224:, :224], [-224:, -224:] of the 256 × 340 frame."""
    bottom, right = height - CROP_SIZE, width - CROP_SIZE
    return [(0, 0), (0, right), (16, 58), (bottom, 0), (bottom, right)]


def _vadclip_corners(height: int, width: int) -> List[Tuple[int, int]]:
    """VadCLIP's order: [16:240, 58:282], [:224, :224], [:224, -224:], [-224:, :224], [-224:, -224:] of 256 × 340."""
    bottom, right = height - CROP_SIZE, width - CROP_SIZE
    return [(16, 58), (0, 0), (0, right), (bottom, 0), (bottom, right)]


@functools.lru_cache(maxsize=None)
def _clip_channels(device: torch.device) -> Tuple[Tensor, Tensor]:
    """CLIP's per-channel mean and std on ``device``, made once (on CUDA each copy would wait for the device)."""
    return torch.tensor(CLIP_MEAN, device=device), torch.tensor(CLIP_STD, device=device)


def _clip_scale(pixels: Tensor) -> Tensor:
    """RGB pixel values 0-255 (... 3) -> CLIP's input: (x / 255 − mean) / std per channel."""
    mean, std = _clip_channels(pixels.device)
    return (pixels / 255 - mean) / std


@dataclass(frozen=True)
class Preset:
    name: str
    resize: Callable[[np.ndarray], np.ndarray]  # uint8 H W 3 -> uint8 h w 3
    resized_size: Callable[[int, int], Tuple[int, int]]  # (H, W) -> (h, w), computed without resizing
    corners: Callable[[int, int], List[Tuple[int, int]]]  # (h, w) of the resized frame -> five (top, left)
    centre: int  # index of the centre crop among the five
    scale: Callable[[Tensor], Tensor]  # float RGB pixel values 0-255, channels last (... 3) -> network input
    keep_tail: bool  # loop-pad the last partial clip (True) or drop it (False)
    min_frames: int  # shortest video accepted
    short_videos: str = ""  # what to do about a video shorter than min_frames, said with the refusal

    def snippet_count(self, frames: int) -> int:
        """T for a video of ``frames`` frames (0 when the preset refuses it)."""
        if frames < self.min_frames:
            return 0
        return -(-frames // FRAMES_PER_SNIPPET) if self.keep_tail else frames // FRAMES_PER_SNIPPET

    def crop_boxes(self, height: int, width: int, num_crops: int) -> List[CropBox]:
        """The crops of a resized h × w frame, in the feature files' order: (flipped, top, left) each."""
        check_choice(num_crops, NUM_CROPS, "--num_crops")
        corners = self.corners(height, width)
        if num_crops == 1:
            corners = [corners[self.centre]]
        return [(flipped, top, left) for flipped in (False, True)[: 2 if num_crops == 10 else 1] for top, left in corners]

    def crops(self, frame: np.ndarray, num_crops: int) -> np.ndarray:
        """A decoded frame uint8 H W 3 -> its crops uint8 N 224 224 3, resized first."""
        resized = self.resize(frame)
        images = {False: resized, True: resized[:, ::-1]}
        return np.stack([
            images[flipped][top : top + CROP_SIZE, left : left + CROP_SIZE]
            for flipped, top, left in self.crop_boxes(*resized.shape[:2], num_crops)
        ])  # fmt: skip

    def normalise(self, frames: Tensor) -> Tensor:
        """uint8 B 16 h w 3 (any device) -> float32 B 3 16 h w, the network's input, channels-last 3-D: stored as
        B 16 h w 3, which the frames already are, so no transposing copy is made."""
        return self.scale(frames.float()).permute(0, 4, 1, 2, 3).contiguous(memory_format=torch.channels_last_3d)


PRESETS = {
    "rtfm": Preset(
        "rtfm", _resize_shorter_side, _shorter_side_size, _ten_crop_corners, centre=4,
        scale=lambda x: (x - 114.75) / 57.375, keep_tail=True, min_frames=1,
    ),
    "gowtham": Preset(
        "gowtham", _resize_340x256, lambda height, width: (256, 340), _gowtham_corners, centre=2,
        scale=lambda x: x * 2 / 255 - 1, keep_tail=False, min_frames=FRAMES_PER_SNIPPET + 1,
        short_videos="; use --preset rtfm for short videos",
    ),
    "vadclip": Preset(
        "vadclip", lambda frame: opencv_bilinear_resize(frame, 340, 256), lambda height, width: (256, 340),
        _vadclip_corners, centre=0, scale=_clip_scale, keep_tail=False, min_frames=FRAMES_PER_SNIPPET,
    ),
}  # fmt: skip
assert tuple(PRESETS) == PRESET_NAMES, "anomaly.layout.PRESET_NAMES names these presets"


class ClipBuilder:
    """Upright decoded frames in, one at a time (``push``); the preset's 16-frame clips of resized frames out, uint8
    16 h w 3, as soon as each is complete; at the end (``finish``) the tail, as the preset treats it.

    ``frames`` counts the frames pushed, ``size`` is the first frame's (width, height). A frame that would resize
    beyond MAX_RESIZED_PIXELS, or to another size than the first (the crops are boxes of one frame size), is a
    one-line InputError naming ``source``, raised before it is resized. A clip is held back while the frames so far
    are fewer than the preset accepts (gowtham: 17), so that a video the preset refuses gives no clip at all:
    ``finish`` then raises the InputError that says so. A video file (``ClipReader``) and a live stream
    (``anomaly.live``) go through the same steps.
    """

    def __init__(self, preset: Preset, source: PathLike):
        self.preset = preset
        self.source = source
        self.frames = 0
        self.size: Optional[Tuple[int, int]] = None
        self._resized_size: Optional[Tuple[int, int]] = None
        self._clip: Optional[np.ndarray] = None  # the clip being filled
        self._held: List[np.ndarray] = []  # complete clips not yet given out

    def push(self, frame: np.ndarray) -> List[np.ndarray]:
        """One more upright frame (uint8 H W 3); the clips it completes, and those held back until the video is
        long enough for the preset (they come out with the frame that makes it so)."""
        resized = self._resize(frame)
        if self._clip is None:
            self._clip = np.empty((FRAMES_PER_SNIPPET, *resized.shape), np.uint8)
        self._clip[(self.frames - 1) % FRAMES_PER_SNIPPET] = resized
        if self.frames % FRAMES_PER_SNIPPET == 0:
            self._held.append(self._clip)
            self._clip = None
        if self.frames < self.preset.min_frames:
            return []
        released, self._held = self._held, []
        return released

    def finish(self) -> List[np.ndarray]:
        """The clips still to give at the end of the video: the last partial clip loop-padded (its own frames
        repeated from its start until it has 16) when the preset keeps the tail. An InputError when the video has
        fewer frames than the preset accepts."""
        if self.frames < self.preset.min_frames:
            if self.frames == 0:
                raise InputError(self.source, "no frames could be decoded")
            raise InputError(
                self.source,
                f"has {self.frames} frames; the {self.preset.name} preset needs at least {self.preset.min_frames} "
                f"(it drops the tail shorter than {FRAMES_PER_SNIPPET} frames{self.preset.short_videos})",
            )
        clips, self._held = self._held, []
        tail = self.frames % FRAMES_PER_SNIPPET
        if tail and self.preset.keep_tail:
            clips.append(self._clip[np.arange(FRAMES_PER_SNIPPET) % tail])
        self._clip = None
        return clips

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        if self._resized_size is None:
            self.size = (frame.shape[1], frame.shape[0])
            self._resized_size = self._check_size(frame.shape[:2])
        elif self.preset.resized_size(*frame.shape[:2]) != self._resized_size:
            (width, height) = self.size
            raise InputError(self.source, f"changes its frame size from {width}x{height} to {frame.shape[1]}x"
                                          f"{frame.shape[0]} at frame {self.frames + 1}: the {self.preset.name} "
                                          "preset crops one frame size per video")  # fmt: skip
        self.frames += 1
        return self.preset.resize(frame)

    def _check_size(self, shape: Tuple[int, int]) -> Tuple[int, int]:
        """The resized (h, w) of frames of ``shape`` (H, W), or a one-line InputError when it exceeds the bound."""
        height, width = self.preset.resized_size(*shape)
        if height * width > MAX_RESIZED_PIXELS:
            raise InputError(
                self.source,
                f"its {shape[1]}x{shape[0]} frames would resize to {width}x{height} ({self.preset.name} preset), "
                f"beyond the {MAX_RESIZED_PIXELS:,} pixels a resized frame may have (1024x256: an aspect ratio up "
                "to 4:1)",
            )
        return height, width


class ClipReader:
    """The clips of one video file, decoded (upright) and resized as they are read: uint8 16 h w 3 each
    (``ClipBuilder``'s, of ``VideoDecoder``'s frames).

    ``frames`` counts the frames decoded so far (all of them once iteration ends), ``times`` are their presentation
    times once it ends; ``orientation`` is how the frames were turned upright, ``size`` the upright frames' (width,
    height). Raises ``InputError`` naming the video for a video the preset refuses (no frames; gowtham: 16 frames or
    fewer) before its first clip is returned; for a frame that would resize beyond MAX_RESIZED_PIXELS, or to another
    size than the first, before resizing it; and for a partial video (``anomaly.extraction.video.incomplete``:
    decoding failed part way, or fewer frames than the container declares) once its frames are read. With
    ``accept_partial`` a partial video gives the clips of the frames that decode, and ``partial`` says what is
    missing.
    """

    def __init__(self, path: PathLike, preset: Preset, accept_partial: bool = False):
        self.path = Path(path)
        self.preset = preset
        self.accept_partial = accept_partial
        self.orientation: Orientation = UPRIGHT
        self.partial = ""
        self.times = np.zeros(0)  # each decoded frame's time in seconds from the first's, once iteration ends
        self._builder = ClipBuilder(preset, self.path)

    @property
    def frames(self) -> int:
        return self._builder.frames

    @property
    def size(self) -> Optional[Tuple[int, int]]:
        return self._builder.size

    def __iter__(self) -> Iterator[np.ndarray]:
        declared = probe(self.path)
        decoder = VideoDecoder(self.path)
        stopped = ""
        try:
            for frame in decoder:
                self.orientation = decoder.orientation
                yield from self._builder.push(frame)
        except DecodingStopped as error:
            stopped = error.reason
        self.times = decoder.decoded_times()
        shown_until = float(self.times[-1]) + 1 / declared.fps if len(self.times) and declared.fps else None
        problem = incomplete(declared, self.frames, stopped, shown_until)
        if problem and not self.accept_partial:
            raise InputError(self.path, f"{problem}; --accept_partial extracts the frames that decode")
        self.partial = problem
        yield from self._builder.finish()
