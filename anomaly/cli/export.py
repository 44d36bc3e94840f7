"""Export a detector and its feature network as models a runtime loads: ONNX and OpenVINO IR, with a manifest.

    s3r export --detector checkpoint/my-cameras/my-cameras_s3r_i3d.detector.pth \
        --weights pretrained/i3d_r50_kinetics.pth --output exported/my-cameras

Writes, in --output: features.onnx, features.xml + features.bin (the I3D network: uint8 crops -> features, the
preset's pixel scaling inside), scorer.onnx, scorer.xml + scorer.bin (the detector: a window's features -> its
snippet scores, the dictionary inside), then manifest.json (the recipe, the shapes and dtypes, the SHA-256 of the
detector, the weights and every model file). Needs the deploy extra (pip install -e .[deploy]). A detector that
records no preset (the synthetic datasets') takes --preset. See docs/deployment.md and anomaly/deploy/export.py.
"""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.deploy.export import export_detector
from anomaly.layout import NUM_CROPS, PRESET_NAMES


class Arguments(CommandArguments):
    detector: Path  # a detector file written by training (<run>.detector.pth)
    weights: Path  # i3d_r50_kinetics.pth (pytorch-resnet3d's release)
    output: Path  # the folder of the exported models and their manifest
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the detector's; needed when it records none)
    num_crops: Optional[Literal[NUM_CROPS]] = None  # crops per snippet (default: the detector's)

    def configure(self) -> None:
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)


def run(args: Arguments) -> int:
    export_detector(args.detector, args.weights, args.output, args.preset, args.num_crops)
    return 0
