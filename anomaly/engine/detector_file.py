"""A trained detector in one self-describing file: the S3R weights, the dictionary, the features they were trained
on, and the dataset's name, so that scoring a video needs nothing else.

Training writes ``checkpoint/<version>/<dataset>_<model>_<backbone>.detector.pth`` beside the best checkpoint,
whenever that is written. The file is a plain dict of tensors, strings and numbers (it loads with
``torch.load(..., weights_only=True)``)::

    {"format": "s3r-detector/2", "model": state_dict, "dictionary": float32 [S, C],
     "features": {"backbone": "i3d", "preset": "rtfm" or None, "num_crops": 10, "feature_size": 2048,
                  "frames": None or "mean", "weights_sha256": "..." or None},
     "dataset": "shanghaitech", "metric": "AUC", "value": 0.97, "step": 1200}

``preset`` is None for features that were not made from video by this project (the synthetic datasets): scoring a
video with such a detector needs ``--preset``. ``frames`` is how a per-frame network's 16 frames became a row
(``--clip_frames``; None for I3D, which reads a clip whole), ``weights_sha256`` the identity of the network's
weights the features were made with (None where not known: features made elsewhere, files of format 1). Files of
format ``s3r-detector/1`` (without those two) are read as such. The released checkpoints, plain state_dicts, become a
``Detector`` with ``detector_from_checkpoint``.
"""

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import Tensor

from anomaly.data.datasets import load_dictionary
from anomaly.engine.checkpoint import load_checkpoint, load_model_weights, model_state_of
from anomaly.errors import InputError, check_choice
from anomaly.files import save_torch
from anomaly.layout import BACKBONE_PRESETS, FRAME_READINGS, NUM_CROPS, PRESET_NAMES
from anomaly.models.s3r import S3R

PathLike = Union[str, Path]
DETECTOR_FORMAT = "s3r-detector/2"
READABLE_FORMATS = ("s3r-detector/1", DETECTOR_FORMAT)  # /1: without frames and weights_sha256
FIRST_WEIGHT = "video_embedding.0.conv_1.0.weight"  # [C/4, C, 3]: gives the checkpoint's feature size


@dataclass(frozen=True)
class FeatureSpec:
    """The features a detector scores: what extraction must make for it."""

    backbone: str
    preset: Optional[str]  # rtfm, gowtham, vadclip, or None (not made from video by this project)
    num_crops: Optional[int]  # None: not recorded (a released checkpoint), given when extracting
    feature_size: int
    frames: Optional[str] = None  # --clip_frames of a per-frame network; None: I3D, or not recorded
    weights_sha256: Optional[str] = None  # the network's weights file; None: not recorded


@dataclass
class Detector:
    """An S3R in eval mode and its dictionary (1 S C), on one device, with the features it was trained on."""

    model: S3R
    dictionary: Tensor
    features: FeatureSpec
    dataset: Optional[str] = None  # None for a released checkpoint given with its dictionary

    def with_recipe(self, preset: Optional[str], num_crops: Optional[int], frames: Optional[str],
                    source: PathLike) -> "Detector":  # fmt: skip
        """The detector with the extraction recipe given on the command line: for a file that records none, or
        the same as it records (a different one is refused: the scores would be of other features)."""
        recorded = self.features
        for name, option, given in (("preset", "preset", preset), ("num_crops", "num_crops", num_crops),
                                    ("frames", "clip_frames", frames)):  # fmt: skip
            if given is not None and getattr(recorded, name) is not None and given != getattr(recorded, name):
                raise InputError(source, f"was trained on features of --{option} {getattr(recorded, name)}, not "
                                 f"{given}: leave --{option} out or give {getattr(recorded, name)}")
        chosen = replace(recorded, preset=recorded.preset or preset, num_crops=recorded.num_crops or num_crops,
                         frames=recorded.frames or frames)  # fmt: skip
        if chosen.preset is None:
            raise InputError(source, "records no extraction preset (its features were not made from video here): "
                             f"give --preset ({', '.join(BACKBONE_PRESETS.get(chosen.backbone, PRESET_NAMES))})")
        return Detector(self.model, self.dictionary, chosen, self.dataset)


