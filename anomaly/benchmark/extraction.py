"""How fast feature extraction is, stage by stage, beside what the community extractor does, in the same run.

On one synthetic video (smooth moving gradients, encoded with libx264 into a temporary folder):

- decode: PyAV frames/s (``decode_frames``, RGB arrays);
- preprocess: frames/s of resizing decoded frames (``Preset.resize``, uint8), the host's part of preprocessing (the
  crops are cut and scaled on the network's device, within the network's time);
- network: snippets/s of the I3D forward alone (``--num_crops`` clips per snippet, ``batch_size`` snippets per
  forward), fp32 and bf16 (bf16 only on CUDA or on CPUs with bf16 instructions: elsewhere it is emulated and
  orders of magnitude slower, so it is skipped and said so);
- end to end, snippets/s: this package's pipeline (a decoding thread feeding batched forwards) and the baseline of
  I3D_Feature_Extraction_resnet: every frame written to a JPEG file first, each 16-frame chunk read back with PIL,
  resized (340 × 256 Lanczos) and scaled in float64 numpy, cropped, and sent through the network one snippet at a
  time, with nothing overlapping, as pytorch-resnet3d's module computes it (BatchNorm layers, 3-D max-pools,
  the default channels-first layout). Both use the gowtham recipe, so they compute the same features.

Random weights: speed does not depend on their values.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from anomaly.hardware import native_bf16
from anomaly.measuring import device_name, run_times, timed
from anomaly.extraction.extractor import FeatureExtractor, extract_features
from anomaly.errors import InputError, check_range
from anomaly.extraction.network import I3DResNet50
from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.extraction.preprocess import PRESETS
from anomaly.extraction.video import decode_frames


BENCHMARK_PRESET = "gowtham"  # the community extractor's recipe, which the baseline follows


@dataclass(frozen=True)
class ExtractionBenchmarkSettings:
    device: str
    frames: int
    width: int
    height: int
    num_crops: int
    batch_size: int
    repeats: int = 1  # timed network forwards per precision

    @classmethod
    def for_device(cls, device: str, quick: bool = False, **overrides) -> "ExtractionBenchmarkSettings":
        if quick:
            base = dict(frames=48, width=320, height=240, num_crops=1, batch_size=3)
        elif torch.device(device).type == "cuda":
            base = dict(frames=320, width=856, height=480, num_crops=10, batch_size=8)  # ShanghaiTech frames
        else:
            base = dict(frames=32, width=856, height=480, num_crops=10, batch_size=2)
        base.update({key: value for key, value in overrides.items() if value is not None})
        return cls(device=device, **base)

    def check(self) -> "ExtractionBenchmarkSettings":
        """Every size possible (one-line InputError otherwise), before anything is encoded or timed."""
        preset = PRESETS[BENCHMARK_PRESET]
        check_range(self.frames, "--frames", minimum=preset.min_frames, integer=True,
                    fix=f"the {preset.name} recipe needs more than {FRAMES_PER_SNIPPET}")
        for name in ("width", "height"):
            value = getattr(self, name)
            check_range(value, f"--{name}", minimum=2, integer=True)
            if value % 2:
                raise InputError(None, f"--{name} must be even (H.264's 4:2:0 chroma halves it), not {value}")
        for name in ("batch_size", "repeats"):
            check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        return self


@dataclass
class ExtractionBenchmarkResult:
    settings: ExtractionBenchmarkSettings
    machine: str
    rates: Dict[str, float] = field(default_factory=dict)  # label -> frames/s or snippets/s
    feature_difference: float = float("nan")  # the pipeline's features against the published network's, relative
    notes: List[str] = field(default_factory=list)


def make_test_video(path: Path, frames: int, width: int, height: int, fps: int = 25) -> Path:
    rows, columns = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.stack([(rows + 3 * index) % 256, (columns + 5 * index) % 256, (rows + columns) % 256], axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def baseline_extract(
    video: Path, folder: Path, network: I3DResNet50, device: torch.device, num_crops: int
) -> np.ndarray:
    """The community extractor's way: JPEG files, PIL, float64 numpy, one snippet per forward of ``network`` (the
    module as released, on ``device``) -> T N 2048."""
    frame_files = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            frame_files.append(folder / f"{index:06d}.jpg")
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(frame_files[-1])
    corners = [(slice(0, 224), slice(0, 224)), (slice(0, 224), slice(-224, None)), (slice(16, 240), slice(58, 282)),
               (slice(-224, None), slice(0, 224)), (slice(-224, None), slice(-224, None))]  # fmt: skip
    features = []
    for start in range(0, len(frame_files) - FRAMES_PER_SNIPPET + 1, FRAMES_PER_SNIPPET):
        chunk = np.stack([
            np.array(Image.open(file).convert("RGB").resize((340, 256), Image.LANCZOS)).astype(float) * 2 / 255 - 1
            for file in frame_files[start : start + FRAMES_PER_SNIPPET]
        ])  # fmt: skip
        images = [chunk, chunk[:, :, ::-1]]
        crops = [image[:, rows, columns] for image in images for rows, columns in corners]
        crops = crops if num_crops == 10 else crops[:5] if num_crops == 5 else [crops[2]]
        clips = torch.from_numpy(np.stack(crops).transpose(0, 4, 1, 2, 3).astype(np.float32)).to(device)
        with torch.no_grad():
            features.append(published_features(network, clips).float().cpu().numpy())
    return np.stack(features)


def _difference_from_published(
    features: np.ndarray, frames: List[np.ndarray], network: I3DResNet50, preset, num_crops: int, device: torch.device
) -> float:  # fmt: skip
    """max |Δ| / max |feature| between the pipeline's first snippet (N 2048) and ``published_features`` of the
    same 16 decoded frames, cropped and scaled on the host: what the pipeline's faster network changes."""
    crops = np.stack([preset.crops(frame, num_crops) for frame in frames], axis=1)  # N 16 224 224 3
    clips = preset.scale(torch.from_numpy(crops).permute(0, 4, 1, 2, 3).float()).to(device)
    with torch.no_grad():
        expected = published_features(network, clips).cpu().numpy()
    return float(np.abs(features - expected).max() / np.abs(expected).max())


