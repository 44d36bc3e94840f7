"""What the machine offers, detected in one place: the CPU's model, vendor and instruction-set flags, PyTorch's
kernel libraries, and whether bfloat16 arithmetic is native (fast) on a device.

bf16 is native on a CUDA GPU of compute capability 8.0 or above (Ampere and later: bf16 tensor cores) and on a CPU
with AVX512-BF16 or AMX-BF16 (``/proc/cpuinfo`` flags ``avx512_bf16``, ``amx_bf16``). Elsewhere PyTorch emulates bf16
products, which then run far slower than fp32 (on an AVX2 AMD EPYC: 0.14 GFLOP/s against 35 for fp32).
"""

import functools
import platform
import re
from dataclasses import dataclass
from typing import FrozenSet, Optional

import torch

from anomaly.errors import InputError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    model: str  # "AMD EPYC 9R14", "Intel(R) Xeon(R) Platinum 8488C", ...
    vendor: str  # "AuthenticAMD", "GenuineIntel", ...
    flags: FrozenSet[str]
    capability: str  # the ATen kernels PyTorch dispatches to: DEFAULT, AVX2, AVX512 (ATEN_CPU_CAPABILITY)

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    def describe(self) -> str:
        """One line: model, vendor, the relevant instruction sets and PyTorch's kernel choice."""
        sets = [flag for flag in ("avx2", "avx512f", *BF16_FLAGS, "amx_tile") if flag in self.flags]
        return (f"{self.model} ({self.vendor}; {' '.join(sets) or 'no AVX2'}; ATen kernels {self.capability}; "
                f"{blas_library()} matrix products, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'})")


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return CpuInfo(
        model=fields.get("model name") or platform.processor() or "unknown CPU",
        vendor=fields.get("vendor_id", "unknown vendor"),
        flags=frozenset(fields.get("flags", "").split()),
        capability=torch.backends.cpu.get_cpu_capability(),
    )


@functools.lru_cache(maxsize=1)
def blas_library() -> str:
    """The BLAS behind PyTorch's CPU matrix products, as its build configuration names it (MKL, OpenBLAS, ...)."""
    match = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return {"mkl": "MKL", "open": "OpenBLAS", "accelerate": "Accelerate"}.get(match.group(1), match.group(1)) if match else "BLAS"


NATIVE_BF16_CUDA_CAPABILITY = (8, 0)  # Ampere: the first GPUs with bf16 tensor cores


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 products run at least as fast as fp32 ones on ``device`` itself (see the module docstring).

    Not ``torch.cuda.is_bf16_supported()``: that counts emulated bf16 as supported and asks about the current
    device, not the one given."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index) >= NATIVE_BF16_CUDA_CAPABILITY
    return device.type == "cpu" and cpu_info().native_bf16


def default_device() -> str:
    """The device every tool uses unless told otherwise: CUDA when present, the CPU otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: Optional[str], what: str, local_rank: int = 0) -> torch.device:
    """The torch device of a ``--device`` option (None: :func:`default_device`), or a one-line InputError saying
    why ``what`` (e.g. "extraction") cannot run there. A bare ``cuda`` becomes ``cuda:<local_rank>``: under
    torchrun every process takes its own GPU."""
    name = default_device() if name is None else name
    problem = device_problem(name, what)
    if problem:
        raise InputError(None, f"--device {name}: {problem}")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        if local_rank >= torch.cuda.device_count():
            raise InputError(None, f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", local_rank)
    return device


def device_problem(name: str, what: str) -> str:
    """Why the ``--device`` ``name`` cannot run ``what`` (e.g. "extraction") here, or '' when it can: not a torch
    device, neither cpu nor cuda, no CUDA, or a CUDA index this machine lacks."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "not a torch device (cpu, cuda, cuda:1, ...)"
    if device.type not in ("cpu", "cuda"):
        return f"{what} runs on cpu or cuda, not {device.type}"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device is available here (use --device cpu)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    return ""
