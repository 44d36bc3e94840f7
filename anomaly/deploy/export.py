"""``s3r export``: a detector and its feature network as models a runtime loads (ONNX, OpenVINO IR), in one folder.

Two graphs, each written as ``<model>.onnx`` (opset ``OPSET``, by torch.onnx's dynamo exporter, weights inside the
file) and as OpenVINO IR ``<model>.xml`` + ``<model>.bin`` (converted from that ONNX file, weights kept float32),
then ``manifest.json`` (``anomaly.deploy.manifest``), last:

- ``features`` (:class:`CropsNetwork`): uint8 crops (B·N) 16 224 224 3 -> float32 features (B·N) C, the preset's
  pixel scaling inside. The crops are cut by the caller (``anomaly.deploy.runtime``), not in the graph: the PyTorch
  network cuts them itself and computes the first convolution once where they overlap (``CropStem``), but which
  crops share it depends on the frame's size (the parity of the crops' corners), which a graph dynamic in height
  and width cannot follow. With one crop nothing is lost (nothing overlaps); with ten, the first convolution runs
  on every crop (``docs/deployment.md`` gives what that costs).
- ``scorer`` (:class:`WindowScores`): features N T C of one window (T dynamic) -> its T snippet scores, the
  dictionary inside: ``S3R.snippet_scores`` with the dictionary folded into the macro branch as evaluation folds it
  and the temporal convolutions in the published ``conv`` form (``conv_kernel="auto"`` times kernels inside
  ``forward``, which no exported graph can do).
"""

import contextlib
import importlib
import io
import logging
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from anomaly import files
from anomaly.deploy.manifest import OPSET, Manifest, ModelEntry, ModelFile, TensorSpec
from anomaly.deploy.runtime import require
from anomaly.detection import DetectorFiles, check_weights
from anomaly.engine.detector_file import Detector
from anomaly.errors import check_choice
from anomaly.extraction import BACKBONES, PRESETS, ExtractionSettings, I3DResNet50, Preset, file_sha256
from anomaly.extraction.network import CROP_SIZE
from anomaly.files import check_writable_folder, ensure_folder
from anomaly.layout import EXPORT_MANIFEST, FRAMES_PER_SNIPPET, exported_model_files
from anomaly.models.s3r import S3R

PathLike = Union[str, Path]
EXPORTED_BACKBONES = ("i3d",)  # the networks whose graph export knows (CropsNetwork)
EXPORT_PACKAGES = ("onnx", "onnxscript", "openvino")  # torch.onnx's dynamo exporter needs the first two
SCORER_KERNEL = "conv"  # F.conv1d: the one kernel form of the exported scorer (see the module docstring)
MAX_CROPS = 4096  # the largest batch of crops the features graph is declared for (any size a runtime takes)
MAX_SNIPPETS = 1 << 20  # the longest window the scorer graph is declared for


class CropsNetwork(nn.Module):
    """The feature network of exported folders: uint8 crops (B·N) 16 224 224 3 (frames, height, width, RGB) ->
    float32 features (B·N) C: ``preset.normalise`` then ``network``'s ``inference_copy`` (BatchNorm folded)."""

    def __init__(self, network: I3DResNet50, preset: Preset):
        super().__init__()
        self.network = network.inference_copy(torch.float32)
        self.preset = preset

    def forward(self, crops: Tensor) -> Tensor:
        # Cast first: the uint8 input feeds nothing but a Cast, which is all TensorRT takes a uint8 input into.
        return self.network.features(self.preset.normalise(crops.float()))


class WindowScores(nn.Module):
    """The scorer of exported folders: features N T C of one window -> T snippet scores (float32), the detector's
    ``S3R.snippet_scores`` with its dictionary inside and ``SCORER_KERNEL`` convolutions."""

    def __init__(self, detector: Detector):
        super().__init__()
        with torch.device("meta"):  # no random initialisation of weights about to be replaced
            self.model = S3R(detector.features.feature_size, conv_kernel=SCORER_KERNEL)
        self.model.load_state_dict(detector.model.state_dict(), assign=True)
        self.model.eval()
        self.register_buffer("dictionary", detector.dictionary.detach().float().cpu())  # 1 S C

    def forward(self, features: Tensor) -> Tensor:
        return self.model.snippet_scores(features.unsqueeze(0), self.dictionary).reshape(-1)


