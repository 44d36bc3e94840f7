"""How fast feature extraction is, stage by stage, beside what the community extractor does, in the same run.

On one synthetic video (smooth moving gradients, encoded with libx264 into a temporary folder):

- decode: PyAV frames/s (``decode_frames``, RGB arrays);
- preprocess: frames/s of resizing decoded frames (``Preset.resize``, uint8), the host's part of preprocessing (the
  crops are cut and scaled on the network's device, within the network's time);
- the ceiling: GFLOP/s of a layer-3-sized 3×3×3 convolution (256 → 256 channels over one clip's 4 × 14 × 14,
  channels-last 3-D; :func:`conv3d_ceiling`) in each precision, the rate the network's own convolutions could at
  best reach here;
- network: snippets/s of the I3D forward alone (``--num_crops`` clips per snippet), each formulation the extractor
  has (``I3DExtractor``): fp32 eager, ``batch_size`` snippets per forward (what fp32 extraction runs); bf16
  eager, weights and activations in bf16, one crop per forward; and, with ``compile``, each compiled
  (``anomaly.extraction.compiling``; one crop per forward, its compile time said apart). Each with its GFLOP/s
  (FLOPs counted once by ``FlopCounterMode``, on the meta device) and its share of the ceiling. bf16 runs only on
  CUDA or on CPUs with bf16 instructions: elsewhere it is emulated and orders of magnitude slower, so it is skipped
  and said so;
- one snippet per forward, as ``s3r watch`` runs the network (eager): ms per snippet, fp32 and bf16;
- end to end, snippets/s: this package's pipeline (a decoding thread feeding the network: fp32 as extraction runs
  it, bf16 in its fastest formulation above) and the baseline of
  I3D_Feature_Extraction_resnet: every frame written to a JPEG file first, each 16-frame chunk read back with PIL,
  resized (340 × 256 Lanczos) and scaled in float64 numpy, cropped, and sent through the network one snippet at a
  time, with nothing overlapping, as pytorch-resnet3d's module computes it (BatchNorm layers, 3-D max-pools,
  the default channels-first layout). Both use the gowtham recipe, so they compute the same features.

With ``runtimes`` beyond ``torch`` (``--runtime torch onnxruntime openvino``): the network and an untrained S3R
exported once into the temporary folder as ``s3r export`` exports them (its time said), and each runtime's network
timed beside PyTorch's, taking turns with it: the batch forward and the one snippet per forward of ``s3r watch``,
in fp32 and, where the runtime runs it natively, bf16, each against PyTorch's fp32 of the same run.

The network's formulations are timed taking turns, and so are the pipelines and the baseline, each the best of
``repeats`` runs: on a shared machine a change of load then falls on all alike. Ratios printed: bf16 against the
best fp32 network, compiled against eager, end to end against the network (how much of the network's rate the
pipeline keeps), end to end against the community way, and each runtime against PyTorch fp32. Random weights: speed
does not depend on their values.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Tuple

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from torch.utils.flop_counter import FlopCounterMode

from anomaly.deploy.export import EXPORTED_BACKBONES, export_for_timing
from anomaly.deploy.runtime import RUNTIME_PRECISIONS
from anomaly.hardware import native_bf16
from anomaly.measuring import best_time, device_name, timed
from anomaly.extraction.extractor import extract_features
from anomaly.errors import InputError, check_choice, check_range
from anomaly.extraction.network import I3DExtractor, I3DResNet50
from anomaly.layout import FRAMES_PER_SNIPPET, RUNTIME_NAMES, TORCH_RUNTIME
from anomaly.extraction.preprocess import PRESETS, Preset
from anomaly.precision import NETWORK_PRECISIONS, dtype_of
from anomaly.extraction.video import decode_frames


BENCHMARK_PRESET = "gowtham"  # the community extractor's recipe, which the baseline follows
TIMING_ATOMS = 8  # the exported detector's dictionary: the network's timings do not involve it


@dataclass(frozen=True)
class ExtractionBenchmarkSettings:
    device: str
    frames: int
    width: int
    height: int
    num_crops: int
    batch_size: int
    repeats: int = 1  # timed runs of each network formulation and pipeline, taking turns: the best is kept
    compile: bool = True  # also time the compiled formulations (CPU only; a minute or so of compiling each)
    runtimes: Tuple[str, ...] = (TORCH_RUNTIME,)  # PyTorch, and the exported runtimes timed beside it (CPU only)

    @classmethod
    def for_device(cls, device: str, quick: bool = False, **overrides) -> "ExtractionBenchmarkSettings":
        if quick:
            base = dict(frames=48, width=320, height=240, num_crops=1, batch_size=3, compile=False)
        elif torch.device(device).type == "cuda":
            base = dict(frames=320, width=856, height=480, num_crops=10, batch_size=8)  # ShanghaiTech frames
        else:
            base = dict(frames=96, width=856, height=480, num_crops=10, batch_size=2)  # three forwards: overlap shows
        base.update({key: value for key, value in overrides.items() if value is not None})
        return cls(device=device, **base)

    def check(self) -> "ExtractionBenchmarkSettings":
        """Every size possible (one-line InputError otherwise), before anything is encoded or timed."""
        preset = PRESETS[BENCHMARK_PRESET]
        check_range(self.frames, "--frames", minimum=preset.min_frames, integer=True,
                    fix=f"the {preset.name} recipe needs more than {FRAMES_PER_SNIPPET}")
        check_video_size(self.width, self.height)
        for name in ("batch_size", "repeats"):
            check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        check_runtimes(self.runtimes, torch.device(self.device))
        return self


def check_video_size(width: int, height: int) -> None:
    """The size of a benchmark's test video (one-line InputError): at least 2 × 2, and even, as H.264 needs."""
    for name, value in (("width", width), ("height", height)):
        check_range(value, f"--{name}", minimum=2, integer=True)
        if value % 2:
            raise InputError(None, f"--{name} must be even (H.264's 4:2:0 chroma halves it), not {value}")


