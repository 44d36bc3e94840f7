"""The feature networks extraction can run, behind one seam: a ``Backbone`` says what a network's features are
(their name, channels, the frame recipes that feed it, how a snippet's 16 frames become one row), loads its weights
and puts it on a device as a ``FeatureNetwork``: uint8 clips B 16 h w 3 (resized frames) -> float32 features
B N C. Decoding, resizing, cutting into clips and batching (``anomaly.extraction.extractor``) are the same for
every network; each network lives in its own file (``network.py``: I3D ResNet-50, ``clip.py``: CLIP ViT-B/16).

- ``i3d`` (default): the published features, 2048 channels, a 16-frame clip read whole by a 3-D network; recipes
  ``rtfm`` (default) and ``gowtham``.
- ``clip``: 512 channels, each frame's image read by CLIP's image encoder, recipe ``vadclip``; ``--clip_frames``
  says how the 16 frames become one row: ``mean`` of the 16 frames' embeddings (default) or the ``middle`` frame's
  (frame 8 of 0-15), the one reading VadCLIP's authors have not published (docs/clip.md).
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Protocol, Tuple, Union

import numpy as np
import torch
from torch import nn

from anomaly import files
from anomaly.errors import InputError, check_choice
from anomaly.extraction import clip
from anomaly.extraction import network as i3d
from anomaly.extraction.preprocess import Preset
from anomaly.layout import BACKBONE_FEATURE_SIZES, BACKBONE_NAMES, BACKBONE_PRESETS, FRAME_READINGS, TORCH_RUNTIME
from anomaly.precision import resolve_precision

PathLike = Union[str, Path]
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class FeatureNetwork(Protocol):
    """A backbone's network on a device, as the pipeline runs it."""

    device: torch.device
    precision: str  # as run: fp32 or bf16

    def __call__(self, clips: Union[np.ndarray, torch.Tensor], preset: Preset, num_crops: int) -> np.ndarray:
        """uint8 clips B 16 h w 3 (frames resized by ``preset``) -> float32 features B ``num_crops`` C."""


@dataclass(frozen=True)
class Backbone:
    name: str  # the feature files' suffix and the datasets' folder (anomaly.layout.feature_file_name)
    title: str  # the network, as messages and pages name it
    feature_size: int  # channels C of a feature row
    presets: Tuple[str, ...]  # the frame recipes (anomaly.extraction.preprocess.PRESETS) it takes; the first by default
    frame_readings: Tuple[str, ...]  # how 16 frames become a row (--clip_frames), the first by default; () reads a clip whole
    weights: str  # the weights file --weights names, as the help and messages say it
    load: Callable[[PathLike], nn.Module]  # a weights file -> the network, in eval mode; one-line InputError otherwise
    # (network, device, precision, frame reading, clips the run will extract or None, compile mode, log) -> runner
    runner: Callable[[nn.Module, torch.device, str, Optional[str], Optional[int], str, Log], FeatureNetwork]
    gflop_per_crop: Callable[[Optional[str]], float]  # a snippet's crop, by frame reading: the arithmetic of a row
    seeded_network: Callable[[], nn.Module]  # seeded weights, for measuring without the released ones

    def recipe(self, preset: Optional[str], frames: Optional[str],
               source: Optional[PathLike] = None) -> Tuple[str, Optional[str]]:  # fmt: skip
        """(preset, frame reading) for this network: the defaults for None, a one-line InputError for a recipe
        of another network (a ``preset`` of I3D for CLIP, a frame reading for I3D)."""
        preset = self.presets[0] if preset is None else preset
        check_choice(preset, self.presets, "--preset", fix=f"the presets of --backbone {self.name}", source=source)
        if not self.frame_readings:
            if frames is not None:
                raise InputError(source, f"--clip_frames is for --backbone clip: {self.title} reads a snippet's "
                                 "16 frames as one clip")
            return preset, None
        frames = self.frame_readings[0] if frames is None else frames
        check_choice(frames, self.frame_readings, "--clip_frames", source=source)
        return preset, frames


