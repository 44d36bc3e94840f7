"""The command-line tools, one module each with ``main(argv=None) -> int``.

Installed as console commands by ``pip install -e .`` (see ``pyproject.toml``: ``s3r-train``,
``s3r-learn-dictionary``, ...) and run from a checkout as the published scripts ``tools/<script>.py`` and
``data/<dataset>/<dataset>_dictionary_learning.py``, which only call these. Exit status: 0 done, 2 bad input
(one line on stderr names the file and the problem).
"""