def check_runtimes(runtimes: Iterable[str], device: torch.device) -> None:
    """The runtimes a benchmark times beside PyTorch (one-line InputError): each a runtime, the exported ones on
    the CPU alone."""
    for runtime in runtimes:
        check_choice(runtime, RUNTIME_NAMES, "--runtime")
        if runtime != TORCH_RUNTIME and device.type != "cpu":
            raise InputError(None, f"--runtime {runtime} runs on the CPU: time it with --device cpu")


def check_exported_backbone(runtimes: Iterable[str], backbone: str) -> None:
    """The exported runtimes time only a backbone that ``s3r export`` exports (one-line InputError)."""
    exported = [runtime for runtime in dict.fromkeys(runtimes) if runtime != TORCH_RUNTIME]
    if exported and backbone not in EXPORTED_BACKBONES:
        raise InputError(None, f"--runtime {exported[0]}: s3r export exports {', '.join(EXPORTED_BACKBONES)}; "
                         f"--backbone {backbone} is timed in PyTorch alone")


def exported_networks(settings: ExtractionBenchmarkSettings, network: I3DResNet50, folder: Path,
                      precisions: List[str], log: Callable[[str], None]) -> Tuple[Dict[str, Callable], float]:  # fmt: skip
    """``network`` exported into ``folder`` (``export_for_timing``) and run by each exported runtime of
    ``settings`` in each of ``precisions`` it runs: label ('<runtime> <precision>') -> its network (called as
    ``I3DExtractor``), and the seconds the export took."""
    exported, seconds = export_for_timing(folder, network, BENCHMARK_PRESET, settings.num_crops, TIMING_ATOMS, log)
    networks = {f"{runtime} {precision}": exported.features(runtime, precision)
                for runtime in settings.runtimes if runtime != TORCH_RUNTIME
                for precision in precisions if precision in RUNTIME_PRECISIONS[runtime]}  # fmt: skip
    return networks, seconds


@dataclass
class ExtractionBenchmarkResult:
    settings: ExtractionBenchmarkSettings
    machine: str
    rates: Dict[str, float] = field(default_factory=dict)  # label -> frames/s, snippets/s or ms/snippet
    ceilings: Dict[str, float] = field(default_factory=dict)  # precision -> GFLOP/s of the ceiling convolution
    network_gflops: Dict[str, float] = field(default_factory=dict)  # network label -> GFLOP/s
    ratios: Dict[str, float] = field(default_factory=dict)  # label -> ratio
    feature_difference: float = float("nan")  # the pipeline's features against the published network's, relative
    notes: List[str] = field(default_factory=list)


