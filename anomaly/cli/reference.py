"""The command reference, ``docs/commands.md``: every command's ``--help``, rendered from the parsers themselves.

    python -m anomaly.cli.reference        # after changing an option: rewrites docs/commands.md (so does make docs)

The help is rendered at a fixed width, as ``COLUMNS=100 s3r <command> --help`` prints it, so the page is the same
on every machine and terminal; ``tests/test_docs.py`` fails when the page and the parsers disagree.
"""

import sys
from functools import partial
from pathlib import Path

from anomaly.cli import COMMANDS
from anomaly.cli.command import PROGRAM, command_parser, usage
from anomaly.files import save_text

COLUMNS = 100
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
REGENERATE = "python -m anomaly.cli.reference"  # or make docs


def command_help(name: str) -> str:
    """``s3r <name> --help`` as a terminal ``COLUMNS`` wide shows it, whatever the terminal at hand."""
    parser = command_parser(name)
    # argparse wraps at the terminal's width less 2; it also colours help on a terminal from Python 3.14 on
    parser.formatter_class = partial(parser.formatter_class, width=COLUMNS - 2)
    parser.color = False
    return parser.format_help()


def render_reference() -> str:
    """The page: ``s3r --help``, then each command's help in the order of ``s3r --help``."""
    sections = [
        "# Command reference",
        "",
        f"Every `{PROGRAM}` command's options, as `COLUMNS={COLUMNS} {PROGRAM} <command> --help` prints them. The "
        "published scripts take the same\noptions (see [installing.md](installing.md#the-s3r-command)).",
        "",
        f"This page is generated from the argument parsers: do not edit it. After changing an option, run\n"
        f"`{REGENERATE}` (or `make docs`); `tests/test_docs.py` fails while the page is out of date.",
        "",
        "```text",
        f"$ {PROGRAM} --help",
        usage(),
        "```",
    ]
    for name in COMMANDS:
        sections += ["", f"## {PROGRAM} {name}", "", "```text", f"$ {PROGRAM} {name} --help",
                     command_help(name).rstrip("\n"), "```"]
    return "\n".join(sections) + "\n"


def main() -> int:
    save_text(render_reference(), REFERENCE)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
