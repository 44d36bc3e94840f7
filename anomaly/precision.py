"""Numeric precision of training, evaluation and extraction: fp32 (the published numbers), tf32 or bf16.

bf16 runs where it is native (``anomaly.hardware.native_bf16``: a CUDA GPU with bf16 tensor cores, a CPU with
AVX512-BF16 or AMX); elsewhere ``resolve_precision`` turns it into fp32 with a one-line note, bf16 being slower there.
``auto`` (the feature network's commands) is bf16 where it is native and fp32 elsewhere, decided by the same rule;
what it became is said in one line and recorded, never the word ``auto``.
"""

import contextlib
from typing import Iterator, Tuple

import torch

from anomaly.errors import check_choice
from anomaly.hardware import cpu_info, native_bf16

PRECISIONS = ("fp32", "tf32", "bf16")  # what S3R's training and evaluation run
AUTO = "auto"
NETWORK_PRECISIONS = ("fp32", "bf16")  # what a feature network runs, and what its features record
NETWORK_CHOICES = NETWORK_PRECISIONS + (AUTO,)  # --precision of extract, detect, watch and make-dataset
# bfloat16 keeps 8 significant bits (7 stored): rounding to it changes a value by at most 2^-8 of itself.
BF16_UNIT_ROUNDOFF = 2.0**-8


def check_precision(precision: str) -> None:
    check_choice(precision, PRECISIONS, "precision")


def dtype_of(precision: str) -> torch.dtype:
    """The dtype of the products a precision runs: bfloat16 for bf16, float32 otherwise (tf32 is float32 storage
    with TensorFloat-32 products)."""
    check_precision(precision)
    return torch.bfloat16 if precision == "bf16" else torch.float32


def resolve_precision(precision: str, device: torch.device) -> Tuple[str, str]:
    """The precision to run on ``device`` (never ``auto``), and a one-line note when it is not ``precision`` as
    given (else ''): ``auto`` always gets one, saying what it became and why."""
    check_choice(precision, PRECISIONS + (AUTO,), "--precision")
    device = torch.device(device)
    native = native_bf16(device)
    if precision == AUTO:
        chosen = "bf16" if native else "fp32"
        why = f"{_where(device)} computes bf16 natively" if native else f"{_where(device)} {_lacks_bf16(device)}"
        return chosen, f"--precision auto: {chosen} ({why})"
    if precision != "bf16" or native:
        return precision, ""
    return "fp32", (f"--precision bf16: {_where(device)} {_lacks_bf16(device)}, so bf16 would be slower than fp32 "
                    "here; running fp32")


def _where(device: torch.device) -> str:
    return f"this CPU ({cpu_info().model})" if device.type == "cpu" else str(device)


def _lacks_bf16(device: torch.device) -> str:
    return "has neither AVX512-BF16 nor AMX" if device.type == "cpu" else "has no native bf16"


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