def published_features(network: I3DResNet50, clips: Tensor) -> Tensor:
    """clips B 3 16 224 224 -> B 2048 as pytorch-resnet3d's module computes them (its 3-D max-pools), which the
    community extractor runs: the baseline's network. The same values as ``network.features``."""
    x = F.max_pool3d(network.relu(network.bn1(network.conv1(clips))), (2, 3, 3), (2, 2, 2))
    x = F.max_pool3d(network.layer1(x), (2, 1, 1), (2, 1, 1))
    x = network.layer4(network.layer3(network.layer2(x)))
    return network.avgpool(x).flatten(1)


def run_extraction_benchmark(
    settings: ExtractionBenchmarkSettings, log: Callable[[str], None] = print
) -> ExtractionBenchmarkResult:
    device = torch.device(settings.check().device)
    result = ExtractionBenchmarkResult(settings, device_name(device))
    preset = PRESETS[BENCHMARK_PRESET]
    snippets = preset.snippet_count(settings.frames)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        log(f"encoding a {settings.frames}-frame {settings.width}x{settings.height} video")
        video = make_test_video(folder / "video.mp4", settings.frames, settings.width, settings.height)

        frames: List[np.ndarray] = []
        seconds = timed(lambda: frames.extend(decode_frames(video)), torch.device("cpu"))
        result.rates["decode (frames/s)"] = len(frames) / seconds
        seconds = timed(lambda: [preset.resize(frame) for frame in frames], torch.device("cpu"))
        result.rates["preprocess (frames/s)"] = len(frames) / seconds

        network = I3DResNet50().to(device).eval()  # the baseline runs it as it is, the pipeline its inference copy
        extractor = FeatureExtractor(network, device)
        height, width = preset.resize(frames[0]).shape[:2]
        clips = torch.randint(0, 256, (settings.batch_size, FRAMES_PER_SNIPPET, height, width, 3), dtype=torch.uint8)
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and not native_bf16(device):
                result.notes.append(f"network bf16: skipped, this {'GPU' if device.type == 'cuda' else 'CPU'} has no "
                                    "bf16 instructions (emulated: far slower)")
                continue
            extractor.precision = precision
            log(f"network {precision}: warm-up, then {settings.repeats} forward(s) of {settings.batch_size} snippets")
            extractor(clips[:1], preset, settings.num_crops)  # warm-up on one snippet
            seconds = sum(run_times(lambda: extractor(clips, preset, settings.num_crops), device, settings.repeats, warmup=0))
            result.rates[f"network {precision} (snippets/s)"] = settings.batch_size * settings.repeats / seconds
        extractor.precision = "fp32"

        log("end to end: this pipeline")
        extracted: List[np.ndarray] = []
        seconds = timed(
            lambda: extract_features([video], extractor, preset, settings.num_crops, settings.batch_size,
                                     on_video=lambda _index, features, *_: extracted.append(features)),  # fmt: skip
            device,
        )
        result.rates["end to end, this pipeline (snippets/s)"] = snippets / seconds
        result.feature_difference = _difference_from_published(extracted[0][0], frames[:FRAMES_PER_SNIPPET], network,
                                                               preset, settings.num_crops, device)  # fmt: skip
        log("end to end: baseline (JPEG files, PIL, float64, one snippet per forward)")
        jpegs = folder / "frames"
        jpegs.mkdir()
        seconds = timed(lambda: baseline_extract(video, jpegs, network, device, settings.num_crops), device)
        result.rates["end to end, baseline (snippets/s)"] = snippets / seconds
    return result


def format_extraction_report(result: ExtractionBenchmarkResult) -> str:
    settings = result.settings
    lines = [
        f"machine: {result.machine}",
        f"video: {settings.frames} frames of {settings.width}x{settings.height}, {BENCHMARK_PRESET} recipe, "
        f"{settings.num_crops} crop(s), {settings.batch_size} snippets per forward",
    ]
    width = max(len(label) for label in result.rates)
    lines += [f"  {label:<{width}}  {rate:10.2f}" for label, rate in result.rates.items()]
    ours = result.rates["end to end, this pipeline (snippets/s)"]
    baseline = result.rates["end to end, baseline (snippets/s)"]
    lines.append(f"  {'end to end speed-up':<{width}}  {ours / baseline:9.2f}x")
    lines.append(f"  features: max |pipeline - published network| on the same frames = "
                 f"{result.feature_difference:.1e} of the largest feature")  # fmt: skip
    lines += [f"  {note}" for note in result.notes]
    return "\n".join(lines)
