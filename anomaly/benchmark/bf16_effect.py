"""What bf16 changes in I3D features, and in the scores of a detector that reads them, measured
(``s3r benchmark-bf16``).

Every video is extracted twice by the pipeline (``anomaly.extraction.extract_features``): fp32, and bf16. Per video:
the relative L2 error of its bf16 features against its fp32 ones and the largest |Δ| as a share of the largest
feature. With a detector: every frame's score (``anomaly.detection``: its snippet's) from each, the largest |Δ|,
and with frame labels the frame AUC of each. Without videos, :func:`made_videos` makes a labelled set (normal
training videos of moving gradients; anomalous ones crossed by a bright square, over a known stretch in the test
videos), and without a detector one is trained briefly (:func:`train_detector`) on the fp32 features of its
training videos, as the released checkpoints were trained on fp32 features.

**bf16 where it is emulated.** Where the CPU has no bf16 instructions PyTorch emulates bf16 convolutions (about 1
GFLOP/s on an AVX2 CPU: minutes per clip), so the features are computed by :class:`SimulatedBf16`: the float32
network with the bf16 network's weights (the same values), whose input, every convolution's output and every
residual sum are rounded to bf16, as the bf16 network stores them; the products accumulate in float32, as bf16
kernels accumulate them. The rounding happens at the same places with the same values as on a CPU that computes
bf16 natively; only the order of each float32 accumulation differs, which flips a rounding now and then, and the
network carries such flips on: the two computations are two draws of the same bf16 error, equal in size, not
element by element (``tests/test_extraction_bf16.py`` holds both to the same bound).

**The bound.** Each bf16 rounding changes a value by at most ``BF16_UNIT_ROUNDOFF`` (2^-8) of itself; independent
roundings add up in quadrature, and a network whose layers keep the scale of their input (BatchNorm folded into
them) carries them to the features at about their size. The longest path from a clip to the features passes
``rounding_stages`` roundings (the clip, the stem, and per bottleneck its three convolutions and the residual sum:
66), so the features' relative L2 error is expected within ``BF16_UNIT_ROUNDOFF · sqrt(66)`` ≈ 3.2 %
(:func:`feature_error_bound`).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from anomaly.benchmark.extraction import write_h264
from anomaly.data.features import resample_snippets
from anomaly.detection import frame_scores, snippet_scores, window_scorer
from anomaly.dictionary_learning import learn_task_dictionary
from anomaly.engine.detector_file import Detector, FeatureSpec
from anomaly.engine.metrics import weighted_roc_auc
from anomaly.engine.trainer import TrainingData, make_optimizer, train_step
from anomaly.engine.training_state import seed_everything
from anomaly.extraction import FEATURE_SIZE, I3DExtractor
from anomaly.extraction.extractor import extract_features
from anomaly.extraction.network import Bottleneck, I3DResNet50
from anomaly.extraction.preprocess import ClipReader, Preset
from anomaly.extraction.video import probe
from anomaly.errors import InputError
from anomaly.hardware import native_bf16
from anomaly.measuring import device_name
from anomaly.models import S3R
from anomaly.precision import BF16_UNIT_ROUNDOFF
from anomaly.tables import ascii_table


def round_to_bf16(x: Tensor) -> Tensor:
    """``x`` rounded to the nearest bfloat16, kept in its dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


def rounding_stages(network: I3DResNet50) -> int:
    """The bf16 roundings on the longest path from a clip to the features (see the module docstring)."""
    blocks = sum(len(stage) for stage in (network.layer1, network.layer2, network.layer3, network.layer4))
    return 2 + 4 * blocks


def feature_error_bound(network: I3DResNet50) -> float:
    """The relative L2 error of bf16 features against fp32 ones that bf16's rounding explains (module docstring)."""
    return BF16_UNIT_ROUNDOFF * math.sqrt(rounding_stages(network))


class SimulatedBf16:
    """The bf16 network computed in float32, rounding to bf16 where the bf16 network stores bf16 (see the module
    docstring); called as ``I3DExtractor`` is: uint8 clips B 16 h w 3 -> float32 features B N 2048."""

    def __init__(self, network: I3DResNet50, device: Union[str, torch.device] = "cpu"):
        self.device = torch.device(device)
        self.network = network.inference_copy(torch.bfloat16).float().to(self.device)
        for module in self.network.modules():
            if isinstance(module, (nn.Conv3d, Bottleneck)):
                module.register_forward_hook(lambda _module, _inputs, output: round_to_bf16(output))

    @torch.no_grad()
    def __call__(self, clips: Union[np.ndarray, Tensor], preset: Preset, num_crops: int) -> np.ndarray:
        clips = torch.as_tensor(clips).to(self.device)
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        frames = round_to_bf16(preset.normalise(clips))
        # The shared stem convolves the frames itself (no module call to hook): its output is rounded here.
        body = lambda x: self.network.from_stem(round_to_bf16(x))  # noqa: E731
        return self.network.crop_features(frames, boxes, body=body).cpu().numpy()


