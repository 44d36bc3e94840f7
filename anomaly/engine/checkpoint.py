"""Loading checkpoints safely: ``weights_only=True``, so a file that would need arbitrary unpickling is refused,
and one-line errors for files that do not fit the model. Writing them is ``anomaly.files.save_torch``."""

import pickle
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from anomaly.engine.training_state import check_training_state, is_training_state
from anomaly.errors import InputError

PathLike = Union[str, Path]


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; one-line errors for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # a class or function reference: the weights-only unpickler's refusal
            raise InputError(
                path,
                "refused: loading it would run arbitrary Python code (weights_only=True); "
                "only state_dicts and training states of this project load",
            ) from None
        raise InputError(path, "not a readable checkpoint: truncated, corrupt or not a PyTorch file") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(path, f"not a readable checkpoint: truncated or corrupt ({message})") from None


def first_non_finite_weight(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The name of the first floating-point entry of ``state`` holding NaN or inf, or None when all are finite."""
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def model_state_of(checkpoint: Any, path: PathLike) -> Dict[str, torch.Tensor]:
    """The model weights inside a plain state_dict, a ``{"state_dict": ...}`` wrapper or a training state; weights
    holding NaN or inf are refused."""
    if is_training_state(checkpoint):
        checkpoint = check_training_state(checkpoint, path)["model"]
    elif isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in checkpoint.items()
    ):
        raise InputError(path, "not a state_dict: expected a mapping of parameter names to tensors")
    non_finite = first_non_finite_weight(checkpoint)
    if non_finite is not None:
        raise InputError(path, f"the weight '{non_finite}' holds NaN or inf: a model that diverged cannot be evaluated "
                         "or trained on; use an earlier checkpoint")
    # Weights saved from nn.DataParallel carry a "module." prefix.
    return {key[len("module.") :] if key.startswith("module.") else key: value for key, value in checkpoint.items()}


def load_model_weights(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: PathLike,
    description: str,
    size_hint: str = "",
    assign: bool = False,
) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the first mismatches.

    ``description`` names the model in the message; ``size_hint`` follows a shape mismatch (e.g. which option
    sets the size); ``assign`` takes the tensors as they are (for a model built on the meta device).
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise InputError(path, f"a checkpoint of another architecture than {description}: parameters {', '.join(details)}")
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise InputError(path, f"a checkpoint of another size: {key} is {list(state[key].shape)} here but "
                             f"{list(value.shape)} in {description}{size_hint}")
    model.load_state_dict(state, strict=True, assign=assign)
