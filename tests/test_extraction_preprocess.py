"""The preprocessing recipes, computed here by hand with PIL and numpy, against the pipeline's tensors."""

import dataclasses

import av
import numpy as np
import pytest
import torch
from PIL import Image

from anomaly.errors import InputError
from anomaly.extraction import preprocess
from anomaly.extraction.network import cut_crops
from anomaly.extraction.preprocess import MAX_RESIZED_PIXELS, PRESETS, ClipBuilder, ClipReader, opencv_bilinear_resize
from anomaly.extraction.video import UPRIGHT, VideoInfo
from tests.conftest import shared_path
from tests.extraction_helpers import make_video


def rtfm_by_hand(frame: np.ndarray) -> np.ndarray:
    """Resize(256) (PIL bilinear), TenCrop(224), (x - 114.75) / 57.375 -> float32 10 224 224 3."""
    height, width = frame.shape[:2]
    size = (256, int(256 * height / width)) if width <= height else (int(256 * width / height), 256)
    image = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR)).astype(np.float32)
    h, w = image.shape[:2]
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))

    def five(im):
        return [im[:224, :224], im[:224, w - 224 :], im[h - 224 :, :224], im[h - 224 :, w - 224 :],
                im[top : top + 224, left : left + 224]]  # fmt: skip

    return (np.stack(five(image) + five(image[:, ::-1])) - 114.75) / 57.375


def gowtham_by_hand(frame: np.ndarray) -> np.ndarray:
    """340 × 256 Lanczos, x · 2 / 255 − 1, the extractor's five crops and the flipped five -> float32 10 224 224 3."""
    image = np.asarray(Image.fromarray(frame).resize((340, 256), Image.LANCZOS)).astype(np.float32) * 2 / 255 - 1

    def five(im):
        return [im[:224, :224], im[:224, -224:], im[16:240, 58:282], im[-224:, :224], im[-224:, -224:]]

    return np.stack(five(image) + five(image[:, ::-1]))


def vadclip_by_hand(frame: np.ndarray) -> np.ndarray:
    """VadCLIP's src/crop.py: cv2.resize to 340 × 256 (its INTER_LINEAR: ``opencv_bilinear_resize``, checked against
    OpenCV's rule below), crops centre, top-left, top-right, bottom-left, bottom-right of the frame and then of the
    flipped frame, CLIP's (x / 255 − mean) / std -> float32 10 224 224 3."""
    image = opencv_bilinear_resize(frame, 340, 256).astype(np.float32) / 255
    image = (image - np.float32([0.48145466, 0.4578275, 0.40821073])) / np.float32([0.26862954, 0.26130258, 0.27577711])

    def five(im):
        return [im[16:240, 58:282], im[:224, :224], im[:224, -224:], im[-224:, :224], im[-224:, -224:]]

    return np.stack(five(image) + five(image[:, ::-1]))


BY_HAND = {"rtfm": rtfm_by_hand, "gowtham": gowtham_by_hand, "vadclip": vadclip_by_hand}
CENTRE = {"rtfm": 4, "gowtham": 2, "vadclip": 0}


def pipeline_crops(preset: str, clips: torch.Tensor, num_crops: int) -> torch.Tensor:
    """The crops the network sees of uint8 clips B 16 h w 3: (B·N) 3 16 224 224, cut on the device."""
    boxes = PRESETS[preset].crop_boxes(clips.shape[2], clips.shape[3], num_crops)
    return cut_crops(PRESETS[preset].normalise(clips), boxes)


def pipeline_frame(preset: str, frame: np.ndarray, num_crops: int) -> np.ndarray:
    """The pipeline's network input for one frame, as N 224 224 3."""
    resized = torch.from_numpy(np.array(PRESETS[preset].resize(frame)))[None, None]  # 1 1 h w 3
    return pipeline_crops(preset, resized, num_crops)[:, :, 0].permute(0, 2, 3, 1).numpy()