Extractor = Callable[[np.ndarray, Preset, int], np.ndarray]  # I3DExtractor or SimulatedBf16


def bf16_extractor(network: I3DResNet50, device: torch.device, clips: Optional[int],
                   log: Callable[[str], None]) -> Tuple[Extractor, str]:  # fmt: skip
    """The bf16 network as extraction runs it where bf16 is native, else its float32 simulation; and which."""
    if native_bf16(device):
        return I3DExtractor(network, device, "bf16", clips, log=log), "computed in bf16 (native here)"
    return SimulatedBf16(network, device), ("simulated in float32 (bf16 is emulated here: see "
                                            "anomaly/benchmark/bf16_effect.py)")


@dataclass
class Extracted:
    """A video's features in both precisions (T N 2048 each) and its decoded frames' count."""

    fp32: np.ndarray
    bf16: np.ndarray
    frames: int
    times: np.ndarray  # each decoded frame's presentation time, seconds from the first

    @property
    def relative_error(self) -> float:
        return float(np.linalg.norm(self.bf16 - self.fp32) / np.linalg.norm(self.fp32))

    @property
    def largest_error(self) -> float:
        return float(np.abs(self.bf16 - self.fp32).max() / np.abs(self.fp32).max())


def extract_both(videos: Sequence[Path], fp32: Extractor, bf16: Extractor, preset: Preset, num_crops: int,
                 batch_size: int, log: Callable[[str], None]) -> Tuple[Dict[Path, Extracted], List[str]]:  # fmt: skip
    """Both precisions' features of every video that extracts, and the line that says why of each that fails
    (said on ``log`` too)."""
    failures: List[str] = []
    runs: Dict[str, Dict[int, Tuple[np.ndarray, ClipReader]]] = {}
    for name, extractor in (("fp32", fp32), ("bf16", bf16)):
        done = runs[name] = {}

        def on_video(index: int, features: Optional[np.ndarray], reader: Optional[ClipReader], error: str) -> None:
            if features is None:
                if name == "fp32":
                    failures.append(error)
                    log(error)
            else:
                done[index] = (features, reader)

        log(f"extracting {len(videos)} video{'' if len(videos) == 1 else 's'}, {name}")
        extract_features(videos, extractor, preset, num_crops, batch_size, on_video)
    both = {videos[index]: Extracted(features, runs["bf16"][index][0], reader.frames, reader.times)
            for index, (features, reader) in runs["fp32"].items() if index in runs["bf16"]}  # fmt: skip
    return both, failures


@dataclass
class MadeVideos:
    """A labelled set of made videos: training videos with video-level labels, test videos with frame labels."""

    normal: List[Path]
    anomalous: List[Path]
    test: List[Path]
    labels: Dict[Path, np.ndarray]  # per test video, 0/1 per frame

    @property
    def all(self) -> List[Path]:
        return self.normal + self.anomalous + self.test


MADE_SIZE = (240, 320)  # height, width: rtfm resizes them to 256 x 341
MADE_TRAINING = (6, 6, 64)  # normal videos, anomalous videos, frames each (4 snippets)
MADE_TEST = (3, 3, 96, (32, 64))  # normal, anomalous, frames each (6 snippets), the anomalous frames [32, 64)


