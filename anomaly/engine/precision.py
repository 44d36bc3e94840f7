"""Numeric precision of training and evaluation: fp32 (the published numbers), tf32 or bf16."""

import contextlib
from typing import Iterator

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


@contextlib.contextmanager
def tf32_switches(precision: str, device: torch.device) -> Iterator[None]:
    """On CUDA, allow TensorFloat-32 matrix products and convolutions for tf32 and bf16 only.

    fp32 turns them off (PyTorch leaves cuDNN's on by default): the published numbers came from GPUs without
    TF32. Covers whatever runs inside, backward passes included; restores the previous switches after.
    """
    check_precision(precision)
    if torch.device(device).type != "cuda":
        yield
        return
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision != "fp32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed forward passes in ``precision``: the TF32 switches, and for bf16 autocast to bfloat16
    (fp32 accumulation; softmax, norms and losses in fp32)."""
    with tf32_switches(precision, device):
        if precision == "bf16":
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                yield
        else:
            yield
