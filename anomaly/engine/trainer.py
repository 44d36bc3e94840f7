"""One S3R training step and the shuffled batch streams that feed it."""

from typing import Dict

import torch
from torch import Tensor, nn

from anomaly.engine.precision import autocast
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


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    normal_videos: Tensor,
    anomalous_videos: Tensor,
    dictionary: Tensor,
    precision: str = "fp32",
) -> Dict[str, Tensor]:
    """One optimisation step on ``normal_videos`` and ``anomalous_videos`` (each B N T C) with dictionary S C.

    Returns the detached losses (``magnitude``, ``sparsity``, ``smoothness``, ``macro``, ``total``).
    """
    model.train()
    videos = torch.cat((normal_videos, anomalous_videos), dim=0)
    with autocast(precision, videos.device):
        outputs = model(videos, dictionary.expand(videos.shape[0], -1, -1))
    outputs = {name: value.float() for name, value in outputs.items()}
    losses = s3r_losses(outputs, batch_size=normal_videos.shape[0])
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()
    return {name: loss.detach() for name, loss in losses.items()}


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam with the published weight decay; the learning rate stays constant."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-3)