def test_host_crops_are_the_network_crops():
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for preset in PRESETS:
        scaled = PRESETS[preset].scale(torch.from_numpy(PRESETS[preset].crops(frame, 10)).float()).numpy()
        np.testing.assert_allclose(pipeline_frame(preset, frame, 10), scaled, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size", [(240, 320), (144, 176), (300, 256), (256, 400)])
def test_one_frame(preset, size):
    frame = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = BY_HAND[preset](frame)
    np.testing.assert_allclose(pipeline_frame(preset, frame, 10), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pipeline_frame(preset, frame, 5), expected[:5], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pipeline_frame(preset, frame, 1), expected[[CENTRE[preset]]], rtol=0, atol=1e-6)


def test_gowtham_resize_and_scaling_match_the_fixture():
    fixture = np.load(shared_path("reference", "i3d", "frame_preprocess.npz"))
    preset = PRESETS["gowtham"]
    resized = torch.tensor(preset.resize(fixture["frame"]), dtype=torch.float32)
    np.testing.assert_allclose(preset.scale(resized).numpy(), fixture["preprocessed"], rtol=0, atol=1e-6)


def decoded_frames(path) -> list:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("preset", PRESETS)
def test_a_short_clip_of_small_frames(tmp_path, preset):
    """20 frames of 176 × 144: rtfm gives 2 clips (the second loop-padded), gowtham and vadclip 1 (the tail
    dropped)."""
    video = make_video(tmp_path / "small.mp4", 20, 176, 144)
    frames = decoded_frames(video)
    assert len(frames) == 20
    if preset == "rtfm":
        chunks = [list(range(16)), [16 + index % 4 for index in range(16)]]
    else:
        chunks = [list(range(16))]
    by_hand = np.stack([np.stack([BY_HAND[preset](frames[index]) for index in chunk], axis=1) for chunk in chunks])
    by_hand = by_hand.reshape(-1, 16, 224, 224, 3).transpose(0, 4, 1, 2, 3)  # (T·N) 3 16 224 224

    reader = ClipReader(video, PRESETS[preset])
    clips = torch.from_numpy(np.stack(list(reader)))
    assert reader.frames == 20
    resized = (256, 312) if preset == "rtfm" else (256, 340)  # 176 x 144: shorter side to 256, or 340 x 256
    assert clips.shape == (len(chunks), 16, *resized, 3) and clips.dtype == torch.uint8
    assert PRESETS[preset].normalise(clips).is_contiguous(memory_format=torch.channels_last_3d)  # the network's
    np.testing.assert_allclose(pipeline_crops(preset, clips, 10).numpy(), by_hand, rtol=0, atol=1e-6)


class FramesOfSizes:
    """Stands for ``VideoDecoder``: black upright frames of the given (H, W) sizes."""

    sizes: list = []

    def __init__(self, path):
        self.orientation = UPRIGHT

    def __iter__(self):
        return (np.zeros((*size, 3), np.uint8) for size in self.sizes)


def test_a_video_whose_frames_change_size_is_refused_in_one_line(monkeypatch, tmp_path):
    sizes = [(144, 176)] * 5 + [(288, 352)]  # the same aspect ratio resizes alike: not refused
    sizes += [(240, 300)]
    monkeypatch.setattr(FramesOfSizes, "sizes", sizes)
    monkeypatch.setattr(preprocess, "VideoDecoder", FramesOfSizes)
    monkeypatch.setattr(preprocess, "probe", lambda path: VideoInfo(path, 0, None, 176, 144))
    with pytest.raises(InputError, match=r"changes its frame size from 176x144 to 300x240 at frame 7: the rtfm "
                                         r"preset crops one frame size per video"):  # fmt: skip
        list(ClipReader(tmp_path / "changing.mp4", PRESETS["rtfm"]))


def test_a_frame_that_would_resize_beyond_the_bound_is_refused_before_resizing(tmp_path):
    """2048 × 2: the shorter side to 256 would make the longer 262,144 pixels, 3 GiB a clip."""
    video = make_video(tmp_path / "wide.mp4", 2, 2048, 2)

    def resize(frame):
        raise AssertionError("resized")

    with pytest.raises(InputError) as error:
        list(ClipReader(video, dataclasses.replace(PRESETS["rtfm"], resize=resize)))
    assert str(error.value) == (f"{video}: its 2048x2 frames would resize to 262144x256 (rtfm preset), beyond the "
                                "262,144 pixels a resized frame may have (1024x256: an aspect ratio up to 4:1)")  # fmt: skip


@pytest.mark.parametrize("size", [(256, 1024), (1024, 256), (2, 2)])
def test_frames_up_to_the_bound_are_resized(size):
    """4:1 either way is the largest accepted; a 2 × 2 frame grows to 256 × 256."""
    height, width = PRESETS["rtfm"].resized_size(*size)
    assert height * width <= MAX_RESIZED_PIXELS
    frame = np.zeros((*size, 3), np.uint8)
    assert PRESETS["rtfm"].resize(frame).shape == (height, width, 3)


@pytest.fixture(scope="module")
def short_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("short")
    return {frames: make_video(folder / f"{frames}.mp4", frames, 176, 144, seed=frames) for frames in (1, 15, 16, 17)}


@pytest.mark.parametrize("frames, snippets", [(1, 1), (15, 1), (16, 1), (17, 2)])
def test_rtfm_keeps_the_tail(short_videos, frames, snippets):
    assert PRESETS["rtfm"].snippet_count(frames) == snippets
    assert len(list(ClipReader(short_videos[frames], PRESETS["rtfm"]))) == snippets


@pytest.mark.parametrize("frames", [1, 15, 16])
def test_gowtham_refuses_videos_of_16_frames_or_fewer(short_videos, frames):
    assert PRESETS["gowtham"].snippet_count(frames) == 0
    reader = iter(ClipReader(short_videos[frames], PRESETS["gowtham"]))
    with pytest.raises(InputError, match=rf"has {frames} frames; the gowtham preset needs at least 17") as error:
        next(reader)  # refused before any clip comes out
    assert str(error.value).startswith(str(short_videos[frames]))


def test_gowtham_drops_the_tail(short_videos):
    assert PRESETS["gowtham"].snippet_count(17) == 1 and PRESETS["gowtham"].snippet_count(47) == 2
    assert len(list(ClipReader(short_videos[17], PRESETS["gowtham"]))) == 1


@pytest.mark.parametrize("preset, released_at", [("rtfm", [16, 32]), ("gowtham", [17, 32])])
def test_a_clip_comes_out_as_soon_as_its_last_frame_is_pushed(preset, released_at):
    """As a live stream needs: a clip is given at its 16th frame, not at the next one; gowtham holds the first back
    until the 17th frame shows that the video is long enough for it."""
    builder = ClipBuilder(PRESETS[preset], "stream")
    frames = [np.full((48, 64, 3), index, np.uint8) for index in range(40)]
    released = [number for number, frame in enumerate(frames, start=1) for _ in builder.push(frame)]
    assert released == released_at
    tail = builder.finish()
    assert len(tail) == (1 if preset == "rtfm" else 0)
    if tail:  # 8 frames loop-padded to 16: frames 33-40, then 33-40 again
        assert tail[0][:, 0, 0, 0].tolist() == [32 + index % 8 for index in range(16)]


def test_a_stream_without_enough_frames_for_a_snippet_gives_no_clip():
    builder = ClipBuilder(PRESETS["gowtham"], "stream")
    assert [clip for _ in range(16) for clip in builder.push(np.zeros((48, 64, 3), np.uint8))] == []
    with pytest.raises(InputError, match="^stream: has 16 frames; the gowtham preset needs at least 17"):
        builder.finish()


# ---------------------------------------------------------------------------------------------------------------
# opencv_bilinear_resize: cv2.resize(frame, (width, height)), INTER_LINEAR on uint8, without OpenCV
# ---------------------------------------------------------------------------------------------------------------


def gray(rows) -> np.ndarray:
    """A uint8 H W 3 frame whose three channels are ``rows``."""
    return np.repeat(np.array(rows, np.uint8)[..., None], 3, axis=2)


def test_opencv_resize_interpolates_between_pixel_centres():
    """Half-pixel centres: output pixel d samples the input at (d + 0.5) · scale − 0.5; outside the first and last
    centres the edge pixel is repeated. [0, 255] doubled samples at -0.25, 0.25, 0.75, 1.25: 0, 63.75, 191.25, 255."""
    resized = opencv_bilinear_resize(gray([[0, 255]]), 4, 1)
    assert resized.shape == (1, 4, 3) and resized.dtype == np.uint8
    assert resized[..., 0].tolist() == [[0, 64, 191, 255]]
    assert (resized == resized[..., :1]).all()  # channels are interpolated alike


def test_opencv_resize_does_not_antialias_when_shrinking():
    """A quarter of 8 pixels samples at 1.5 and 5.5: the mean of pixels 1, 2 and of 5, 6 alone (an antialiasing
    filter would average all four pixels of each output and give 25 and 50)."""
    assert opencv_bilinear_resize(gray([[0, 0, 100, 0, 0, 0, 0, 200]]), 2, 1)[..., 0].tolist() == [[50, 0]]


def test_opencv_resize_rounds_in_its_fixed_point_arithmetic():
    """2 × 2 -> 4 × 4, cv2.resize's output (OpenCV 5.1.0, x86-64). Output (0, 1) samples row -0.25, column 0.25;
    OpenCV keeps the row fraction 0.75 there with both row taps on row 0, and rounds each row's product down on its
    own: S = 33·1536 + 215·512 = 160768, S >> 4 = 10048, (512·10048 >> 16) + (1536·10048 >> 16) = 78 + 235,
    (313 + 2) >> 2 = 78, where the exact value 0.75·33 + 0.25·215 = 78.5 would round to 79. Output (1, 0), at the
    left edge column, weighs pixel 0 by 2048 alone: 0.75·33 + 0.25·217 = 79 exactly."""
    frame = gray([[33, 215], [217, 130]])
    expected = [[33, 78, 169, 215], [79, 108, 165, 194], [171, 166, 156, 151], [217, 195, 152, 130]]
    assert opencv_bilinear_resize(frame, 4, 4)[..., 0].tolist() == expected
    assert opencv_bilinear_resize(frame, 3, 5)[..., 0].tolist() == [
        [33, 124, 215], [51, 129, 206], [125, 149, 173], [199, 168, 138], [217, 173, 130]]  # fmt: skip
    ramp = gray(np.arange(35).reshape(5, 7) * 7)
    assert opencv_bilinear_resize(ramp, 3, 2)[..., 0].tolist() == [[41, 58, 74], [164, 180, 196]]


@pytest.mark.parametrize("height, width", [(1, 1), (1, 9), (9, 1), (37, 53), (256, 340), (1080, 1920)])
def test_opencv_resize_to_340x256_keeps_a_constant_frame_and_the_same_size(height, width):
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (0, 137, 255)
    resized = opencv_bilinear_resize(frame, 340, 256)
    assert resized.shape == (256, 340, 3)
    assert (resized == (0, 137, 255)).all()
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert np.array_equal(opencv_bilinear_resize(noise, width, height), noise)
