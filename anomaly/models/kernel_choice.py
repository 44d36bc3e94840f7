"""Choosing between candidate kernels for the same arithmetic by a one-time measurement.

Which kernel is fastest depends on the machine: on an AVX-512 AMD EPYC (Zen 4) oneDNN's convolutions run at
about twice MKL's sgemm rate, on an AVX2 AMD EPYC (Zen 1) sgemm runs at twice oneDNN's convolution rate. Rather
than guess from the vendor, ``fastest`` times every candidate on the caller's shapes the first time a problem is
seen (per device, dtype, shapes and thread count) and remembers the winner for the rest of the process.
A training state saves the choices (``state_dict``), so that a resumed run computes with the same kernels as
the run it continues, bit for bit.
"""

import time
from typing import Callable, Dict, Mapping

import torch

_chosen: Dict[str, str] = {}
_timings: Dict[str, Dict[str, float]] = {}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fastest(key: str, candidates: Mapping[str, Callable[[], object]], device: torch.device, repeats: int = 2) -> str:
    """The name of the fastest of ``candidates`` (callables doing the same work) for ``key``, measured once.

    Each candidate runs once untimed (first-call costs: allocation, oneDNN primitive creation), then ``repeats``
    times; its best time counts (the least disturbed by other processes). The key gets the thread count added.
    """
    device = torch.device(device)
    key = f"{key} on {device.type}, {torch.get_num_threads()} threads"
    if key not in _chosen:
        times = {}
        for name, run in candidates.items():
            run()
            _synchronize(device)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                _synchronize(device)
                best = min(best, time.perf_counter() - start)
            times[name] = best
        _timings[key] = times
        _chosen[key] = min(times, key=times.get)
    return _chosen[key]


def measured() -> Dict[str, Dict[str, float]]:
    """Every measurement so far: key -> {candidate: best seconds} (the benchmark reports them)."""
    return {key: dict(times) for key, times in _timings.items()}


def state_dict() -> Dict[str, str]:
    """The choices made so far: key -> candidate."""
    return dict(_chosen)


def load_state_dict(state: Dict[str, str]) -> None:
    """Take the choices of another process (those of a resumed run's first process win over any made here)."""
    _chosen.update(state)
