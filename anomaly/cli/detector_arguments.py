"""The options that name a detector and how its features are made: one declaration for ``s3r detect`` and
``s3r watch``, which read a detector the same way and differ only in what they score (videos, or one source)."""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.detection import DetectorFiles
from anomaly.extraction import FeatureOptions
from anomaly.layout import FRAME_READINGS, NUM_CROPS, PRESET_NAMES, RUNTIME_NAMES
from anomaly.precision import NETWORK_CHOICES


class DetectorArguments(CommandArguments):
    weights: Optional[Path] = None  # the weights of the detector's backbone: i3d_r50_kinetics.pth (pytorch-resnet3d's release), or CLIP ViT-B/16's (with --exported: optional, the file exported)
    detector: Optional[Path] = None  # a detector file written by training (<run>.detector.pth)
    checkpoint: Optional[Path] = None  # or: S3R weights trained on 2048-channel I3D features (a released checkpoint)
    dictionary: Optional[Path] = None  # with --checkpoint: its dictionary of normal atoms [S, 2048]
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the detector's; rtfm for a checkpoint)
    num_crops: Optional[Literal[NUM_CROPS]] = None  # crops per snippet (default: the detector's; 10 for a checkpoint)
    clip_frames: Optional[Literal[FRAME_READINGS]] = None  # a CLIP detector's frame reading (default: the detector's)
    precision: Literal[NETWORK_CHOICES] = "fp32"  # network arithmetic; auto: bf16 where the device computes it natively, else fp32 (said in one line)
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present; the exported runtimes: cpu)
    runtime: Literal[RUNTIME_NAMES] = "torch"  # what runs the network and the detector: PyTorch, or the exported folder's ONNX Runtime or OpenVINO
    exported: Optional[Path] = None  # with --runtime onnxruntime or openvino: the folder s3r export wrote (its manifest names the recipe; --detector optional)

    def configure(self) -> None:
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)

    def feature_options(self, **extraction) -> FeatureOptions:
        """How the features are made: these options, the backbone the detector's (``extraction``: the batch size,
        partial videos)."""
        return FeatureOptions(self.weights, self.preset, self.num_crops, self.precision, self.device, backbone=None,
                              clip_frames=self.clip_frames, runtime=self.runtime, exported=self.exported,
                              **extraction)  # fmt: skip

    def detector_files(self) -> DetectorFiles:
        return DetectorFiles(self.detector, self.checkpoint, self.dictionary)
