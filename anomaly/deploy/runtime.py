"""Running an exported folder (``s3r export``) with ONNX Runtime or OpenVINO, on the CPU, with the calls of the
PyTorch path, so that a command can take either:

- :class:`ExportedFeatures` is a ``FeatureNetwork`` (``anomaly.extraction.backbones``), called as
  ``I3DExtractor`` is: uint8 clips B 16 h w 3 (resized frames), the preset and the crop count -> float32 features
  B N C (numpy). It cuts the crops as the network does (``anomaly.extraction.cut_crops``) and runs the features
  graph on all B·N crops at once.
- :class:`ExportedScorer` is called as ``anomaly.detection.window_scorer``'s scorer is: features N T C of a window
  -> its T snippet scores (a float32 tensor).
- :class:`ExportedNetwork` is a ``NetworkSource`` (``anomaly.extraction.backbones``): what ``s3r detect`` and
  ``s3r watch`` run with ``--runtime onnxruntime|openvino --exported DIR`` in place of PyTorch's network.

``open_export`` reads the manifest and refuses a folder exported for other features than the caller's; each model
is checked against its recorded size and SHA-256 before the runtime reads it; a runtime that is not installed is a
one-line error saying how to install it. Both runtimes run ``threads`` threads, by default PyTorch's
(``torch.get_num_threads()``), so that timings compare. Precisions: fp32 everywhere; bf16 with OpenVINO (its
``INFERENCE_PRECISION_HINT``: products in bfloat16, from the float32 weights), which OpenVINO applies only where the
CPU has native bf16 (AVX512-BF16 or AMX) and otherwise runs fp32: callers resolve ``--precision`` first
(:func:`resolve_runtime_precision`: PyTorch's rules for OpenVINO, fp32 alone for ONNX Runtime).
"""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from anomaly.deploy.manifest import Manifest, read_manifest
from anomaly.errors import InputError, check_choice
from anomaly.extraction import FeatureNetwork, Preset, cut_crops
from anomaly.layout import RUNTIME_NAMES
from anomaly.precision import AUTO, NETWORK_PRECISIONS, resolve_precision

PathLike = Union[str, Path]
INSTALL = "pip install -e .[deploy]"  # the optional extra of pyproject.toml
RUNTIMES = {"onnxruntime": "onnx", "openvino": "openvino"}  # runtime -> the format of the files it reads
RUNTIME_PRECISIONS = {"onnxruntime": ("fp32",), "openvino": NETWORK_PRECISIONS}
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}  # INFERENCE_PRECISION_HINT
Session = Callable[[np.ndarray], np.ndarray]  # a model's one input -> its one output
assert tuple(RUNTIMES) == RUNTIME_NAMES[1:], "anomaly.layout.RUNTIME_NAMES names PyTorch, then these runtimes"


def require(package: str) -> ModuleType:
    """The module ``package`` (a runtime, or a package the export needs), or a one-line InputError saying how to
    install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise InputError(None, f"{package} is not installed: {INSTALL} installs the runtimes and the exporter") \
            from None


def onnxruntime_session(path: Path, threads: int, precision: str) -> Session:
    onnxruntime = require("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are not this command's to say
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # the runtime's own exception types; any of them means the same to the user
        raise _unloadable(path, "onnxruntime", error) from None
    name = session.get_inputs()[0].name
    return lambda array: session.run(None, {name: array})[0]


def openvino_session(path: Path, threads: int, precision: str) -> Session:
    openvino = require("openvino")
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
              "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    try:
        request = openvino.Core().compile_model(str(path), "CPU", config).create_infer_request()
    except Exception as error:  # the runtime's own exception types
        raise _unloadable(path, "openvino", error) from None
    return lambda array: request.infer({0: array})[0]


def resolve_runtime_precision(runtime: str, precision: str, device: torch.device) -> Tuple[str, str]:
    """``--precision`` (``NETWORK_CHOICES``) as ``runtime`` runs it on ``device`` (the CPU), never auto, and a
    one-line note where that is not the precision given (else ''): a runtime with fp32 alone (ONNX Runtime) refuses
    bf16 in one line and runs auto as fp32; the others follow PyTorch's rule (``resolve_precision``: bf16 where
    native)."""
    check_choice(runtime, RUNTIMES, "--runtime")
    choices = RUNTIME_PRECISIONS[runtime]
    check_choice(precision, choices + (AUTO,), "--precision", fix=f"{runtime} runs the exported models in "
                 f"{', '.join(choices)}")  # fmt: skip
    if len(choices) == 1:
        return choices[0], f"--precision auto: {choices[0]} ({runtime} runs the exported models in it alone)" \
            if precision == AUTO else ""
    return resolve_precision(precision, device)


SESSIONS = {"onnxruntime": onnxruntime_session, "openvino": openvino_session}


def _unloadable(path: Path, runtime: str, error: Exception) -> InputError:
    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return InputError(path, f"{runtime} cannot load it ({first.strip()[:200]}): export the folder again with s3r "
                      f"export, with the {runtime} version that runs it")


@dataclass(frozen=True)
class ExportedFolder:
    """An exported folder whose manifest was read and checked against the caller's recipe (``open_export``)."""

    folder: Path
    manifest: Manifest
    # (model, file format) -> its files, checked: each is read whole to hash it, once (the network's is ~100 MB)
    _checked: Dict[Tuple[str, str], List[Path]] = field(default_factory=dict, compare=False, repr=False)

    def session(self, model: str, runtime: str, precision: str = "fp32", threads: Optional[int] = None) -> Session:
        """``model`` (features or scorer) loaded by ``runtime`` in ``precision``, its files checked first."""
        self._check_runtime(runtime, precision)
        paths = self._model_files(model, runtime)
        return SESSIONS[runtime](paths[0], threads or torch.get_num_threads(), precision)

    def check(self, runtime: str, precision: str = "fp32") -> None:
        """What loading the models by ``runtime`` in ``precision`` needs, each a one-line InputError: a runtime of
        exported folders, installed, a precision it runs, and every model file it reads whole (size and
        SHA-256): so that a command refuses before it writes anything, not when it first runs a model."""
        self._check_runtime(runtime, precision)
        for model in self.manifest.models:
            self._model_files(model, runtime)

    def _model_files(self, model: str, runtime: str) -> List[Path]:
        """``model``'s files that ``runtime`` reads, checked against the manifest (size, SHA-256) when first asked."""
        key = (model, RUNTIMES[runtime])
        if key not in self._checked:
            self._checked[key] = self.manifest.model_files(self.folder, model, key[1])
        return self._checked[key]

    @staticmethod
    def _check_runtime(runtime: str, precision: str) -> None:
        check_choice(runtime, RUNTIMES, "--runtime")
        check_choice(precision, RUNTIME_PRECISIONS[runtime], "--precision",
                     fix=f"{runtime} runs the exported models in {', '.join(RUNTIME_PRECISIONS[runtime])}")
        require(runtime)

    def features(self, runtime: str, precision: str = "fp32", threads: Optional[int] = None) -> "ExportedFeatures":
        return ExportedFeatures(self.manifest, self.session("features", runtime, precision, threads), precision)

    def scorer(self, runtime: str, precision: str = "fp32", threads: Optional[int] = None) -> "ExportedScorer":
        return ExportedScorer(self.session("scorer", runtime, precision, threads))


