"""The one exception type for bad user input, and the one routine that checks a choice or a range.

Every message is a single line: ``<path>: <what is wrong>`` (the path when a file is at fault), so that command-line
tools print it as is and exit with status 2. ``check_choice`` and ``check_range`` word every refused value the same
way, as scikit-learn's ``check_array`` does: what must hold, what was found, and how to fix it when that is not
obvious — ``--batch_size must be an integer at least 1, not 0``.
"""

import math
import signal
from numbers import Integral, Real
from os import PathLike
from typing import Any, Iterable, Optional, TypeVar, Union

Value = TypeVar("Value")


class InputError(ValueError):
    """Raised when a file or value given to the package is unusable.

    The message is always a single line: ``<path>: <what is wrong>``, or ``<what is wrong>`` when no file is at
    fault. A ValueError, so that library callers catching ValueError see it too.
    """

    def __init__(self, path: Union[str, PathLike, None], problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


class Interrupted(Exception):
    """The process received SIGINT or SIGTERM; a command ends with status 128 + the signal's number."""

    def __init__(self, signal_number: int, what_now: str = ""):
        self.signal_number = int(signal_number)
        name = signal.Signals(self.signal_number).name
        super().__init__(f"interrupted by {name}" + (f"; {what_now}" if what_now else ""))


def _refuse(name: str, requirement: str, found: Any, fix: str, source: Union[str, PathLike, None]) -> InputError:
    return InputError(source, f"{name} must be {requirement}, not {found!r}" + (f"; {fix}" if fix else ""))


def check_choice(
    value: Value, allowed: Iterable[Any], name: str, fix: str = "", source: Union[str, PathLike, None] = None
) -> Value:
    """``value`` unchanged when it is one of ``allowed``; else an :class:`InputError`
    ``<name> must be one of a, b, c, not 'x'[; <fix>]`` (naming ``source`` when a file holds the value)."""
    allowed = tuple(allowed)
    if value in allowed and not isinstance(value, bool):
        return value
    raise _refuse(name, f"one of {', '.join(map(str, allowed))}", value, fix, source)


def check_range(
    value: Value,
    name: str,
    minimum: Optional[Real] = None,
    maximum: Optional[Real] = None,
    above: Optional[Real] = None,
    below: Optional[Real] = None,
    integer: bool = False,
    fix: str = "",
    source: Union[str, PathLike, None] = None,
) -> Value:
    """``value`` unchanged when it is a finite number (an integer when ``integer``) within the bounds given:
    ``minimum ≤ value``, ``value ≤ maximum`` (inclusive), ``above < value``, ``value < below`` (exclusive); else an
    :class:`InputError` in the style of :func:`check_choice`: ``--batch_size must be an integer at least 1, not 0``."""
    number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if (
        number
        and (not integer or isinstance(value, Integral))
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
        and (above is None or value > above)
        and (below is None or value < below)
    ):
        return value
    lower = f"[{minimum}" if minimum is not None else f"({above}" if above is not None else None
    upper = f"{maximum}]" if maximum is not None else f"{below})" if below is not None else None
    if lower and upper:
        bound = f"in {lower}, {upper}"
    elif lower:
        bound = f"at least {minimum}" if minimum is not None else f"above {above}"
    elif upper:
        bound = f"at most {maximum}" if maximum is not None else f"below {below}"
    else:
        bound = ""
    kind = "an integer" if integer else "a finite number"
    raise _refuse(name, f"{kind} {bound}".strip(), value, fix, source)
