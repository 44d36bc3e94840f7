"""Anomaly curves of single videos: features of the detector's backbone (extracted, or reused from the output folder)
scored by S3R.

Per video, in the output folder: ``<stem>_<backbone>.npy`` / ``.json`` (features float32 T N C and their settings,
see ``anomaly.extraction``), ``<stem>_scores.csv`` (frame, time_s, score: one row per decoded frame),
``<stem>_scores.png`` (score over time, threshold line, ground truth shaded) and ``<stem>_report.html`` (the page a
person looks at: the video, linked relative to the page, with the curve, its playhead and the segments; see
``anomaly.report_page``). Live detection (``anomaly.live``) writes the same three files of a stream. Snippet scores are
``S3R.snippet_scores`` in eval mode computed as evaluation computes them (``window_scorer``: the packed scorer):
features N T C -> T. Frame f takes the score of
snippet f // 16; with the gowtham preset the frames of the dropped tail (fewer than 16) take the last snippet's.

The network and the detector are PyTorch's (``--weights`` and ``--detector``, or a released checkpoint), or an
exported folder's run by ONNX Runtime or OpenVINO (``--runtime``, ``--exported``: ``anomaly.deploy``), opened by
``open_models``, the one place that decides; features record the runtime that made them.

Every argument is checked before anything is written: the threshold, the checkpoint and dictionary, the extraction's
arguments (``anomaly.extraction.plan_extraction``) and each ground-truth mask against its video's length wherever
that is known beforehand (cached features, or a count the container declares). Cached features are reused only when
whole and of the video in front of them, every value read (``cached_features`` with ``read_values``); otherwise
they are extracted again. A video that fails (decoding, a mask past its end found only once decoded, a write) is
one line; the others are scored.
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch

from anomaly import files
from anomaly.data.features import load_features
from anomaly.data.ground_truth import mask_to_labels, read_frame_mask
from anomaly.deploy import ExportedNetwork, open_export
from anomaly.engine.detector_file import Detector, FeatureSpec, detector_from_checkpoint, load_detector_file
from anomaly.errors import InputError, check_range
from anomaly.extraction import (
    BACKBONES,
    ExtractionPlan,
    ExtractionSettings,
    FeatureOptions,
    NetworkSource,
    TorchNetwork,
    VideoResult,
    file_sha256,
    plan_extraction,
    run_plan,
)
from anomaly.files import remove_temporaries, save_text
from anomaly.hardware import resolve_device
from anomaly.layout import EXPORT_MANIFEST, FRAMES_PER_SNIPPET, TORCH_RUNTIME, crops_text
from anomaly.models.kernel_choice import MEASURE_ROWS
from anomaly.models.packing import PackedChunk
from anomaly.models.s3r import PackedScorer
from anomaly.plotting import plot_score_curve
from anomaly.precision import autocast, dtype_of
from anomaly.report_page import frame_axis, segments_above, write_report_page

PathLike = Union[str, Path]
Scorer = Callable[[torch.Tensor], torch.Tensor]  # features N T C of a video or window -> its T scores (float32)
RELEASED_BACKBONE, RELEASED_PRESET, RELEASED_NUM_CROPS = "i3d", "rtfm", 10  # how the released checkpoints' features were made


@dataclass(frozen=True)
class DetectorFiles:
    """Which detector scores videos (``s3r detect`` and ``s3r watch``): a detector file written by training
    (``detector``, which records its features' preset and crops), or a released checkpoint with its dictionary
    (``checkpoint`` and ``dictionary``): one of the two."""

    detector: Optional[PathLike] = None
    checkpoint: Optional[PathLike] = None
    dictionary: Optional[PathLike] = None

    def load(self, preset: Optional[str], num_crops: Optional[int], frames: Optional[str],
             device: torch.device) -> Detector:  # fmt: skip
        """The detector on ``device``, its features' recipe checked against ``preset``, ``num_crops`` and
        ``frames`` (None: the detector file's; I3D, ``rtfm`` and ten crops for a released checkpoint). Either way it
        must score the features of a backbone extraction runs (``anomaly.extraction.BACKBONES``: its name and
        channels); a one-line InputError otherwise."""
        if (self.detector is None) == (self.checkpoint is None) or (self.checkpoint is None) != (self.dictionary is None):
            raise InputError(None, "give --detector FILE, or --checkpoint FILE and --dictionary FILE (a released "
                             "checkpoint): one of the two")
        if self.detector is not None:
            loaded, source = load_detector_file(self.detector, device), self.detector
        else:
            released = BACKBONES[RELEASED_BACKBONE]
            loaded = detector_from_checkpoint(self.checkpoint, self.dictionary, released.feature_size, device,
                                              backbone=released.name)  # fmt: skip
            source, preset, num_crops = self.checkpoint, preset or RELEASED_PRESET, num_crops or RELEASED_NUM_CROPS
        features = loaded.features
        backbone = BACKBONES.get(features.backbone)
        if backbone is None or features.feature_size != backbone.feature_size:
            made = " or ".join(f"{made.feature_size}-channel {made.name}" for made in BACKBONES.values())
            raise InputError(source, f"was trained on {features.feature_size}-channel {features.backbone} features; "
                             f"videos are scored with {made} features (train on features made by s3r extract)")
        return loaded.with_recipe(preset, num_crops, frames, source)


def check_weights(detector: Detector, weights_sha256: str, weights: PathLike, source: PathLike) -> None:
    """The weights given (``weights_sha256``, of ``weights``) must be those the detector's features were made with,
    where the detector records them: other weights make other features, and garbage scores."""
    recorded = detector.features.weights_sha256
    if recorded is not None and recorded != weights_sha256:
        raise InputError(weights, f"is not the {BACKBONES[detector.features.backbone].title} weights file the "
                         f"detector {source} was trained on features of (SHA-256 {recorded[:12]}…, this file's "
                         f"{weights_sha256[:12]}…): give that file")


@dataclass(frozen=True)
class ScoringModels:
    """What a command scores videos with (``open_models``): the features the detector scores (their recipe and
    the weights' identity), the network that makes them and the detector's scorer, run by PyTorch or by the runtime
    of an exported folder."""

    features: FeatureSpec
    network: NetworkSource
    make_scorer: Callable[[str, Optional[int]], Scorer]  # (precision as run, longest window or None) -> a scorer

    def scorer(self, precision: str, longest: Optional[int] = None) -> Scorer:
        """The detector's scoring of a video or window in ``precision`` (as run), built once (``longest``: see
        ``window_scorer``). A NaN or infinite score is a one-line InputError: no curve, segment or JSON line is
        made of it."""
        return finite_scores(self.make_scorer(precision, longest))


def open_models(options: FeatureOptions, detector: DetectorFiles, device: torch.device) -> ScoringModels:
    """The network and detector of ``options.runtime``, every file checked (one-line InputError) before anything
    is written: PyTorch's (``detector`` loaded on ``device``, ``options.weights`` those it records); or the
    exported folder ``options.exported`` (``anomaly.deploy``), its manifest's recipe checked against the
    options', the runtime installed and its model files whole, ``--detector`` and ``--weights`` where given the
    files exported."""
    if options.runtime != TORCH_RUNTIME:
        return _exported_models(options, detector)
    loaded = detector.load(options.preset, options.num_crops, options.clip_frames, device)
    source = detector.detector or detector.checkpoint
    backbone = BACKBONES[loaded.features.backbone]
    weights_sha256 = file_sha256(options.weights, backbone)
    check_weights(loaded, weights_sha256, options.weights, source)
    network = TorchNetwork(backbone, backbone.load(options.weights), weights_sha256)
    return ScoringModels(loaded.features, network, lambda precision, longest: window_scorer(loaded, precision, longest))


def _exported_models(options: FeatureOptions, detector: DetectorFiles) -> ScoringModels:
    folder = options.exported
    if detector.checkpoint is not None or detector.dictionary is not None:
        raise InputError(detector.checkpoint or detector.dictionary, f"--exported {folder} holds its detector: give "
                         "--detector (the file exported) or nothing, not --checkpoint and --dictionary")
    exported = open_export(folder, options.backbone, options.preset, options.num_crops, options.clip_frames)
    manifest = exported.manifest
    for given, recorded, what in ((detector.detector, manifest.detector, "detector file"),
                                  (options.weights, manifest.weights, "weights file")):  # fmt: skip
        if given is not None and files.file_sha256(given, f"{what} not found") != recorded["sha256"]:
            raise InputError(given, f"is not the {what} exported to {folder} ({recorded['name']}, SHA-256 "
                             f"{recorded['sha256'][:12]}… in its {EXPORT_MANIFEST}): give that file, or leave it out")
    network = ExportedNetwork(exported, options.runtime)
    exported.check(options.runtime, network.resolve_precision(options.precision, torch.device("cpu"))[0])
    features = FeatureSpec(manifest.backbone, manifest.preset, manifest.num_crops, manifest.feature_size,
                           manifest.frames, manifest.weights["sha256"])  # fmt: skip
    return ScoringModels(features, network, lambda precision, longest: exported.scorer(options.runtime, precision))


def finite_scores(score: Scorer) -> Scorer:
    """``score`` refusing, in one line, scores that are NaN or infinite (whatever computed them)."""

    def checked(video: torch.Tensor) -> torch.Tensor:
        scores = score(video)
        bad = int((~torch.isfinite(scores)).sum())
        if bad:
            raise InputError(None, f"the detector's scores are NaN or inf for {bad} of {len(scores)} snippets: its "
                             "weights or these features overflow float32")
        return scores

    return checked


def check_cached_recipe(plan: ExtractionPlan) -> None:
    """Features cached in the output folder with another preset or crop count than the detector's are refused (not
    replaced: they may be another detector's), in one line naming them."""
    other = plan.other_recipe()
    if other is not None:
        raise InputError(other.settings, f"features of {other.video.name} made with {other.recipe}, but the detector "
                         f"scores {plan.settings.recipe}: give another --output or remove them")


def window_scorer(detector: Detector, precision: str = "fp32",
                  longest: Optional[int] = None) -> Scorer:  # fmt: skip
    """The detector's scoring of one video: features N T C (on any device) -> T scores (float32, on the detector's
    device), ``S3R.snippet_scores`` in eval mode computed as evaluation computes it: by the model's packed form
    (``PackedScorer``), built here once (weights folded and laid out once, the kernels chosen once) and used for
    every video or window given. ``precision`` (fp32 or bf16, as run: the network's, so that one word says how a
    score was made): fp32 is strict float32 (on CUDA without TF32), bf16 takes the products in bfloat16 with
    float32 statistics, as ``--precision`` evaluates. ``longest``: the most snippets a video given will have (a
    live window), on which the kernels are measured; None: videos of any length (evaluation's measuring size).
    Live detection scores its windows with it (``ScoringModels.scorer``, which refuses NaN and inf)."""
    device = detector.dictionary.device
    crops = detector.features.num_crops
    rows = MEASURE_ROWS if longest is None or crops is None else PackedChunk.plan([longest], crops, device).body_rows
    scorer = PackedScorer(detector.model, detector.dictionary, dtype_of(precision), rows=rows)

    def score(video: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            return scorer.video_scores(video.to(device))

    return score


def snippet_scores(score: Scorer, features: np.ndarray) -> np.ndarray:
    """features T N C -> scores T (float64), by ``score`` (a ``window_scorer``)."""
    return score(torch.from_numpy(features).permute(1, 0, 2)).double().cpu().numpy()


def frame_scores(scores: np.ndarray, num_frames: int) -> np.ndarray:
    """Snippet scores T -> one per frame: frame f gets snippet min(f // 16, T - 1)."""
    return scores[np.minimum(np.arange(num_frames) // FRAMES_PER_SNIPPET, len(scores) - 1)]


def scores_csv(scores: np.ndarray, times: Optional[np.ndarray]) -> str:
    """One row per frame: its index, its time in seconds (``times``; empty without), its score (empty for a frame
    that was not scored: NaN, a snippet a live stream dropped)."""
    rows = ["frame,time_s,score"]
    for frame, score in enumerate(scores):
        time_s = f"{times[frame]:.4f}" if times is not None else ""
        rows.append(f"{frame},{time_s},{score:.7g}" if np.isfinite(score) else f"{frame},{time_s},")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class CurveFiles:
    """What a scored video gives in its output folder: ``<stem>_scores.csv``, ``_scores.png`` and ``_report.html``."""

    csv: Path
    picture: Path
    page: Path

    @classmethod
    def of(cls, folder: PathLike, stem: str) -> "CurveFiles":
        folder = Path(folder)
        return cls(folder / f"{stem}_scores.csv", folder / f"{stem}_scores.png", folder / f"{stem}_report.html")

    def __iter__(self):
        return iter((self.csv, self.picture, self.page))


def features_description(settings: ExtractionSettings) -> str:
    """What the features a curve was scored from were made with, as its report page says it: the backbone, the
    preset, the crops, the frame reading of a per-frame network, and the precision the network ran (never
    ``auto``), by the runtime that ran it where that is not PyTorch."""
    frames = f", --clip_frames {settings.frames}" if settings.frames else ""
    runtime = f" ({settings.runtime})" if settings.runtime != TORCH_RUNTIME else ""
    return (f"{settings.backbone.upper()} features: --preset {settings.preset}, {crops_text(settings.num_crops)}"
            f"{frames}, {settings.precision}{runtime}")


def write_curve_files(
    files: CurveFiles, scores: np.ndarray, threshold: float, title: str, fps: Optional[float],
    times: Optional[np.ndarray] = None, ground_truth: Optional[np.ndarray] = None, video: Optional[PathLike] = None,
    features: Optional[str] = None,
) -> None:  # fmt: skip
    """Write a video's frame scores (one per frame, NaN for a frame not scored) as its CSV, its picture and its
    report page (``anomaly.report_page``, the video linked relative to the page). ``times``: each frame's time in
    seconds (a stream's timestamps); without them frame f is at f / ``fps`` (no times at all without either).
    ``ground_truth``: 0/1 per frame, shaded. ``features``: what made the features (``features_description``),
    on the page."""
    if times is None and fps:
        times = np.arange(len(scores)) / fps
    for path in files:
        remove_temporaries(path)
    save_text(scores_csv(scores, times), files.csv)
    plot_score_curve(
        files.picture, times if times is not None else np.arange(len(scores)), scores,
        x_label="time (s)" if times is not None else "frame", threshold=threshold, ground_truth=ground_truth,
        title=title,
    )  # fmt: skip
    write_report_page(files.page, title=title, scores=scores, threshold=threshold, fps=fps, times=times,
                      ground_truth=ground_truth, video=video, features=features)  # the page's times are the CSV's


def check_masks(
    plan: ExtractionPlan, ground_truth: Optional[Sequence[PathLike]]
) -> List[Optional[np.ndarray]]:
    """One frame mask per video of ``plan`` (None without ``ground_truth``), each checked against its video's length
    where that is known before extraction (``ExtractionPlan.known_frames``); a one-line InputError otherwise."""
    if ground_truth is None:
        return [None] * len(plan.videos)
    if len(ground_truth) != len(plan.videos):
        raise InputError(
            ground_truth[0] if ground_truth else None,
            f"{len(ground_truth)} ground-truth files for {len(plan.videos)} videos: give one per video, in the same "
            "order",
        )
    masks = [read_frame_mask(path) for path in ground_truth]
    for index, (mask, label_file) in enumerate(zip(masks, ground_truth)):
        known = plan.known_frames(index)
        if known is not None:
            mask_labels(mask, known[0], known[1], label_file, plan.videos[index])
    return masks


def mask_labels(mask: np.ndarray, frames: int, counted: str, label_file: PathLike, video: Path) -> np.ndarray:
    """``mask`` padded or cut to the ``frames`` of ``video`` (``counted``: how they were counted), or a one-line
    InputError naming ``label_file`` when an anomalous event starts past the video's end."""
    return mask_to_labels(mask, frames, label_file, video.stem, length=f"{video} has {frames} {counted}")


def detect_anomalies(
    videos: Sequence[PathLike],
    output: PathLike,
    options: FeatureOptions,
    detector: DetectorFiles,
    threshold: float = 0.5,
    ground_truth: Optional[Sequence[PathLike]] = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> int:
    """Score every video with ``detector`` on features made with ``options`` (its preset and crops: the
    detector's when None); write its CSV, PNG and report page; log its segments above ``threshold``. Returns the
    number of videos that could not be scored (each reported in one line on stderr). Bad arguments raise
    ``InputError`` before anything is written."""
    check_range(threshold, "--threshold", minimum=0, maximum=1, fix="scores are probabilities")
    options.check()
    torch_device = resolve_device(options.network_device, "detection")
    models = open_models(options, detector, torch_device)
    recipe = models.features
    options = replace(options.with_recipe(recipe.backbone, recipe.preset, recipe.num_crops, recipe.frames),
                      device=str(torch_device))  # fmt: skip
    plan = plan_extraction(videos, output, options, read_values=True, network=models.network)
    check_cached_recipe(plan)
    masks = check_masks(plan, ground_truth)
    score = models.scorer(plan.settings.precision)
    summary = run_plan(plan, progress)
    failed = summary.count("failed")  # each said in its line by the extraction
    for result, mask, label_file in zip(summary.results, masks, ground_truth or [None] * len(masks)):
        if result.status == "failed":
            continue
        try:
            log(score_video(result, plan, score, threshold, mask, label_file))
        except InputError as error:
            print(f"{result.video}: not scored: {error}", file=sys.stderr, flush=True)
            failed += 1
    return failed


def score_video(result: VideoResult, plan: ExtractionPlan, score: Scorer,
                threshold: float, mask: Optional[np.ndarray], label_file: Optional[PathLike]) -> str:
    """Score one extracted (or skipped) video by ``score`` (a ``window_scorer``), write its CSV, PNG and report page
    (``write_curve_files``); the line that names its segments."""
    record = result.record
    settings = plan.settings
    features = load_features(plan.target(result.video), settings.num_crops, settings.network.feature_size)
    labels = None if mask is None else mask_labels(mask, record["frames"], "decoded frames", label_file, result.video)
    scores = frame_scores(snippet_scores(score, features), record["frames"])
    fps = record.get("fps")
    recorded = record.get("frame_times")  # a variable frame rate's times (checked with the record), else frame / fps
    times = None if recorded is None else np.asarray(recorded, dtype=np.float64)
    write_curve_files(CurveFiles.of(plan.output, result.video.stem), scores, threshold, result.video.name, fps,
                      times=times, ground_truth=labels, video=result.video,
                      features=features_description(settings))
    segments = segments_above(scores, threshold)
    if segments:
        axis = frame_axis(len(scores), fps, times)
        return (f"{result.video}: {len(segments)} segment(s) above {threshold:g}: "
                + ", ".join(segment.describe(axis) for segment in segments))  # fmt: skip
    return f"{result.video}: no segment above {threshold:g} (max score {scores.max():.3f})"