def _i3d_runner(network: nn.Module, device: torch.device, precision: str, frames: Optional[str],
                clips: Optional[int], compile_mode: str, log: Log) -> FeatureNetwork:  # fmt: skip
    return i3d.I3DExtractor(network, device, precision, clips, compile_mode, log)


def _i3d_seeded() -> nn.Module:
    network = i3d.I3DResNet50()
    network.load_state_dict(i3d.seeded_state_dict())
    return network.eval()


def _clip_runner(network: nn.Module, device: torch.device, precision: str, frames: Optional[str],
                 clips: Optional[int], compile_mode: str, log: Log) -> FeatureNetwork:  # fmt: skip
    return clip.ClipExtractor(network, device, precision, frames)


def _clip_seeded() -> nn.Module:
    return clip.encoder_of(clip.seeded_state_dict())


BACKBONES: Dict[str, Backbone] = {
    "i3d": Backbone(
        "i3d", "I3D ResNet-50", i3d.FEATURE_SIZE, BACKBONE_PRESETS["i3d"], (), i3d.WEIGHTS_FILE, i3d.load_i3d, _i3d_runner,
        lambda frames: i3d.GFLOP_PER_CLIP, _i3d_seeded,
    ),
    "clip": Backbone(
        "clip", "CLIP ViT-B/16", clip.FEATURE_SIZE, BACKBONE_PRESETS["clip"], FRAME_READINGS, clip.WEIGHTS_FILE,
        clip.load_clip, _clip_runner, lambda frames: clip.GFLOP_PER_IMAGE * clip.images_per_row(frames), _clip_seeded,
    ),
}  # fmt: skip
assert tuple(BACKBONES) == BACKBONE_NAMES, "anomaly.layout.BACKBONE_NAMES names these backbones"
assert all(backbone.feature_size == BACKBONE_FEATURE_SIZES[name] for name, backbone in BACKBONES.items())


def file_sha256(path: PathLike, backbone: Backbone) -> str:
    """The SHA-256 of ``backbone``'s weights file ``path``: the identity its features record."""
    return files.file_sha256(path, f"weights file not found ({backbone.weights})")


class NetworkSource(Protocol):
    """Where a run's feature network comes from: a backbone's weights run by PyTorch (:class:`TorchNetwork`), or an
    exported folder run by its runtime (``anomaly.deploy.ExportedNetwork``); what the features record of it."""

    runtime: str  # anomaly.layout.RUNTIME_NAMES
    weights_sha256: str  # the identity of the network's weights

    def resolve_precision(self, precision: str, device: torch.device) -> Tuple[str, str]:
        """``--precision`` as this runtime runs it on ``device`` (never auto) and a one-line note where that is not
        the precision given (else ''); a one-line InputError for one it cannot run."""

    def runner(self, device: torch.device, precision: str, frames: Optional[str], clips: Optional[int],
               compile_mode: str, log: Log) -> FeatureNetwork:  # fmt: skip
        """The network on ``device`` in ``precision`` (resolved), as ``Backbone.runner`` makes it."""


@dataclass(frozen=True)
class TorchNetwork:
    """A backbone's network run by PyTorch: a :class:`NetworkSource`."""

    backbone: Backbone
    network: nn.Module
    weights_sha256: str
    runtime: str = TORCH_RUNTIME

    @classmethod
    def load(cls, backbone: Backbone, weights: PathLike) -> "TorchNetwork":
        """``backbone``'s network with the weights file ``weights`` (one-line InputError when missing or not)."""
        sha256 = file_sha256(weights, backbone)
        return cls(backbone, backbone.load(weights), sha256)

    def resolve_precision(self, precision: str, device: torch.device) -> Tuple[str, str]:
        return resolve_precision(precision, device)

    def runner(self, device: torch.device, precision: str, frames: Optional[str], clips: Optional[int],
               compile_mode: str, log: Log) -> FeatureNetwork:  # fmt: skip
        return self.backbone.runner(self.network, device, precision, frames, clips, compile_mode, log)


def backbone_of(name: str, source: Optional[PathLike] = None) -> Backbone:
    """The backbone called ``name``; a one-line InputError naming ``source`` for another name."""
    check_choice(name, tuple(BACKBONES), "backbone", source=source)
    return BACKBONES[name]
