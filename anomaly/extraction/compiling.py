"""The I3D network's body (everything after the stem, ``I3DResNet50.from_stem``) as extraction runs it: eager, or
compiled by ``torch.compile`` when that is possible here and pays for its compile time.

Compiling (inductor with frozen weights: the weights become constants, prepacked for oneDNN, and every convolution is
fused with the ReLU and the residual add after it) is what gives fused convolutions in PyTorch 2.13; eager PyTorch
runs each convolution, ReLU and add as its own pass over the activations. It needs a C++ compiler at run time and
takes about ``COMPILE_SECONDS`` (52 s measured for the body on 2 cores of an AMD EPYC with a cold cache; inductor
caches what it built, so a later run on the same machine takes 10 s or so). The body always has one input shape (a
crop is 224 × 224 whatever the video, and the extractor feeds it a fixed number of crops), so it is compiled once.

**The rule** (``mode="auto"``), decided on the run's second forward, which runs eager and is timed (the first pays
for first-call costs: allocation, oneDNN's primitives): compile when the
eager time of the clips still to do (``clips left × seconds per clip``) is at least ``COMPILE_SECONDS ×
BREAK_EVEN_SPEED_UP / (BREAK_EVEN_SPEED_UP - 1)``, which is what compiling must save to pay for itself when it makes
the body ``BREAK_EVEN_SPEED_UP`` times faster: 2 × 60 s = 120 s of eager work. Unknown work (a live stream, whose
first scores a minute of compiling would hold back) stays eager. Once compiled, the second compiled forward is timed:
a compiled body no faster than the eager one is dropped. Every outcome is one line: compiled (in how long, how fast
against eager), or eager and why (no C++ compiler, compiling failed, it would not pay, it was not faster). A failure
to compile, at any call, never reaches the caller: the body runs eager from then on.
"""

import contextlib
import time
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor

from anomaly.errors import check_choice

COMPILE_SECONDS = 60.0
BREAK_EVEN_SPEED_UP = 2.0
MODES = ("auto", "eager", "compiled")  # compiled: compile at the first forward whatever the work (the benchmark)


def break_even_seconds() -> float:
    """Eager seconds of work from which compiling pays (see the module docstring)."""
    return COMPILE_SECONDS * BREAK_EVEN_SPEED_UP / (BREAK_EVEN_SPEED_UP - 1)


def compile_pays(clips_left: Optional[int], seconds_per_clip: float) -> bool:
    """The rule: whether the eager work left, ``clips_left`` clips of ``seconds_per_clip``, pays for compiling
    (None: the work is not known)."""
    return clips_left is not None and clips_left * seconds_per_clip >= break_even_seconds()


def compiler_problem() -> str:
    """Why inductor cannot compile here ('' when it can): it builds C++ at run time with the compiler that ``CXX``
    names, else ``g++``."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:  # inductor's own error for no compiler, or an inductor that cannot load at all
        return "no C++ compiler for torch.compile (install g++, or name one in CXX)"
    return ""


@contextlib.contextmanager
def _frozen_weights() -> Iterator[None]:
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class NetworkBody:
    """``body`` (crops (B·N) 64 8 112 112 -> B·N 2048) as run: eager, or compiled (``mode``, see the module
    docstring for the rule of ``auto``). ``clips``: the crops the run will feed it, when known; ``label`` names the
    network in the line said about the choice (``log``)."""

    def __init__(self, body: Callable[[Tensor], Tensor], mode: str = "auto", clips: Optional[int] = None,
                 label: str = "I3D", log: Callable[[str], None] = lambda line: None):  # fmt: skip
        check_choice(mode, MODES, "compile mode")
        self.eager = body
        self.compiled: Optional[Callable[[Tensor], Tensor]] = None
        self.clips_left = clips
        self.label = label
        self.log = log
        self.eager_seconds: Optional[float] = None  # per clip, when timed
        self.compile_seconds: Optional[float] = None
        self.state = {"auto": "warming", "eager": "eager", "compiled": "compiling"}[mode]
        self.checked = mode == "compiled"  # forced: kept whatever its speed
        if mode == "auto" and clips is None:
            self._eager(f"the work is not known beforehand, and compiling takes about {COMPILE_SECONDS:.0f} s")

    @property
    def is_compiled(self) -> bool:
        return self.state in ("checking", "compiled")

    def __call__(self, x: Tensor) -> Tensor:
        if self.clips_left is not None:
            self.clips_left -= x.shape[0]
        if self.state == "eager":
            return self.eager(x)
        if self.state == "warming":
            self.state = "timing"
            return self.eager(x)
        if self.state == "timing":
            started = time.perf_counter()
            out = self.eager(x)
            self.eager_seconds = (time.perf_counter() - started) / x.shape[0]
            self._decide()
            return out
        if self.state == "compiling":
            return self._compile(x)
        return self._run_compiled(x)

    def _decide(self) -> None:
        if compile_pays(self.clips_left, self.eager_seconds):
            problem = compiler_problem()
            if problem:
                self._eager(problem)
            else:
                self.state = "compiling"
            return
        left = max(self.clips_left, 0)  # the count comes from what the containers declare: it may fall short
        self._eager(f"compiling takes about {COMPILE_SECONDS:.0f} s and pays from {break_even_seconds():.0f} s of "
                    f"eager work; the clips left, {left} at {self.eager_seconds:.3f} s, are "
                    f"{left * self.eager_seconds:.0f} s")

    def _eager(self, why: str) -> None:
        self.state, self.compiled = "eager", None
        self.log(f"{self.label}: eager ({why})")

    def _compile(self, x: Tensor) -> Tensor:
        problem = compiler_problem()
        if problem:
            self._eager(problem)
            return self.eager(x)
        self.compiled = torch.compile(self.eager, dynamic=False)
        started = time.perf_counter()
        try:
            with _frozen_weights():
                out = self.compiled(x)
        except Exception as error:  # noqa: BLE001 - whatever inductor raises, the eager body gives the features
            self._eager(f"compiling failed: {_first_line(error)}")
            return self.eager(x)
        self.compile_seconds = time.perf_counter() - started
        self.state = "compiled" if self.checked else "checking"
        if self.checked:
            self.log(f"{self.label}: compiled in {self.compile_seconds:.0f} s (inductor, frozen weights)")
        return out

    def _run_compiled(self, x: Tensor) -> Tensor:
        started = time.perf_counter()
        try:
            with _frozen_weights():
                out = self.compiled(x)
        except Exception as error:  # noqa: BLE001 - e.g. a recompilation that fails: the eager body takes over
            self._eager(f"the compiled body failed: {_first_line(error)}")
            return self.eager(x)
        if self.state == "checking":
            seconds = (time.perf_counter() - started) / x.shape[0]
            if seconds >= self.eager_seconds:
                self._eager(f"compiled in {self.compile_seconds:.0f} s, it took {seconds:.3f} s a clip, no faster "
                            f"than eager's {self.eager_seconds:.3f} s")
            else:
                self.state = "compiled"
                self.log(f"{self.label}: compiled in {self.compile_seconds:.0f} s (inductor, frozen weights): "
                         f"{seconds:.3f} s a clip against {self.eager_seconds:.3f} s eager")
        return out
