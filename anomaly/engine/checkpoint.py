"""Writing files so that a crash never leaves a half-written one, and loading checkpoints safely.

Every file goes to a temporary name in the same folder, is flushed and fsynced, then renamed over the old
one: readers see the old file or the new one, never a mixture. Checkpoints load with ``weights_only=True``,
so a file that would need arbitrary unpickling is refused.
"""

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Union

import torch
from torch import nn

from anomaly.errors import InputError

PathLike = Union[str, Path]
TRAINING_STATE_FORMAT = "s3r-training-state"


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


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; one-line errors for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise InputError(
                path,
                "refused: loading it would run arbitrary Python code (weights_only=True); "
                "only state_dicts and training states of this project load",
            ) from None
        raise InputError(path, f"not a readable checkpoint ({str(error).splitlines()[0]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(path, f"not a readable checkpoint: truncated or corrupt ({message})") from None


def is_training_state(checkpoint: Any) -> bool:
    return isinstance(checkpoint, dict) and checkpoint.get("format") == TRAINING_STATE_FORMAT


def model_state_of(checkpoint: Any, path: PathLike) -> Dict[str, torch.Tensor]:
    """The model weights inside a plain state_dict, a ``{"state_dict": ...}`` wrapper or a training state."""
    if is_training_state(checkpoint):
        checkpoint = checkpoint["model"]
    elif isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in checkpoint.items()
    ):
        raise InputError(path, "not a state_dict: expected a mapping of parameter names to tensors")
    # Weights saved from nn.DataParallel carry a "module." prefix.
    return {key[len("module.") :] if key.startswith("module.") else key: value for key, value in checkpoint.items()}


def load_model_weights(model: nn.Module, state: Mapping[str, torch.Tensor], path: PathLike, description: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the first mismatches."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} is {list(state[key].shape)} here but {list(expected[key].shape)} in {description}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise InputError(path, f"a checkpoint of another architecture than {description}: parameters {', '.join(details)}")
    if mismatched:
        raise InputError(path, f"a checkpoint of another size: {mismatched[0]} (check --feature_size)")
    model.load_state_dict(state, strict=True)
