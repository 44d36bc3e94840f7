"""Writing files so that a crash or a full disk never leaves a half-written one.

Every file goes to a temporary name in the same folder, is flushed and fsynced, then renamed over the old one:
readers see the old file or the new one, never a mixture.
"""

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import torch

from anomaly.errors import InputError

PathLike = Union[str, Path]


def atomic_write(path: PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` atomically; on failure the previous file stays as it was."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise InputError(path.parent, f"cannot write here ({error.strerror or error})") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes owner-only files; keep the usual permissions
        with os.fdopen(handle, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise InputError(path, f"could not be written ({error.strerror or error}); the previous version is intact") from None
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def save_torch(obj: Any, path: PathLike) -> None:
    atomic_write(path, lambda file: torch.save(obj, file))


def save_pickle(obj: Any, path: PathLike) -> None:
    atomic_write(path, lambda file: pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL))


def save_text(text: str, path: PathLike) -> None:
    atomic_write(path, lambda file: file.write(text), mode="w")


def save_npy(array: np.ndarray, path: PathLike) -> None:
    atomic_write(path, lambda file: np.save(file, array))


def check_writable_folder(path: PathLike) -> None:
    """Fail with one line, creating nothing, when the folder ``path`` could not be created or written into.

    Names the blocking path: a file where the folder or one of its parents should be, or the nearest existing
    folder when it is not writable. Lets a tool refuse its outputs before any work and before writing anything.
    """
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.is_dir():
            if not os.access(existing, os.W_OK | os.X_OK):
                raise InputError(existing, "the folder is not writable: choose another one or fix its permissions")
            return
        if existing.exists() or existing.is_symlink():  # a file, or a link to nothing
            if existing == path:
                raise InputError(path, "is a file, not a folder, so nothing can be written into it")
            raise InputError(existing, f"is a file, so the folder {path} cannot be created")


def ensure_folder(path: PathLike) -> Path:
    """Create the folder ``path`` (with its parents) unless it exists, after ``check_writable_folder``."""
    path = Path(path)
    check_writable_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(path, f"the folder cannot be created ({error.strerror or error})") from None
    return path
