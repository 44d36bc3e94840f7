"""The command-line tools, one module each with ``main(argv=None) -> int``.

Installed as console commands by ``pip install -e .`` (see ``pyproject.toml``: ``s3r-train``,
``s3r-learn-dictionary``, ...) and run from a checkout as the published scripts ``tools/<script>.py`` and
``data/<dataset>/<dataset>_dictionary_learning.py``, which only call these. Exit status: 0 done, 2 bad input
(one line on stderr names the file and the problem).
"""

from typing import Optional

from tap import Tap

from anomaly.models.s3r import check_feature_size


def check_feature_size_option(parser: Tap, feature_size: Optional[int]) -> None:
    """A usage error (exit status 2) for a ``--feature_size`` the model cannot take; None means the default."""
    if feature_size is not None:
        try:
            check_feature_size(feature_size)
        except ValueError as error:
            parser.error(f"--feature_size {error}")
