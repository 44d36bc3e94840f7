"""Measuring work on a device: synchronisation, the time of runs, peak memory, and time per labelled section.

The project's one timing loop is :func:`run_times`: untimed warm-up runs first (first-call costs: allocation, oneDNN
primitive creation, cuDNN's algorithm search), then timed runs, each with the device synchronised at both ends (CUDA
runs asynchronously: unsynchronised, a run's time would be the time to queue it). The kernel choice and the peak
measurement keep the best time (:func:`best_time`: the run least disturbed by other processes), the detector
benchmark the median, the extraction benchmark the best of runs that take turns.

The bottom layer: imports only torch, the standard library and ``anomaly.hardware``.
"""

import contextlib
import resource
import time
from collections import defaultdict
from typing import Callable, ContextManager, Dict, Iterator, List

import torch

from anomaly import hardware

Timer = Callable[[str], ContextManager]  # timer("section") times the enclosed work (see SectionTimer)


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on ``device`` is done (CUDA); a no-op on a CPU, which runs synchronously."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``run`` takes, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def run_times(run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> List[float]:
    """Seconds of each of ``repeats`` timed calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    return [timed(run, device) for _ in range(repeats)]


def best_time(run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """The shortest of ``run_times``: on a shared machine, the run least slowed down by other processes."""
    return min(run_times(run, device, repeats, warmup))


def no_timer(_section: str) -> ContextManager:
    """A :data:`Timer` that times nothing."""
    return contextlib.nullcontext()


class SectionTimer:
    """Accumulated wall time per labelled section (device synchronised at both ends of each); a :data:`Timer`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: Dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.totals[label] += time.perf_counter() - start

    @contextlib.contextmanager
    def modules(self, labels: Dict[torch.nn.Module, str]) -> Iterator[None]:
        """Time the forward passes of ``labels``' modules (hooks) while the block runs."""
        starts: Dict[int, float] = {}

        def before(module, _inputs):
            synchronize(self.device)
            starts[id(module)] = time.perf_counter()

        def after(module, _inputs, _output):
            synchronize(self.device)
            self.totals[labels[module]] += time.perf_counter() - starts.pop(id(module))

        handles = [module.register_forward_pre_hook(before) for module in labels]
        handles += [module.register_forward_hook(after) for module in labels]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


class PeakMemory:
    """Peak memory of a phase: CUDA's peak allocated bytes, or on a CPU the process's peak resident set size.

    On Linux the resident peak (VmHWM) is reset at the start of each phase (``/proc/self/clear_refs``); elsewhere
    the CPU figure is the process's peak so far (``getrusage``), which never goes down.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "peak allocated (CUDA)" if device.type == "cuda" else "peak resident set (process)"
        self.resettable = device.type == "cuda" or self._reset_rss()
        if not self.resettable:
            self.kind = "peak resident set since start (process; cannot be reset here)"

    @staticmethod
    def _reset_rss() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return True
        except OSError:
            return False

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.resettable:
            self._reset_rss()

    def peak(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        with contextlib.suppress(OSError):
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_name(device: torch.device) -> str:
    """The device measured on, for a report: the GPU's name, or the CPU's model and instruction sets and the
    thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{hardware.cpu_info().describe()}, {threads} thread{'' if threads == 1 else 's'}"
