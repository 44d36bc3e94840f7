"""Writing files so that a crash or a full disk never leaves a half-written one.

Every file goes to a temporary name in the same folder, is flushed and fsynced, then renamed over the old one:
readers see the old file or the new one, never a mixture.
"""

import hashlib
import os
import pickle
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from anomaly.errors import InputError

PathLike = Union[str, Path]
TEMPORARY_SUFFIX = ".tmp"  # atomic_write's temporary files: .<name>.<random>.tmp next to <name>
TEMPORARY_RANDOM = 8  # characters of <random>: what tempfile.mkstemp puts between its prefix and suffix


def atomic_write(path: PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` atomically; on failure the previous file stays as it was."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
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


def remove_temporaries(path: PathLike) -> None:
    """Remove what killed writes of ``path`` by :func:`atomic_write` left behind (its temporary files). Call it
    only while no other process may be writing ``path``."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob_escape(path.name)}.*{TEMPORARY_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def name_problem(path: PathLike) -> str:
    """Why the file system would refuse the names :func:`atomic_write` gives ``path`` (its temporary name, the
    longer, is ``.<name>.<random>.tmp``), or '' when it takes them or cannot say. Asks the nearest existing folder,
    so ``path``'s own folder need not exist yet: lets a tool refuse a name before computing what it would hold."""
    path = Path(path)
    longest = len(os.fsencode(f".{path.name}.")) + TEMPORARY_RANDOM + len(TEMPORARY_SUFFIX)
    folder = next((folder for folder in path.parents if folder.is_dir()), None)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX") if folder is not None else None
    except (OSError, ValueError):
        limit = None
    if limit is None or longest <= limit:
        return ""
    return (f"the file name {path.name} is too long for the file system ({longest} bytes with the temporary name of "
            f"its atomic write; at most {limit})")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def file_sha256(path: PathLike, missing: str) -> str:
    """The SHA-256 of the file ``path`` (hex), read in blocks; a one-line InputError naming it, ``missing`` saying
    what it should be when it is not there."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


def save_torch(obj: Any, path: PathLike) -> None:
    def write(file) -> None:
        try:
            torch.save(obj, file)
        except RuntimeError as error:  # torch.save reports a failed write (a full disk) as a RuntimeError
            if isinstance(error.__context__, OSError):  # the write's own error, e.g. ENOSPC
                raise error.__context__ from None
            raise OSError(str(error).splitlines()[0] if str(error) else "torch.save failed") from None

    atomic_write(path, write)


def save_pickle(obj: Any, path: PathLike) -> None:
    atomic_write(path, lambda file: pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL))


def save_text(text: str, path: PathLike) -> None:
    atomic_write(path, lambda file: file.write(text), mode="w")


def save_npy(array: np.ndarray, path: PathLike) -> None:
    atomic_write(path, lambda file: np.save(file, array))


def check_name(value: str, what: str, source: Optional[PathLike] = None) -> str:
    """``value`` unchanged when it is a plain name (of a version, a model, a video): a one-line InputError when it
    is empty, ``.`` or ``..``, or holds a path separator or a NUL, since joined to a folder it would point
    elsewhere (``../../x``, an absolute path, the folder itself). ``what`` says which name it is."""
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if not value.strip():
        problem = "it is empty"
    elif value in (".", ".."):
        problem = "it names a folder, not a name in it"
    elif any(separator in value for separator in separators) or "\0" in value:
        problem = "it holds a path separator or a NUL character"
    else:
        return value
    raise InputError(source, f"{what} {value!r} is not a plain name ({problem}); use a name without '/' or '\\' "
                     "that is not '.' or '..'")


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
