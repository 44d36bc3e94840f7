"""Reading and validating ten-crop feature files (float32 ``T N C`` ``.npy``) and resampling them to fixed length."""

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from anomaly.data.arrays import read_npy
from anomaly.layout import TRAINING_SNIPPETS, feature_file_name

PathLike = Union[str, Path]


def feature_folder(root: PathLike, dataset: str, backbone: str, subset: str) -> Path:
    """``<root>/<dataset>/<backbone>/<subset>``: a split's feature files, the RTFM layout."""
    return Path(root) / dataset / backbone / subset


def feature_file(folder: PathLike, video_id: str, backbone: str) -> Path:
    """``<folder>/<video_id>_<backbone>.npy``: the feature file of a video in a folder of them."""
    return Path(folder) / feature_file_name(video_id, backbone)


FEATURE_AXES = (("T", "snippets"), ("N", "crops"), ("C", "channels"))


def read_npy_shape(path: PathLike) -> tuple:
    """Shape ``(T, N, C)`` of a feature file, read and checked from its header alone (the data is not loaded)."""
    return read_npy(path, "features", FEATURE_AXES, header_only=True, missing="feature file not found").shape


def num_snippets(path: PathLike) -> int:
    """Number of snippets T of a ``T N C`` feature file, from its header."""
    return read_npy_shape(path)[0]


def load_features(
    path: PathLike, num_crops: Optional[int] = None, feature_size: Optional[int] = None
) -> np.ndarray:
    """A ``T N C`` feature file as finite float32, with ``num_crops`` crops and ``feature_size`` channels when
    given (see :func:`anomaly.data.arrays.read_npy` for every check)."""
    return read_npy(path, "features", FEATURE_AXES, sizes={1: num_crops, 2: feature_size}, missing="feature file not found")


def resample_snippets(features: np.ndarray, length: int = TRAINING_SNIPPETS) -> np.ndarray:
    """Resample a video's time axis to ``length`` snippets: ``T N C`` -> ``N length C`` float32.

    Linear interpolation with half-pixel centres and no antialiasing, which is what the published loader's
    ``cv2.resize(..., INTER_LINEAR)`` computes on the C × T × N image.
    """
    video = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).permute(1, 2, 0)  # N C T
    resampled = F.interpolate(video, size=length, mode="linear", align_corners=False)
    return resampled.transpose(1, 2).contiguous().numpy()  # N length C