def write_h264(path: Path, images: Iterable[np.ndarray], width: int, height: int, fps: int = 25) -> Path:
    """``images`` (height × width × 3 RGB, any numeric dtype with values in 0..255) as an H.264 video at ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_test_video(path: Path, frames: int, width: int, height: int, fps: int = 25) -> Path:
    rows, columns = np.mgrid[0:height, 0:width]
    images = (np.stack([(rows + 3 * index) % 256, (columns + 5 * index) % 256, (rows + columns) % 256], axis=2)
              for index in range(frames))  # fmt: skip
    return write_h264(path, images, width, height, fps)


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
    clips = preset.scale(torch.from_numpy(crops).float()).permute(0, 4, 1, 2, 3).to(device)
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


CEILING_SHAPE = (1, 256, 4, 14, 14)  # one clip's activations at layer 3: a bottleneck's 256 channels, 4 × 14 × 14
CEILING_REPEATS = 10  # the best of these runs (one is a few ms where bf16 is native)


def conv3d_ceiling(device: torch.device, precision: str) -> float:
    """GFLOP/s of a 3×3×3 convolution, 256 → 256 channels over ``CEILING_SHAPE``, channels-last 3-D, in
    ``precision``: the best of ``CEILING_REPEATS`` runs after one untimed."""
    generator = torch.Generator().manual_seed(0)
    dtype = dtype_of(precision)
    channels = CEILING_SHAPE[1]
    x = torch.rand(CEILING_SHAPE, generator=generator).to(device, dtype)
    weight = torch.rand(channels, channels, 3, 3, 3, generator=generator).to(device, dtype) / 27
    x, weight = (tensor.contiguous(memory_format=torch.channels_last_3d) for tensor in (x, weight))
    flops = 2 * channels * channels * 27 * CEILING_SHAPE[2] * CEILING_SHAPE[3] * CEILING_SHAPE[4]
    with torch.no_grad():
        seconds = best_time(lambda: F.conv3d(x, weight, padding=1), device, CEILING_REPEATS)
    return flops / seconds / 1e9


def snippet_flops(preset: Preset, height: int, width: int, num_crops: int) -> float:
    """FLOPs of one snippet through the network as the extractor computes it (stem shared between overlapping
    crops), counted on the meta device: nothing is computed."""
    network = I3DResNet50().eval().inference_copy().to("meta")
    frames = torch.empty(1, 3, FRAMES_PER_SNIPPET, height, width, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network.crop_features(frames.contiguous(memory_format=torch.channels_last_3d),
                              preset.crop_boxes(height, width, num_crops))  # fmt: skip
    return float(counter.get_total_flops())


def time_decoding(video: Path, preset: Preset, rates: Dict[str, float], resize_label: str) -> List[np.ndarray]:
    """The decoded frames of ``video``; the rates of decoding them and of resizing them by ``preset`` (frames/s) go
    into ``rates``, the latter under ``resize_label``."""
    frames: List[np.ndarray] = []
    seconds = timed(lambda: frames.extend(decode_frames(video)), torch.device("cpu"))
    rates["decode (frames/s)"] = len(frames) / seconds
    seconds = timed(lambda: [preset.resize(frame) for frame in frames], torch.device("cpu"))
    rates[resize_label] = len(frames) / seconds
    return frames


def timed_precisions(device: torch.device, notes: List[str]) -> List[str]:
    """The precisions a benchmark times the network in on ``device``: fp32, and bf16 where the device computes it
    natively; otherwise a line in ``notes`` says bf16 was skipped (emulated, it is far slower)."""
    precisions = [precision for precision in NETWORK_PRECISIONS if precision == "fp32" or native_bf16(device)]
    if "bf16" not in precisions:
        notes.append(f"bf16: skipped, this {'GPU' if device.type == 'cuda' else 'CPU'} has no bf16 instructions "
                     "(emulated: far slower)")
    return precisions


def interleaved_best(runs: Dict[str, Callable[[], object]], repeats: int, device: torch.device) -> Dict[str, float]:
    """The best of ``repeats`` timed calls of each run, the runs taking turns (on a shared machine a change of load
    then falls on all of them alike), after one untimed call each (a compiled extractor compiles there)."""
    for run in runs.values():
        run()
    times: Dict[str, List[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            times[label].append(timed(run, device))
    return {label: min(seconds) for label, seconds in times.items()}


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

        frames = time_decoding(video, preset, result.rates, "preprocess (frames/s)")

        network = I3DResNet50().to(device).eval()  # the baseline runs it as it is, the pipeline its inference copy
        height, width = preset.resize(frames[0]).shape[:2]
        clips = torch.randint(0, 256, (settings.batch_size, FRAMES_PER_SNIPPET, height, width, 3), dtype=torch.uint8)
        gflop_per_snippet = snippet_flops(preset, height, width, settings.num_crops) / 1e9
        precisions = timed_precisions(device, result.notes)
        modes = ["eager"] + (["compiled"] if settings.compile and device.type == "cpu" else [])
        extractors: Dict[str, I3DExtractor] = {}  # network label -> its formulation
        runs: Dict[str, Callable[[], object]] = {}
        for precision in precisions:
            for mode in modes:
                label = f"network {precision}{' compiled' if mode == 'compiled' else ''}"
                extractors[label] = I3DExtractor(network, device, precision, compile_mode=mode, log=log)
                runs[label] = lambda extractor=extractors[label]: extractor(clips, preset, settings.num_crops)
            watch = I3DExtractor(network, device, precision, compile_mode="eager", log=log)
            runs[f"one snippet per forward {precision}"] = lambda watch=watch: watch(clips[:1], preset,
                                                                                   settings.num_crops)
        runtimes: Dict[str, Callable] = {}  # '<runtime> <precision>' -> an exported runtime's network
        if any(runtime != TORCH_RUNTIME for runtime in settings.runtimes):
            log("exporting the network for the runtimes (s3r export) ...")
            runtimes, seconds = exported_networks(settings, network, folder, precisions, log)
            result.notes.append(f"the runtimes' models: exported in {seconds:.0f} s (s3r export)")
        for label, exported in runtimes.items():
            runs[f"network {label}"] = lambda exported=exported: exported(clips, preset, settings.num_crops)
            runs[f"one snippet per forward {label}"] = lambda exported=exported: exported(clips[:1], preset,
                                                                                         settings.num_crops)
        log(f"the network: {', '.join(runs)}: one forward each (compiling where compiled), then the best of "
            f"{settings.repeats} taking turns; {settings.batch_size} snippets per forward")
        best = interleaved_best(runs, settings.repeats, device)
        for precision in precisions:
            log(f"the ceiling: a 3x3x3 convolution 256 -> 256 in {precision}")
            result.ceilings[precision] = conv3d_ceiling(device, precision)
        pipelines: Dict[str, str] = {}  # precision -> the network label it runs end to end
        for label, extractor in extractors.items():
            precision = label.split()[1]
            if extractor.body.compile_seconds is not None:
                result.notes.append(f"{label}: compiling took {extractor.body.compile_seconds:.0f} s")
            if label.endswith("compiled") and not extractor.body.is_compiled:
                result.notes.append(f"{label}: not measured, compiling was not possible here (said above)")
                continue
            rate = settings.batch_size / best[label]
            result.rates[f"{label} (snippets/s)"] = rate
            result.network_gflops[label] = rate * gflop_per_snippet
            # End to end: fp32 as extraction runs it (eager), bf16 in its fastest formulation.
            faster = precision in pipelines and rate > result.rates[f"{pipelines[precision]} (snippets/s)"]
            if precision not in pipelines or (precision != "fp32" and faster):
                pipelines[precision] = label
        for precision in precisions:
            watch_seconds = best[f"one snippet per forward {precision}"]
            result.rates[f"one snippet per forward {precision} (ms)"] = 1000 * watch_seconds
        for label in runtimes:
            rate, watch_seconds = settings.batch_size / best[f"network {label}"], best[f"one snippet per forward {label}"]
            result.rates[f"network {label} (snippets/s)"] = rate
            result.rates[f"one snippet per forward {label} (ms)"] = 1000 * watch_seconds
            result.ratios[f"network {label} / torch fp32"] = rate / result.rates["network fp32 (snippets/s)"]
            result.ratios[f"one snippet per forward {label} / torch fp32 (s3r watch)"] = (
                best["one snippet per forward fp32"] / watch_seconds)

        extracted: Dict[str, np.ndarray] = {}  # precision -> the video's features

        def end_to_end(precision: str) -> None:
            def keep(_index: int, features: np.ndarray, *_) -> None:
                extracted[precision] = features

            extract_features([video], extractors[pipelines[precision]], preset, settings.num_crops,
                             settings.batch_size, on_video=keep)  # fmt: skip

        runs = {precision: lambda precision=precision: end_to_end(precision) for precision in pipelines}
        jpegs = folder / "frames"
        jpegs.mkdir()
        runs["baseline"] = lambda: baseline_extract(video, jpegs, network, device, settings.num_crops)
        log(f"end to end: this pipeline ({', '.join(pipelines.values())}) and the baseline (JPEG files, PIL, float64, "
            "one snippet per forward)")
        best = interleaved_best(runs, settings.repeats, device)
        for precision, label in pipelines.items():
            pipeline_rate = snippets / best[precision]
            result.rates[f"{_pipeline_label(precision)} (snippets/s)"] = pipeline_rate
            network_rate = result.rates[f"{label} (snippets/s)"]
            result.ratios[f"end to end / network, {precision} ({label})"] = pipeline_rate / network_rate
        result.rates["end to end, baseline (snippets/s)"] = snippets / best["baseline"]
        result.feature_difference = _difference_from_published(extracted["fp32"][0], frames[:FRAMES_PER_SNIPPET],
                                                               network, preset, settings.num_crops, device)  # fmt: skip
    _compare(result, list(pipelines))
    return result


def _pipeline_label(precision: str) -> str:
    return "end to end, this pipeline" + ("" if precision == "fp32" else f" {precision}")


def _best_network(rates: Dict[str, float], precision: str) -> float:
    return max(rate for label, rate in rates.items() if label.startswith(f"network {precision}"))


def _compare(result: ExtractionBenchmarkResult, precisions: List[str]) -> None:
    """The ratios between the rates measured (beside end to end / network, added as measured)."""
    rates = result.rates
    for precision in precisions:
        compiled = rates.get(f"network {precision} compiled (snippets/s)")
        if compiled is not None:
            eager = rates[f"network {precision} (snippets/s)"]
            result.ratios[f"network {precision}: compiled / eager"] = compiled / eager
        result.ratios[f"end to end / the community way, {precision}"] = (
            rates[f"{_pipeline_label(precision)} (snippets/s)"] / rates["end to end, baseline (snippets/s)"])
    if "bf16" in precisions:
        result.ratios["network bf16 / best fp32"] = _best_network(rates, "bf16") / _best_network(rates, "fp32")
        result.ratios["one snippet per forward: bf16 / fp32 (s3r watch)"] = (
            rates["one snippet per forward fp32 (ms)"] / rates["one snippet per forward bf16 (ms)"])


def format_extraction_report(result: ExtractionBenchmarkResult) -> str:
    settings = result.settings
    lines = [
        f"machine: {result.machine}",
        f"video: {settings.frames} frames of {settings.width}x{settings.height}, {BENCHMARK_PRESET} recipe, "
        f"{settings.num_crops} crop(s), {settings.batch_size} snippets per forward (fp32 eager; the other "
        "formulations one crop per forward)",
    ]
    width = max(len(label) for label in [*result.rates, *result.ratios])
    for label, rate in result.rates.items():
        line = f"  {label:<{width}}  {rate:10.2f}"
        network = label.rsplit(" (", 1)[0]
        if network in result.network_gflops:
            gflops = result.network_gflops[network]
            ceiling = result.ceilings[network.split()[1]]
            line += f"   {gflops:7.1f} GFLOP/s, {100 * gflops / ceiling:3.0f} % of the ceiling"
        lines.append(line)
    for precision, gflops in result.ceilings.items():
        lines.append(f"  {'ceiling ' + precision + ' (GFLOP/s)':<{width}}  {gflops:10.1f}   (3x3x3 convolution "
                     f"256 -> 256 over {'x'.join(map(str, CEILING_SHAPE[2:]))}, channels-last)")
    lines += [f"  {label:<{width}}  {ratio:9.2f}x" for label, ratio in result.ratios.items()]
    lines.append(f"  features: max |pipeline - published network| on the same frames = "
                 f"{result.feature_difference:.1e} of the largest feature")  # fmt: skip
    lines += [f"  {note}" for note in result.notes]
    return "\n".join(lines)