def made_video(path: Path, frames: int, anomalous: Sequence[bool], seed: int, fps: int = 25) -> Path:
    """Gradients drifting at a speed and in a direction of the video's own (H.264); over the frames flagged in
    ``anomalous`` a patch of flickering static (random black and white 8 × 8 blocks, new every frame), a quarter of
    the picture's width and height, crosses it."""
    rng = np.random.default_rng(seed)
    height, width = MADE_SIZE
    rows, columns = np.mgrid[0:height, 0:width]
    speed, phase = rng.uniform(1, 4, 3), rng.uniform(0, 255, 3)

    def images() -> Iterator[np.ndarray]:
        for index in range(frames):
            shift = phase + speed * index
            image = np.stack([(rows + shift[0]) % 256, (columns + shift[1]) % 256,
                              (rows + columns + shift[2]) % 256], 2)  # fmt: skip
            if anomalous[index]:
                static = rng.integers(0, 2, (height // 8, width // 8)).repeat(8, 0).repeat(8, 1) * 255
                top, left = (20 + 7 * index) % (height * 3 // 4), (13 * index) % (width * 3 // 4)
                patch = (slice(top, top + height // 4), slice(left, left + width // 4))
                image[patch] = static[patch][..., None]
            yield image

    return write_h264(path, images(), width, height, fps)


def made_videos(folder: Path) -> MadeVideos:
    """The labelled set (see ``MADE_TRAINING`` and ``MADE_TEST``), written into ``folder``."""
    normal_count, anomalous_count, frames = MADE_TRAINING
    made = MadeVideos([], [], [], {})
    for number in range(normal_count + anomalous_count):
        is_anomalous = number >= normal_count
        video = made_video(folder / f"train_{'anomalous' if is_anomalous else 'normal'}_{number}.mp4", frames,
                           [is_anomalous and index % 32 >= 16 for index in range(frames)], seed=number)  # fmt: skip
        (made.anomalous if is_anomalous else made.normal).append(video)
    normal_count, anomalous_count, frames, (start, stop) = MADE_TEST
    for number in range(normal_count + anomalous_count):
        labels = np.zeros(frames)
        if number >= normal_count:
            labels[start:stop] = 1
        video = made_video(folder / f"test_{number}.mp4", frames, labels.astype(bool), seed=100 + number)
        made.test.append(video)
        made.labels[video] = labels
    return made


TRAINING_BATCH = 4  # videos of each class per step
TRAINING_LR = 1e-3


def train_detector(normal: Sequence[np.ndarray], anomalous: Sequence[np.ndarray], preset: str, steps: int,
                   seed: int, device: torch.device, dictionary_ratio: float = 90) -> Detector:  # fmt: skip
    """S3R trained for ``steps`` steps on these training videos' features (T N 2048 each, resampled to 32 snippets
    as the published loader does), with the task-aware dictionary of the normal ones."""
    seed_everything(seed)
    normal32, anomalous32 = (np.stack([resample_snippets(video) for video in videos]) for videos in (normal, anomalous))
    means = normal32.mean(axis=(1, 2))  # V C: each normal video over crops and snippets
    dictionary = torch.from_numpy(learn_task_dictionary(means, dictionary_ratio, seed=seed)).to(device)
    batch = min(TRAINING_BATCH, len(normal), len(anomalous))
    model = S3R(FEATURE_SIZE, batch_size=batch).to(device)
    optimizer = make_optimizer(model, TRAINING_LR)
    data = TrainingData(normal32, anomalous32, batch, device)
    for _ in range(steps):
        train_step(model, optimizer, *data.next_batch(), dictionary)
    return Detector(model.eval(), dictionary[None], FeatureSpec("i3d", preset, normal32.shape[1], FEATURE_SIZE))


@dataclass
class ScoreChange:
    """The detector's frame scores from bf16 features against those from fp32 features."""

    largest: float  # max |Δ score| over every frame
    video: Path  # where it is
    auc_fp32: Optional[float] = None  # with frame labels
    auc_bf16: Optional[float] = None


def score_change(detector: Detector, extracted: Dict[Path, Extracted],
                 labels: Dict[Path, np.ndarray]) -> ScoreChange:  # fmt: skip
    """Every frame scored from both precisions' features (a frame takes its snippet's score, as ``s3r detect``; the
    detector in fp32, so that the features alone differ); the frame AUC of each over the videos with ``labels`` (0/1
    per frame), when some frames are anomalous and some not."""
    score = window_scorer(detector)
    scores = {video: [frame_scores(snippet_scores(score, getattr(both, name)), both.frames)
                      for name in ("fp32", "bf16")] for video, both in extracted.items()}  # fmt: skip
    changes = {video: float(np.abs(bf16 - fp32).max()) for video, (fp32, bf16) in scores.items()}
    worst = max(changes, key=changes.get)
    change = ScoreChange(changes[worst], worst)
    labelled = [video for video in scores if video in labels]
    if labelled:
        truth = torch.from_numpy(np.concatenate([labels[video] for video in labelled]))
        if 0 < float(truth.sum()) < len(truth):
            change.auc_fp32, change.auc_bf16 = (
                weighted_roc_auc(torch.from_numpy(np.concatenate([scores[video][which] for video in labelled])),
                                 truth, 1 - truth) for which in (0, 1))  # fmt: skip
    return change


@dataclass
class Bf16Effect:
    machine: str
    bf16: str  # how bf16 was computed
    weights: str  # which I3D weights
    bound: float  # feature_error_bound
    extracted: Dict[Path, Extracted] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)  # a line per video that could not be extracted
    detector: str = ""  # which detector scored them ('' none)
    scores: Optional[ScoreChange] = None


SEEDED_WEIGHTS = "seeded (anomaly.extraction.network.seeded_state_dict), not the released ones (--weights)"


def measure_bf16_effect(
    network: I3DResNet50, weights: str, device: torch.device, preset: Preset, num_crops: int, batch_size: int,
    folder: Path, videos: Optional[Sequence[Path]] = None,
    labels: Optional[Callable[[Path, Extracted], Optional[np.ndarray]]] = None,
    detector: Optional[Detector] = None, detector_name: str = "", steps: int = 100, seed: int = 0,
    log: Callable[[str], None] = print,
) -> Bf16Effect:  # fmt: skip
    """Both precisions' features of ``videos`` (None: :func:`made_videos`, written into ``folder``), their errors
    and, with a ``detector`` (or made videos: one trained on them), the change of its scores. ``labels(video,
    extracted)``: a video's frame labels when known (made videos: always)."""
    made = made_videos(folder) if videos is None else None
    videos = made.all if made is not None else list(videos)
    fp32 = I3DExtractor(network, device, "fp32", log=log)
    bf16, how = bf16_extractor(network, device, _declared_snippets(videos, preset) * num_crops, log)
    effect = Bf16Effect(device_name(device), how, weights, feature_error_bound(network))
    effect.extracted, effect.failures = extract_both(videos, fp32, bf16, preset, num_crops, batch_size, log)
    if not effect.extracted:
        raise InputError(None, "none of the videos could be extracted (said above)")
    scored = {video: both for video, both in effect.extracted.items() if made is None or video in made.test}
    if made is not None and detector is None:
        # Features at their own scale: the seeded network's are about 10^3 (BatchNorm statistics 0 and 1, not the
        # data's), which would saturate S3R; one number rescales them and leaves every relative error as it is.
        training = [effect.extracted[video].fp32 for video in made.normal + made.anomalous]
        scale = float(np.sqrt(np.mean([np.mean(np.square(features, dtype=np.float64)) for features in training])))
        log(f"training S3R for {steps} steps on the fp32 features of {len(made.normal)} normal and "
            f"{len(made.anomalous)} anomalous videos, divided by {scale:.4g} (their RMS)")
        detector = train_detector([features / scale for features in training[: len(made.normal)]],
                                  [features / scale for features in training[len(made.normal) :]], preset.name, steps,
                                  seed, device)  # fmt: skip
        detector_name = (f"S3R trained for {steps} steps on the made training videos' fp32 features, which it reads "
                         f"divided by {scale:.4g} (their RMS)")
        scored = {video: Extracted(both.fp32 / scale, both.bf16 / scale, both.frames, both.times)
                  for video, both in scored.items()}  # fmt: skip
    if detector is not None:
        known = made.labels if made is not None else {
            video: labels(video, both) for video, both in scored.items() if labels is not None}
        effect.detector = detector_name
        effect.scores = score_change(detector, scored, {video: truth for video, truth in known.items()
                                                        if truth is not None})  # fmt: skip
    return effect


def _declared_snippets(videos: Sequence[Path], preset: Preset) -> int:
    """The snippets of ``videos`` by the frame counts their containers declare (an unreadable one: none)."""
    total = 0
    for video in videos:
        try:
            total += preset.snippet_count(probe(video).frames)
        except InputError:
            pass
    return total


def format_bf16_effect(effect: Bf16Effect) -> str:
    lines = [f"machine: {effect.machine}", f"bf16: {effect.bf16}", f"I3D weights: {effect.weights}"]
    rows = [["video", "snippets", "relative L2 error", "largest |error| / largest feature"]]
    rows += [[video.name, both.fp32.shape[0], f"{both.relative_error:.2e}", f"{both.largest_error:.2e}"]
             for video, both in effect.extracted.items()]  # fmt: skip
    relative = [both.relative_error for both in effect.extracted.values()]
    largest = [both.largest_error for both in effect.extracted.values()]
    rows.append(["all (largest)", sum(both.fp32.shape[0] for both in effect.extracted.values()),
                 f"{max(relative):.2e}", f"{max(largest):.2e}"])  # fmt: skip
    lines.append(ascii_table(rows, " I3D features, bf16 against fp32 "))
    lines.append(f"bound on the relative L2 error from bf16's rounding (2^-8 x sqrt(66 roundings)): {effect.bound:.2e}")
    if effect.scores is not None:
        scores = effect.scores
        lines.append(f"detector: {effect.detector}")
        lines.append(f"  largest |score from bf16 features - score from fp32 features| of a frame: "
                     f"{scores.largest:.2e} ({scores.video.name})")
        if scores.auc_fp32 is not None:
            lines.append(f"  frame AUC: fp32 features {scores.auc_fp32:.4f}, bf16 features {scores.auc_bf16:.4f}, "
                         f"difference {scores.auc_bf16 - scores.auc_fp32:+.2e}")
    return "\n".join(lines)
