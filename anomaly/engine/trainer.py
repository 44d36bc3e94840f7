"""One S3R training step and the shuffled batch streams that feed it."""

from typing import Dict, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from anomaly.precision import autocast, tf32_switches
from anomaly.losses import s3r_losses


class ShuffledBatches:
    """Endless batches of indices into ``num_items`` items: shuffled per epoch, last partial batch dropped.

    The published loaders (``DataLoader(shuffle=True, drop_last=True)`` restarted when exhausted) in a form whose
    position can be saved and restored exactly: the permutation, the position in it and the generator state.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int):
        if num_items < batch_size:
            raise ValueError(f"{num_items} items cannot fill one batch of {batch_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(num_items, generator=self.generator)
        self.position = 0

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.num_items // self.batch_size

    def __next__(self) -> Tensor:
        if self.position == len(self):
            self.permutation = torch.randperm(self.num_items, generator=self.generator)
            self.position = 0
        start = self.position * self.batch_size
        self.position += 1
        return self.permutation[start : start + self.batch_size]

    def __iter__(self) -> "ShuffledBatches":
        return self

    def state_dict(self) -> Dict[str, Tensor]:
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": torch.tensor(self.position),
        }

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        if len(state["permutation"]) != self.num_items:
            raise ValueError(f"saved batches cover {len(state['permutation'])} items, not {self.num_items}")
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = int(state["position"])


class TrainingData:
    """Normal and anomalous training videos (each ``V N T C``) held as tensors, with their batch streams.

    The videos live on the training device when it is a GPU with room for them (at most half its free memory),
    so a step reads nothing from disk and copies nothing from the host; otherwise each batch is copied over.
    """

    def __init__(self, normal: np.ndarray, anomalous: np.ndarray, batch_size: int, device: torch.device):
        self.device = torch.device(device)
        store = self.device if self._fits_on(self.device, normal.nbytes + anomalous.nbytes) else torch.device("cpu")
        self.normal = torch.from_numpy(normal).to(store)
        self.anomalous = torch.from_numpy(anomalous).to(store)
        # The streams' seeds come from the global generator, as a shuffling DataLoader's do.
        self.normal_batches = ShuffledBatches(len(normal), batch_size, int(torch.randint(2**62, (1,))))
        self.anomalous_batches = ShuffledBatches(len(anomalous), batch_size, int(torch.randint(2**62, (1,))))

    @staticmethod
    def _fits_on(device: torch.device, nbytes: int) -> bool:
        if device.type != "cuda":
            return device.type == "cpu"
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2

    def next_batch(self) -> Tuple[Tensor, Tensor]:
        """The next (normal, anomalous) batch, each ``batch_size N T C`` on the training device."""
        normal = self.normal[next(self.normal_batches).to(self.normal.device)]
        anomalous = self.anomalous[next(self.anomalous_batches).to(self.anomalous.device)]
        return normal.to(self.device, non_blocking=True), anomalous.to(self.device, non_blocking=True)

    def state_dict(self) -> Dict[str, Dict[str, Tensor]]:
        return {"normal": self.normal_batches.state_dict(), "anomalous": self.anomalous_batches.state_dict()}

    def load_state_dict(self, state: Dict[str, Dict[str, Tensor]]) -> None:
        self.normal_batches.load_state_dict(state["normal"])
        self.anomalous_batches.load_state_dict(state["anomalous"])


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    normal_videos: Tensor,
    anomalous_videos: Tensor,
    dictionary: Tensor,
    precision: str = "fp32",
) -> Dict[str, Tensor]:
    """One optimisation step on ``normal_videos`` and ``anomalous_videos`` (each B N T C) with dictionary S C.

    Returns the detached losses (``magnitude``, ``sparsity``, ``smoothness``, ``macro``, ``total``). A loss that is
    NaN or inf raises FloatingPointError before the update, leaving the model and optimizer as they were.
    """
    model.train()
    videos = torch.cat((normal_videos, anomalous_videos), dim=0)
    with tf32_switches(precision, videos.device):
        with autocast(precision, videos.device):
            outputs = model(videos, dictionary.expand(videos.shape[0], -1, -1))
        outputs = {name: value.float() for name, value in outputs.items()}
        # Diverged (or inputs that overflow float32): apply nothing. The BCE loss would refuse NaN scores itself,
        # with a RuntimeError from inside torch.
        if not bool(torch.stack([torch.isfinite(value).all() for value in outputs.values()]).all()):
            raise FloatingPointError("the model's outputs are NaN or inf")
        losses = s3r_losses(outputs, batch_size=normal_videos.shape[0])
        if not bool(torch.isfinite(losses["total"])):
            raise FloatingPointError(f"the training loss is {float(losses['total'])}")
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
    return {name: loss.detach() for name, loss in losses.items()}


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam with the published weight decay; the learning rate stays constant."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-3)
