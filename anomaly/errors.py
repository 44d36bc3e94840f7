"""The one exception type for bad user input: a one-line message naming the file and the problem."""

from os import PathLike
from typing import Union


class InputError(ValueError):
    """Raised when a file given to the package is unusable.

    The message is always a single line: ``<path>: <what is wrong>``, so that command-line tools can print it
    as is and exit with status 2.
    """

    def __init__(self, path: Union[str, PathLike, None], problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")
