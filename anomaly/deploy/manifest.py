"""The manifest of an exported folder: what its models compute and from what, so that a runtime refuses a folder
made for other features instead of scoring garbage.

``s3r export`` writes ``manifest.json`` last, after every model file (and removes the old one first), so a folder
whose export was killed has no manifest and is refused. One JSON object::

    {"format": "s3r-export/1",
     "backbone": "i3d", "preset": "rtfm", "num_crops": 1, "feature_size": 2048, "frames": null, "frames_per_snippet": 16,
     "crop_size": 224, "precision": "fp32", "opset": 18, "scorer_kernel": "conv",
     "detector": {"name": "cams_s3r_i3d.detector.pth", "sha256": "...", "dataset": "cams"},
     "weights": {"name": "i3d_r50_kinetics.pth", "sha256": "..."},
     "models": {
       "features": {"inputs": [{"name": "crops", "shape": ["crops", 16, 224, 224, 3], "dtype": "uint8"}],
                    "outputs": [{"name": "features", "shape": ["crops", 2048], "dtype": "float32"}],
                    "files": {"onnx": [{"name": "features.onnx", "bytes": 109000000, "sha256": "..."}],
                              "openvino": [{"name": "features.xml", ...}, {"name": "features.bin", ...}]}},
       "scorer": {"inputs": [{"name": "features", "shape": [1, "snippets", 2048], "dtype": "float32"}],
                  "outputs": [{"name": "scores", "shape": ["snippets"], "dtype": "float32"}], "files": {...}}},
     "made_with": {"torch": "2.13.0+cpu", "onnx": "1.23.2", "onnxscript": "0.7.2", "openvino": "2026.4.1"}}

A string in a shape is a dimension the models take at any size (crops: clips × crops per clip, in clip-major order;
snippets: the window's length). ``precision`` is that of the weights in the files (fp32: OpenVINO's IR is saved
uncompressed); a runtime may compute in bf16 from them (OpenVINO's inference precision hint). Every model file's
size and SHA-256 are recorded: a missing, truncated or replaced file is refused before a runtime reads it.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from anomaly.errors import InputError
from anomaly.files import file_sha256, save_text
from anomaly.layout import EXPORT_MANIFEST, exported_model_files

PathLike = Union[str, Path]
MANIFEST_FORMAT = "s3r-export/1"
OPSET = 18  # the ONNX opset of the exported graphs (torch.onnx's dynamo exporter writes 18 natively)
MODELS = ("features", "scorer")  # the feature network, the detector's window scorer
FORMATS = tuple(exported_model_files(MODELS[0]))  # onnx, openvino: the files of each model
EXPORT_AGAIN = "export the folder again with s3r export"


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of a model: its name, shape (an int per fixed dimension, a name per dynamic one), dtype."""

    name: str
    shape: Tuple[Union[int, str], ...]
    dtype: str  # numpy's name: uint8, float32


@dataclass(frozen=True)
class ModelFile:
    name: str  # in the exported folder
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> "ModelFile":
        return cls(path.name, path.stat().st_size, file_sha256(path, "was not written"))


@dataclass(frozen=True)
class ModelEntry:
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    files: Dict[str, Tuple[ModelFile, ...]]  # per format (FORMATS)


