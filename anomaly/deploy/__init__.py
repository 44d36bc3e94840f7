"""Deployment: a detector and its feature network exported as ONNX and OpenVINO IR models with a manifest
(``anomaly.deploy.export``, ``s3r export``), and those models run by ONNX Runtime or OpenVINO with the calls of the
PyTorch path (``anomaly.deploy.runtime``). ``anomaly.deploy.export`` is not imported here: it imports the detection
layer, which runs exported folders through ``anomaly.deploy.runtime``."""

from anomaly.deploy.manifest import MANIFEST_FORMAT, OPSET, Manifest, read_manifest
from anomaly.deploy.runtime import (
    INSTALL,
    RUNTIMES,
    ExportedFeatures,
    ExportedFolder,
    ExportedScorer,
    open_export,
    require,
)

__all__ = [
    "INSTALL",
    "MANIFEST_FORMAT",
    "OPSET",
    "RUNTIMES",
    "ExportedFeatures",
    "ExportedFolder",
    "ExportedScorer",
    "Manifest",
    "open_export",
    "read_manifest",
    "require",
]