def open_export(folder: PathLike, backbone: Optional[str] = None, preset: Optional[str] = None,
                num_crops: Optional[int] = None, frames: Optional[str] = None) -> ExportedFolder:  # fmt: skip
    """The exported ``folder``, its manifest read and checked against the features the caller makes and scores
    (each None: the folder's); a one-line InputError naming the file at fault otherwise."""
    manifest = read_manifest(folder)
    manifest.check_recipe(folder, backbone, preset, num_crops, frames)
    return ExportedFolder(Path(folder), manifest)


class ExportedFeatures:
    """The exported feature network, a ``FeatureNetwork`` (called as ``I3DExtractor``): uint8 clips B 16 h w 3 ->
    float32 B N C."""

    device = torch.device("cpu")  # where the clips are given (the runtimes run on the CPU)

    def __init__(self, manifest: Manifest, session: Session, precision: str):
        self.manifest = manifest
        self.session = session
        self.precision = precision

    def __call__(self, clips: Union[np.ndarray, Tensor], preset: Preset, num_crops: int) -> np.ndarray:
        recipe = (self.manifest.preset, self.manifest.num_crops)
        if (preset.name, num_crops) != recipe:
            raise InputError(None, f"the exported network makes --preset {recipe[0]} --num_crops {recipe[1]} "
                             f"features, not --preset {preset.name} --num_crops {num_crops}")
        clips = torch.as_tensor(clips)
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        # The frames as B 3 16 h w (a view), cut as the network cuts them, back to the graph's (B·N) 16 224 224 3.
        crops = cut_crops(clips.permute(0, 4, 1, 2, 3), boxes).permute(0, 2, 3, 4, 1)
        features = self.session(np.ascontiguousarray(crops.numpy()))
        return features.reshape(clips.shape[0], num_crops, -1)


@dataclass(frozen=True)
class ExportedNetwork:
    """The features model of ``exported`` run by ``runtime``: a ``NetworkSource`` (``anomaly.extraction``), the
    network of ``--runtime onnxruntime|openvino``, on the CPU, its weights those the manifest names."""

    exported: ExportedFolder
    runtime: str

    @property
    def weights_sha256(self) -> str:
        return self.exported.manifest.weights["sha256"]

    def resolve_precision(self, precision: str, device: torch.device) -> Tuple[str, str]:
        return resolve_runtime_precision(self.runtime, precision, device)

    def runner(self, device: torch.device, precision: str, frames: Optional[str], clips: Optional[int],
               compile_mode: str, log: Callable[[str], None]) -> FeatureNetwork:  # fmt: skip
        return self.exported.features(self.runtime, precision)


class ExportedScorer:
    """The exported scorer, called as ``window_scorer``'s: features N T C (a tensor) -> T scores (float32)."""

    def __init__(self, session: Session):
        self.session = session

    def __call__(self, video: Tensor) -> Tensor:
        features = np.ascontiguousarray(video.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.array(self.session(features), dtype=np.float32))
