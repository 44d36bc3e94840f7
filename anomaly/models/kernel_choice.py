"""Choosing between candidate kernels for the same function by a one-time measurement.

Which kernel is fastest depends on the machine: on an AVX-512 AMD EPYC (Zen 4) oneDNN's convolutions run at
about twice MKL's sgemm rate, on an AVX2 AMD EPYC (Zen 1) sgemm runs at twice oneDNN's convolution rate. Rather
than guess from the vendor, a :class:`KernelChoice` times every candidate on the caller's shapes the first time a
problem is seen in the process (per device, dtype, shapes and thread count) and remembers the winner. The timings
belong to the process: every model built later (for evaluation, inference, a window scorer) decides from the same
ones without measuring again; the choices belong to each ``KernelChoice`` (a resumed run's are loaded). An ``S3R``
model holds one (``S3R(kernel_choice=...)``), which its convolutions (``conv_kernel="auto"``) and its packed scorer
consult.
Reproducibility: a choice changes results by float rounding, so it should not flip between runs on one machine.
Problems of less than ``MIN_FLOPS`` per timed run keep the ``default`` kernel unmeasured (their timings are too
noisy to rank, and they cost little anyway), and another kernel replaces the default only when it is faster by
more than ``MARGIN`` (on the machines above the winner is twice as fast). Between two non-default candidates the
faster measured wins, so two fresh runs on a busy machine may still choose differently there, and so may runs with
another thread count (part of the key). A training state saves the choices (``state_dict``), so that a resumed run
computes with the same kernels as the run it continues.
"""

from typing import Callable, Collection, Dict, Mapping, Tuple

import torch

from anomaly.measuring import best_time

MIN_FLOPS = 5e8
MARGIN = 0.15
MEASURE_ROWS = 256  # snippets (rows) of the inputs on which candidate kernels are timed against each other

_process_timings: Dict[str, Dict[str, float]] = {}  # problem key -> {candidate: best seconds}, measured in this process


def measurement_input(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uniform random numbers to time kernels on, drawn from their own generator: the global random stream (and so
    a seeded run's results) stays untouched."""
    generator = torch.Generator(device).manual_seed(0)
    return torch.rand(shape, generator=generator, device=device).to(dtype)


class KernelChoice:
    """The kernels chosen for each problem (a key naming its shapes), each measured once.

    ``repeats``: timed runs per candidate, after one untimed (first-call costs: allocation, oneDNN primitive
    creation); a candidate's best time counts (the least disturbed by other processes).
    """

    def __init__(self, repeats: int = 2):
        self.repeats = repeats
        self._chosen: Dict[str, str] = {}
        self._timings: Dict[str, Dict[str, float]] = {}

    def fastest(
        self, key: str, candidates: Mapping[str, Callable[[], object]], device: torch.device, default: str,
        flops: float,
    ) -> str:  # fmt: skip
        """The name of the fastest of ``candidates`` (callables doing the same ``flops`` of work) for ``key``, measured
        the first time the key is seen; ``default`` when the work is below ``MIN_FLOPS`` or no other candidate beats
        it by ``MARGIN``. The key gets the device type and thread count added."""
        device = torch.device(device)
        key = f"{key} on {device.type}, {torch.get_num_threads()} threads"
        if key not in self._chosen and flops < MIN_FLOPS:
            self._timings[key] = {}
            self._chosen[key] = default
        if key not in self._chosen:
            if key not in _process_timings:
                _process_timings[key] = {name: best_time(run, device, self.repeats) for name, run in candidates.items()}
            times = _process_timings[key]
            self._timings[key] = times
            best = min(times, key=times.get)
            self._chosen[key] = best if times[default] > (1 + MARGIN) * times[best] else default
        return self._chosen[key]

    def measured(self) -> Dict[str, Tuple[str, Dict[str, float]]]:
        """Every choice made here: key -> (candidate, {candidate: best seconds}; empty when not measured)."""
        return {key: (self._chosen[key], dict(times)) for key, times in self._timings.items()}

    def state_dict(self) -> Dict[str, str]:
        """The choices, made here or loaded: key -> candidate."""
        return dict(self._chosen)

    def load_state_dict(self, state: Dict[str, str], names: Collection[str]) -> None:
        """Take the choices of another process (those of a resumed run's first process win over any made here);
        a choice that is not one of the kernel ``names`` is a ValueError, raised before any is taken."""
        if not isinstance(state, dict):
            raise TypeError(f"kernel choices must be a dict, not {type(state).__name__}")
        for key, name in state.items():
            if not isinstance(key, str) or name not in names:
                raise ValueError(f"the kernel chosen for {key!r} is {name!r}, not one of {', '.join(names)}")
        self._chosen.update(state)
