"""Numeric precision of training and evaluation: fp32 (the published numbers), tf32 or bf16."""

import contextlib
from typing import Iterator

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed forward passes in ``precision``.

    tf32 lets CUDA matrix products and convolutions use TensorFloat-32 (no effect on CPU); bf16 runs them under
    autocast to bfloat16 with fp32 accumulation and fp32 reductions (softmax, norms, losses).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    device = torch.device(device)
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    else:
        yield
