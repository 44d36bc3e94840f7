"""The one reader of ``.npy`` inputs (features, dictionaries, frame masks), in the spirit of scikit-learn's
``check_array``: every problem is one :class:`InputError` line that names the file, says what was found, what is
required and, where there is one, how to fix it.

Files are read with ``allow_pickle=False``: an ``.npy`` holding Python objects is refused, never unpickled.
"""

from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from anomaly.errors import InputError

PathLike = Union[str, Path]
FLOAT32_MAX = float(np.finfo(np.float32).max)

_KIND_NAMES = {"f": "floating point", "b": "boolean", "i": "integer", "u": "unsigned integer"}


def _open(path: Path, what: str, missing: str) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, missing or f"{what} file not found")
    try:
        # A memory map reads the header and checks the file's size without reading the data.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        problem = " ".join(str(error).split()) or type(error).__name__
        raise InputError(path, f"not a readable .npy file ({problem}); expected a {what} saved with numpy.save") from None
    if not isinstance(array, np.ndarray):
        raise InputError(path, f"found an .npz archive; expected a single .npy array (the {what})")
    return array


def read_npy(
    path: PathLike,
    what: str,
    axes: Sequence[Tuple[str, str]],
    sizes: Optional[Mapping[int, int]] = None,
    kinds: str = "f",
    header_only: bool = False,
    missing: str = "",
) -> np.ndarray:
    """Read and check the ``.npy`` file ``path`` holding ``what``, whose axes are ``(letter, name)`` pairs, e.g.
    ``(("T", "snippets"), ("N", "crops"), ("C", "channels"))`` for a ``[T, N, C]`` array.

    ``sizes``: required sizes by axis index (e.g. ``{1: 10}`` for ten crops); ``kinds``: the accepted dtype
    kinds (``"f"`` float, ``"biuf"`` any number). Every axis must be non-empty. Floating-point arrays are returned
    as finite float32 (NaN and inf are refused, as are values that only overflow float32); others as stored.
    ``header_only``: check the header (shape, dtype) and return the memory-mapped array without reading it.
    ``missing``: the message for a file that does not exist (default ``"<what> file not found"``).
    """
    path = Path(path)
    array = _open(path, what, missing)
    shape = list(array.shape)
    required = "[" + ", ".join(letter for letter, _ in axes) + "]"
    if array.ndim != len(axes):
        raise InputError(path, f"expected a {required} array, found shape {shape} ({what})")
    for axis, size in enumerate(shape):
        if size == 0:
            raise InputError(path, f"the {what} is empty: shape {shape} has no {axes[axis][1]} (expected {required}), so there is nothing to read")
    for axis, size in (sizes or {}).items():
        if size is not None and shape[axis] != size:
            raise InputError(path, f"expected {size} {axes[axis][1]}, found {shape[axis]} (shape {shape})")
    if array.dtype.kind not in kinds:
        accepted = " or ".join(_KIND_NAMES[kind] for kind in kinds if kind in _KIND_NAMES)
        raise InputError(path, f"{what} must be {accepted}, found dtype {array.dtype}")
    if header_only:
        return array
    array = np.array(array)  # read the data into memory
    if array.dtype.kind != "f":
        return array
    return finite_float32(array, path, what)


def finite_float32(array: np.ndarray, path: Optional[PathLike], what: str) -> np.ndarray:
    """``array`` (floating point) as float32, or a one-line InputError when a value is NaN or inf, or finite but
    beyond float32's range (it would become inf)."""
    if not np.isfinite(array).all():
        raise InputError(path, f"NaN or inf in {what}: every value must be finite")
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest > FLOAT32_MAX:
        raise InputError(path, f"values up to {largest:.3g} in {what}: finite, but beyond float32's range "
                         f"({FLOAT32_MAX:.3g}), so they would become inf; rescale them")
    return array.astype(np.float32, copy=False)