@dataclass(frozen=True)
class Manifest:
    backbone: str
    preset: str
    num_crops: int
    feature_size: int
    frames: Optional[str]  # how a per-frame network's 16 frames become a row (--clip_frames); None for I3D
    frames_per_snippet: int
    crop_size: int
    precision: str
    opset: int
    scorer_kernel: str  # the fixed form of S3R's temporal convolutions in the scorer (CONV_KERNELS' "conv")
    detector: Dict[str, Any]  # name, sha256, dataset: the detector file the scorer came from
    weights: Dict[str, Any]  # name, sha256: the feature network's weights
    models: Dict[str, ModelEntry]  # per model (MODELS)
    made_with: Dict[str, str]  # package -> version
    format: str = MANIFEST_FORMAT

    def write(self, folder: PathLike) -> None:
        content = asdict(self)
        content = {"format": content.pop("format"), **content}  # first: what a reader checks before the rest
        save_text(json.dumps(content, indent=1) + "\n", Path(folder) / EXPORT_MANIFEST)

    def check_recipe(self, folder: PathLike, backbone: Optional[str], preset: Optional[str],
                     num_crops: Optional[int], frames: Optional[str]) -> None:  # fmt: skip
        """A one-line InputError naming the manifest when the folder was exported for other features than the
        caller makes or scores (None: any)."""
        for name, wanted, recorded in (("backbone", backbone, self.backbone), ("preset", preset, self.preset),
                                       ("num_crops", num_crops, self.num_crops),
                                       ("clip_frames", frames, self.frames)):  # fmt: skip
            if wanted is not None and wanted != recorded:
                raise InputError(Path(folder) / EXPORT_MANIFEST,
                                 f"exported for --{name} {recorded}, not {wanted}: export the detector of such "
                                 f"features (s3r export), or leave --{name} out to take the folder's")

    def model_files(self, folder: PathLike, model: str, file_format: str) -> List[Path]:
        """The files of ``model`` in ``file_format``, each checked against its recorded size and SHA-256: a
        one-line InputError naming a file that is missing, truncated or not the one exported."""
        paths = []
        for record in self.models[model].files[file_format]:
            path = Path(folder) / record.name
            if not path.is_file():
                raise InputError(path, f"is missing from the exported folder: {EXPORT_AGAIN}")
            size = path.stat().st_size
            if size != record.bytes:
                raise InputError(path, f"has {size:,} bytes, not the {record.bytes:,} exported (truncated or "
                                 f"replaced): {EXPORT_AGAIN}")
            if file_sha256(path, "is missing from the exported folder") != record.sha256:
                raise InputError(path, f"is not the file exported (its SHA-256 differs): {EXPORT_AGAIN}")
            paths.append(path)
        return paths


def read_manifest(folder: PathLike) -> Manifest:
    """The manifest of an exported ``folder``, every entry checked; a one-line InputError naming it otherwise."""
    folder = Path(folder)
    path = folder / EXPORT_MANIFEST
    if not folder.is_dir():
        raise InputError(folder, "is not a folder: give the folder s3r export wrote")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "is missing: not an exported folder, or its export did not finish; "
                         f"{EXPORT_AGAIN}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"cannot be read ({' '.join(str(error).split())}): {EXPORT_AGAIN}") from None
    if not isinstance(content, dict) or content.get("format") != MANIFEST_FORMAT:
        found = content.get("format") if isinstance(content, dict) else None
        raise InputError(path, f"is not a manifest of format {MANIFEST_FORMAT} (format {found!r}): "
                         f"{EXPORT_AGAIN} of this version")
    try:
        models = {name: _model_entry(content["models"][name]) for name in MODELS}
        fields = {key: content[key] for key in Manifest.__dataclass_fields__ if key not in ("models",)}
        manifest = Manifest(**{**fields, "models": models})
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(path, f"is incomplete or malformed ({type(error).__name__}: {error}): "
                         f"{EXPORT_AGAIN}") from None
    for key in ("num_crops", "feature_size", "frames_per_snippet", "crop_size", "opset"):
        if isinstance(getattr(manifest, key), bool) or not isinstance(getattr(manifest, key), int):
            raise InputError(path, f"its {key} must be an integer, not {getattr(manifest, key)!r}: {EXPORT_AGAIN}")
    return manifest


def _model_entry(entry: Dict[str, Any]) -> ModelEntry:
    def specs(items) -> Tuple[TensorSpec, ...]:
        return tuple(TensorSpec(item["name"], tuple(item["shape"]), item["dtype"]) for item in items)

    files = {file_format: tuple(ModelFile(**record) for record in entry["files"][file_format]) for file_format in FORMATS}
    return ModelEntry(specs(entry["inputs"]), specs(entry["outputs"]), files)
