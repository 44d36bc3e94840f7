"""The training-state file (``checkpoint/<version>/<dataset>_<model>_<backbone>.state``): everything a killed run
needs to continue exactly where it stopped, in one torch file that loads with ``weights_only=True``.

What is saved (:data:`SCHEMA`, checked on load, so a file missing an entry or holding one of the wrong type is
refused in one line naming the entry):

- ``format``: :data:`FORMAT`, which tells a training state from a plain state_dict;
- ``run``: the identity of the run (training videos, dictionary, settings) that a resumed run must share;
- ``step``: the last completed step; ``model``, ``optimizer``: their state_dicts; ``batches``: the positions of
  both batch streams (``anomaly.engine.trainer.TrainingData.state_dict``);
- ``random``: every random generator the run uses, encoded as tensors and plain lists (no NumPy objects, which
  ``weights_only`` loading refuses): see :func:`random_states`;
- ``history``: every evaluation so far; ``score_header``: the ``.score`` log's header; ``initial_value``: the metric
  before training; ``elapsed``: seconds spent so far;
- ``kernels``: the convolution kernels measured fastest (``anomaly.models.kernel_choice``), so that a resumed run
  keeps the same rounding;
- ``losses``: the training loss of every step so far (``losses[i]`` is step i + 1's), for the training curve.
  States saved before this entry existed still load: :func:`check_training_state` completes them with NaN
  (unknown) losses for their steps (:data:`ADDED_ENTRIES`).
"""

import math
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np
import torch

from anomaly.errors import InputError
from anomaly.files import save_torch

PathLike = Union[str, Path]
FORMAT = "s3r-training-state"

SCHEMA: Dict[str, tuple] = {
    "format": (str,),
    "run": (dict,),
    "step": (int,),
    "model": (dict,),
    "optimizer": (dict,),
    "batches": (dict,),
    "random": (dict,),
    "history": (list,),
    "score_header": (str,),
    "initial_value": (float, int),
    "elapsed": (float, int),
    "losses": (list,),
    "kernels": (dict,),
}
# Entries newer than the first states: how to complete a state saved without them.
ADDED_ENTRIES = {"losses": lambda state: [math.nan] * int(state["step"]), "kernels": lambda state: {}}
RANDOM_SCHEMA: Dict[str, tuple] = {"torch": (torch.Tensor,), "cuda": (list,), "numpy": (list,), "python": (list,)}


def seed_everything(seed: int) -> None:
    """Seed every random generator a run uses (Python, NumPy, torch on CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def random_states() -> Dict[str, Any]:
    """The state of every random generator, as tensors and lists of numbers."""
    numpy_name, numpy_keys, *numpy_rest = np.random.get_state()
    python_version, python_internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_name, torch.from_numpy(numpy_keys.astype(np.int64)), *numpy_rest],
        "python": list(python_internal) + [python_version, python_gauss],
    }


def restore_random_states(states: Mapping[str, Any]) -> None:
    """Put every random generator back into the state :func:`random_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    *internal, version, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def is_training_state(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint is a training state (rather than a plain state_dict)."""
    return isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT


def save_training_state(path: PathLike, **entries: Any) -> None:
    """Write a training state atomically; ``entries`` are :data:`SCHEMA`'s, all but ``format``."""
    state = {"format": FORMAT, **entries}
    check_training_state(state, path)
    save_torch(state, path)


def _type_names(types: tuple) -> str:
    return " or ".join(kind.__name__ for kind in types)


def check_training_state(state: Mapping[str, Any], path: PathLike) -> Mapping[str, Any]:
    """Refuse, in one line naming the entry, a training state that misses an entry of :data:`SCHEMA` or holds one
    of the wrong type; return it otherwise, completed in place with the :data:`ADDED_ENTRIES` it was saved without."""
    if isinstance(state.get("step"), int):
        for name, complete in ADDED_ENTRIES.items():
            if name not in state:
                state[name] = complete(state)
    for schema, where, entries in ((SCHEMA, "", state), (RANDOM_SCHEMA, "random.", state.get("random", {}))):
        for name, types in schema.items():
            if name not in entries:
                raise InputError(path, f"not a complete training state: the entry '{where}{name}' is missing "
                                 "(the file is damaged or was written by another program)")
            value = entries[name]
            if isinstance(value, bool) or not isinstance(value, types):
                raise InputError(path, f"not a valid training state: the entry '{where}{name}' is a "
                                 f"{type(value).__name__}, expected a {_type_names(types)}")
    if state["format"] != FORMAT:
        raise InputError(path, f"not a training state of this project (format '{state['format']}')")
    return state
