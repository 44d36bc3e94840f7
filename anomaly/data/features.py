"""Reading and validating ten-crop feature files (float32 ``T N C`` ``.npy``) and resampling them to fixed length."""

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from anomaly.errors import InputError

PathLike = Union[str, Path]
FRAMES_PER_SNIPPET = 16


def feature_file(root: PathLike, dataset: str, backbone: str, subset: str, video_id: str) -> Path:
    """``<root>/<dataset>/<backbone>/<subset>/<video_id>_<backbone>.npy``, the RTFM layout."""
    return Path(root) / dataset / backbone / subset / f"{video_id}_{backbone}.npy"


def read_npy_shape(path: PathLike) -> tuple:
    """Shape of an ``.npy`` array read from its header alone, without loading the data."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "feature file not found")
    try:
        # A memory map reads the header and checks the file's size without reading the data.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(path, f"not a readable .npy file ({error})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(path, "expected a single .npy array, found an .npz archive")
    if array.dtype.kind != "f":
        raise InputError(path, f"features must be floating point, found dtype {array.dtype}")
    return array.shape


def num_snippets(path: PathLike) -> int:
    """Number of snippets T of a ``T N C`` feature file, from its header."""
    shape = read_npy_shape(path)
    if len(shape) != 3:
        raise InputError(path, f"expected a [T, N, C] array, found shape {list(shape)}")
    return shape[0]


def load_features(
    path: PathLike, num_crops: Optional[int] = None, feature_size: Optional[int] = None
) -> np.ndarray:
    """Load a ``T N C`` feature file as float32, checking rank, crop count, channel count and finiteness."""
    path = Path(path)
    read_npy_shape(path)
    try:
        features = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(path, f"not a readable .npy file ({error})") from None
    if features.ndim != 3:
        raise InputError(path, f"expected a [T, N, C] array, found shape {list(features.shape)}")
    length, crops, channels = features.shape
    if length == 0:
        raise InputError(path, "the video has no snippets (T = 0)")
    if num_crops is not None and crops != num_crops:
        raise InputError(path, f"expected {num_crops} crops, found {crops} (shape {list(features.shape)})")
    if feature_size is not None and channels != feature_size:
        raise InputError(path, f"expected {feature_size} channels, found {channels} (shape {list(features.shape)})")
    features = features.astype(np.float32, copy=False)
    if not np.isfinite(features).all():
        raise InputError(path, "features contain NaN or inf")
    return features


def resample_snippets(features: np.ndarray, length: int = 32) -> np.ndarray:
    """Resample a video's time axis to ``length`` snippets: ``T N C`` -> ``N length C`` float32.

    Linear interpolation with half-pixel centres and no antialiasing, which is what the published loader's
    ``cv2.resize(..., INTER_LINEAR)`` computes on the C × T × N image.
    """
    video = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).permute(1, 2, 0)  # N C T
    resampled = F.interpolate(video, size=length, mode="linear", align_corners=False)
    return resampled.transpose(1, 2).contiguous().numpy()  # N length C