def export_detector(detector: PathLike, weights: PathLike, output: PathLike, preset: Optional[str] = None,
                    num_crops: Optional[int] = None, log: Callable[[str], None] = print) -> Manifest:  # fmt: skip
    """Export the detector file ``detector`` and the I3D ``weights`` into the folder ``output``: the features and
    scorer graphs as ONNX and OpenVINO IR, then the manifest. ``preset`` and ``num_crops``: for a detector that
    records none (the synthetic datasets'), or the same as it records (see ``Detector.with_recipe``).

    Every argument is checked (one-line InputError) before anything is written; the old manifest goes first, so a
    killed export leaves a folder that runtimes refuse."""
    for package in EXPORT_PACKAGES:
        require(package)
    check_writable_folder(output)
    loaded = DetectorFiles(detector=detector).load(preset, num_crops, None, torch.device("cpu"))
    detector_sha256 = files.file_sha256(detector, "the detector file is missing")  # of the file as loaded
    spec = loaded.features
    check_choice(spec.backbone, EXPORTED_BACKBONES, "the detector's backbone", source=detector,
                 fix="s3r export exports the networks it has a graph of")
    backbone = BACKBONES[spec.backbone]
    settings = ExtractionSettings(spec.preset, spec.num_crops, "fp32", file_sha256(weights, backbone), backbone.name,
                                  spec.frames)  # fmt: skip
    check_weights(loaded, settings, weights, detector)
    network = backbone.load(weights)
    folder = ensure_folder(output)
    (folder / EXPORT_MANIFEST).unlink(missing_ok=True)
    crops = TensorSpec("crops", ("crops", FRAMES_PER_SNIPPET, CROP_SIZE, CROP_SIZE, 3), "uint8")
    features = TensorSpec("features", ("crops", spec.feature_size), "float32")
    window = TensorSpec("features", (spec.num_crops, "snippets", spec.feature_size), "float32")
    scores = TensorSpec("scores", ("snippets",), "float32")
    sample_crops = torch.zeros(1, *crops.shape[1:], dtype=torch.uint8)
    sample_window = torch.zeros(spec.num_crops, 2 * FRAMES_PER_SNIPPET, spec.feature_size)
    log(f"exporting the {backbone.title} network ({spec.preset} preset) and the detector to {folder}")
    models = {
        "features": _export(CropsNetwork(network, PRESETS[spec.preset]), sample_crops, (crops, features),
                            {0: torch.export.Dim("crops", min=1, max=MAX_CROPS)}, folder, "features"),
        "scorer": _export(WindowScores(loaded), sample_window, (window, scores),
                          {1: torch.export.Dim("snippets", min=1, max=MAX_SNIPPETS)}, folder, "scorer"),
    }  # fmt: skip
    manifest = Manifest(
        backbone=spec.backbone, preset=spec.preset, num_crops=spec.num_crops, feature_size=spec.feature_size,
        frames=spec.frames, frames_per_snippet=FRAMES_PER_SNIPPET, crop_size=CROP_SIZE, precision="fp32", opset=OPSET,
        scorer_kernel=SCORER_KERNEL,
        detector={"name": Path(detector).name, "sha256": detector_sha256, "dataset": loaded.dataset},
        weights={"name": Path(weights).name, "sha256": settings.weights_sha256},
        models=models, made_with={package: version(package) for package in ("torch", *EXPORT_PACKAGES)},
    )  # fmt: skip
    manifest.write(folder)
    log(f"wrote {', '.join(file.name for entry in models.values() for files in entry.files.values() for file in files)}"
        f" and {EXPORT_MANIFEST} in {folder}")
    return manifest


def _export(module: nn.Module, sample: Tensor, specs: Tuple[TensorSpec, TensorSpec],
            dynamic: Dict[int, "torch.export.Dim"], folder: Path, model: str) -> ModelEntry:  # fmt: skip
    """``module`` (one input, one output) as the files of ``model`` in ``folder``: ONNX, then OpenVINO IR converted
    from it; their manifest entry."""
    openvino = importlib.import_module("openvino")
    given, returned = specs
    names = exported_model_files(model)
    onnx_file, ir_file = folder / names["onnx"][0], folder / names["openvino"][0]  # the IR's .bin: beside its .xml
    with torch.no_grad(), _quiet():
        torch.onnx.export(module.eval(), (sample,), onnx_file, input_names=[given.name], output_names=[returned.name],
                          dynamic_shapes=(dynamic,), opset_version=OPSET, dynamo=True, external_data=False)  # fmt: skip
    # Converted from the ONNX file, not from the module: both formats hold the same graph; compress_to_fp16=False
    # keeps the float32 weights (save_model's default halves them).
    openvino.save_model(openvino.convert_model(onnx_file), ir_file, compress_to_fp16=False)
    files = {file_format: tuple(ModelFile.of(folder / name) for name in names[file_format]) for file_format in names}
    return ModelEntry((given,), (returned,), files)


@contextlib.contextmanager
def _quiet():
    """torch.onnx's progress lines (stdout), its warnings and log lines about packages the graphs do not use
    (torchvision's operators): not this command's to say."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