def save_detector(
    path: PathLike, model_state: Dict[str, Tensor], dictionary: Tensor, features: FeatureSpec, dataset: str,
    metric: str, value: float, step: int,
) -> None:  # fmt: skip
    """Write the detector file atomically (``anomaly.files.save_torch``)."""
    save_torch({
        "format": DETECTOR_FORMAT,
        "model": {name: tensor.detach().cpu() for name, tensor in model_state.items()},
        "dictionary": dictionary.detach().float().cpu().reshape(-1, dictionary.shape[-1]),
        "features": asdict(features),
        "dataset": dataset,
        "metric": metric,
        "value": float(value),
        "step": int(step),
    }, path)  # fmt: skip


def load_detector_file(path: PathLike, device: Union[str, torch.device] = "cpu") -> Detector:
    """A detector file (``save_detector``), every entry checked; one line naming the file otherwise."""
    path = Path(path)
    content = load_checkpoint(path)
    if not isinstance(content, dict) or content.get("format") not in READABLE_FORMATS:
        raise InputError(path, f"not a detector file (no \"format\": \"{DETECTOR_FORMAT}\"): training writes one "
                         "beside the best checkpoint; for a plain checkpoint give --checkpoint and --dictionary")
    features = _feature_spec(content.get("features"), path)
    model = _model(model_state_of(content.get("model"), path), features.feature_size, path)
    dictionary = content.get("dictionary")
    if not isinstance(dictionary, Tensor) or dictionary.dim() != 2 or dictionary.shape[1] != features.feature_size:
        raise InputError(path, f"its dictionary must be a [S, {features.feature_size}] tensor")
    if not bool(torch.isfinite(dictionary).all()):
        raise InputError(path, "NaN or inf in its dictionary")
    dataset = content.get("dataset")
    return Detector(model.to(device).eval(), dictionary.float().unsqueeze(0).to(device), features,
                    dataset if isinstance(dataset, str) else None)


def detector_from_checkpoint(
    checkpoint: PathLike, dictionary: PathLike, feature_size: int, device: Union[str, torch.device] = "cpu",
    backbone: str = "i3d",
) -> Detector:  # fmt: skip
    """A released checkpoint (a plain state_dict of S3R) and its dictionary file, for ``feature_size``-channel
    features; the extraction recipe is not recorded (``Detector.with_recipe`` sets it)."""
    model = load_s3r(checkpoint, feature_size, device)
    atoms = torch.from_numpy(np.ascontiguousarray(load_dictionary(dictionary, feature_size)))
    features = FeatureSpec(backbone, None, None, feature_size)
    return Detector(model, atoms.unsqueeze(0).to(device), features)


def load_s3r(checkpoint: PathLike, feature_size: int, device: Union[str, torch.device] = "cpu") -> S3R:
    """S3R for ``feature_size``-channel features with the weights of ``checkpoint`` (a state_dict, a training state
    or a released checkpoint), on ``device`` in eval mode; a one-line InputError for weights of other features."""
    checkpoint = Path(checkpoint)
    model = _model(model_state_of(load_checkpoint(checkpoint), checkpoint), feature_size, checkpoint)
    return model.to(device).eval()


def _model(state: Dict[str, Tensor], feature_size: int, path: Path) -> S3R:
    first = state.get(FIRST_WEIGHT)
    if isinstance(first, Tensor) and first.dim() == 3 and first.shape[1] != feature_size:
        raise InputError(path, f"an S3R checkpoint for {first.shape[1]}-channel features; the features here have "
                         f"{feature_size} (use a checkpoint trained on such features)")
    model = S3R(feature_size)
    load_model_weights(model, state, path, f"S3R for {feature_size}-channel features")
    return model


def _feature_spec(entry: Any, path: Path) -> FeatureSpec:
    if not isinstance(entry, dict):
        raise InputError(path, "its \"features\" entry is missing: not a detector file of this project")
    try:
        spec = FeatureSpec(**entry)
    except TypeError:
        raise InputError(path, f"its \"features\" entry must hold {', '.join(FeatureSpec.__annotations__)} (the "
                         "last two may be left out), and nothing else") from None
    if spec.preset is not None:
        check_choice(spec.preset, PRESET_NAMES, "preset", source=path)
    check_choice(spec.num_crops, NUM_CROPS, "num_crops", source=path)
    if spec.frames is not None:
        check_choice(spec.frames, FRAME_READINGS, "frames", source=path)
    if spec.weights_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", str(spec.weights_sha256)):
        raise InputError(path, f"its weights_sha256 must be 64 lowercase hexadecimal digits, not "
                         f"{spec.weights_sha256!r}")
    if not isinstance(spec.feature_size, int) or spec.feature_size < 1:
        raise InputError(path, f"its feature_size must be a positive integer, not {spec.feature_size!r}")
    return spec
