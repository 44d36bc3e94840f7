"""Documentation that cannot rot: the README is a short front page; every relative link of the README and the
pages under docs/ resolves (its #section too); every command line they show in a ``bash`` block parses with the
real argument parser of its command (parsed, not run: ``path/to/video.mp4`` need not exist); every ``make``
target they name exists; and docs/commands.md is what the parsers print.

Command lines are read as a shell would split them: backslash continuations, comments, ``&&``, ``||``, ``;`` and
pipes, ``NAME=value`` assignments before a command, ``< file`` / ``> file`` redirections, and ``for VAR in ...;
do ... done`` loops (``$VAR`` takes the loop's first value). Checked: ``s3r <command> ...``, ``python -m
anomaly.cli <command> ...``, ``python tools/<script>.py ...``, ``python data/<dataset>/<script>.py ...`` (also
under ``torchrun``) and ``make <target>``; other programs (pip, ffmpeg, ...) are left alone.
"""

import contextlib
import io
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest

from anomaly.cli import COMMANDS
from anomaly.cli.command import UsageError, command_parser, run_command
from anomaly.cli.reference import COLUMNS, REFERENCE, REGENERATE, command_help, render_reference
from anomaly.errors import InputError
from tests.conftest import REPO, load_script

DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 200
DOCUMENTS = [README, *sorted(DOCS.rglob("*.md")),
             *sorted(path for path in REPO.glob("*/README.md") if not path.parent.name.startswith("."))]
SHELL_LANGUAGES = {"bash", "sh", "shell"}
COMMAND_PROGRAMS = ("s3r", "python", "python3", "torchrun")  # a line of a code block starting so is a command


# ------------------------------------------------------------------------------------------------------ markdown
class Block(NamedTuple):
    language: str
    first_line: int  # 1-based line number of the block's first content line
    lines: List[str]


def fenced_blocks(text: str) -> List[Block]:
    """The ```-fenced code blocks of a markdown text, with the language their opening line names."""
    blocks, language, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if language is None:
                language, start, body = line[3:].strip(), number + 1, []
            else:
                blocks.append(Block(language, start, body))
                language = None
        elif language is not None:
            body.append(line)
    assert language is None, f"a code block opened at line {start - 1} is never closed"
    return blocks


def without_code_blocks(text: str) -> str:
    return re.sub(r"(?ms)^```.*?^```", "", text)


def prose(text: str) -> str:
    """The text without its code: fenced blocks and inline code spans (whose brackets are not links)."""
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(text))


def links(text: str) -> List[str]:
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(text))


def heading_anchors(text: str) -> List[str]:
    """The #anchors GitHub gives the headings: lowercase, punctuation dropped, spaces to dashes, repeats numbered."""
    anchors: Dict[str, int] = {}
    result = []
    for line in without_code_blocks(text).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            count = anchors.get(slug, 0)
            anchors[slug] = count + 1
            result.append(slug if count == 0 else f"{slug}-{count}")
    return result


def link_problem(document: Path, target: str) -> Optional[str]:
    """Why the link ``target`` of ``document`` does not resolve (None when it does, or leaves the repository by URL)."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not this repository's
        return None
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):
        return "an absolute path: write it relative to the document"
    path = (document.parent / path_part).resolve() if path_part else document
    if REPO not in path.parents and path != REPO:
        return "points outside the repository"
    if not path.exists():
        return f"{path.relative_to(REPO)} does not exist"
    if anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text(encoding="utf-8")):
        return f"{path.relative_to(REPO)} has no section #{anchor}"
    return None


# --------------------------------------------------------------------------------------------------------- shell
REDIRECTIONS = {"<", ">", ">>"}
SEPARATORS = {";", "&&", "||", "|", "&"}


def shell_commands(lines: List[str]) -> List[Tuple[int, List[str]]]:
    """The simple commands of a shell block, each as (its line's index in the block, its words); see the module's
    docstring for what is read."""
    logical: List[Tuple[int, str]] = []  # backslash continuations joined
    for index, line in enumerate(lines):
        if logical and logical[-1][1].endswith("\\"):
            logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line)
        else:
            logical.append((index, line))
    commands, variables = [], {}
    for index, line in logical:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        segments, words = [], []
        for token in lexer:
            if token in SEPARATORS:
                segments.append(words)
                words = []
            else:
                words.append(token)
        segments.append(words)
        for words in segments:
            while words and words[0] in ("do", "then", "else", "{", "("):
                words = words[1:]
            if not words or words[0] in ("done", "fi", "}", ")"):
                continue
            if words[0] == "for" and len(words) >= 4 and words[2] == "in":
                variables[words[1]] = words[3]
                continue
            words = [re.sub(r"\$\{?(\w+)\}?", lambda match: variables.get(match.group(1), match.group(0)), word)
                     for word in words]
            words = [word for position, word in enumerate(words)
                     if word not in REDIRECTIONS and (position == 0 or words[position - 1] not in REDIRECTIONS)]
            while words and re.match(r"[A-Za-z_]\w*=", words[0]):
                words = words[1:]
            if words:
                commands.append((index, words))
    return commands


def checked_form(words: List[str]) -> Optional[List[str]]:
    """A command line this module checks, as ``["make", targets...]``, ``["s3r", command, arguments...]`` or
    ``[published script, arguments...]``; None when it runs another program."""
    program, arguments = words[0], words[1:]
    if program == "torchrun":
        scripts = [position for position, word in enumerate(arguments) if word.endswith(".py")]
        program, arguments = ("python", arguments[scripts[0]:]) if scripts else (program, arguments)
    if program in ("s3r", "make"):
        return [program, *arguments]
    if program.startswith("python") and arguments[:2] == ["-m", "anomaly.cli"]:
        return ["s3r", *arguments[2:]]
    if program.startswith("python") and arguments and re.match(r"(tools|data)/", arguments[0]):
        return arguments
    return None


class CommandLine(NamedTuple):
    document: Path
    line: int
    words: List[str]

    def __str__(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}: {shlex.join(self.words)}"


def documented_command_lines() -> List[CommandLine]:
    """Every command line of a shell block of the README and docs that this module checks."""
    found = []
    for document in DOCUMENTS:
        for block in fenced_blocks(document.read_text(encoding="utf-8")):
            if block.language in SHELL_LANGUAGES:
                found += [CommandLine(document, block.first_line + index, words)
                          for index, words in shell_commands(block.lines) if checked_form(words)]
    return found


@lru_cache(maxsize=None)
def script_command(script: Path) -> Tuple[str, Tuple[Tuple[str, object], ...]]:
    """The ``s3r`` command a published script runs and the defaults it gives it: its ``main`` is called with
    ``run_command`` recording instead of running."""
    module = load_script(script)
    calls = []
    module.run_command = lambda name, argv=None, defaults=None: calls.append((name, defaults)) or 0
    module.main([])
    (name, defaults), = calls
    return name, tuple(sorted((defaults or {}).items()))


def parse_problem(name: str, argv: List[str], defaults: Optional[dict] = None) -> Optional[str]:
    """Why ``s3r <name> argv`` does not parse (None when it does): its own parser, nothing run."""
    if name not in COMMANDS:
        return f"there is no command {name!r} (the commands are {', '.join(COMMANDS)})"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            command_parser(name, defaults).parse_args(argv)
    except (UsageError, InputError) as error:
        return str(error)
    except SystemExit as exit_:  # --help
        return None if exit_.code == 0 else f"argparse exited with status {exit_.code}"
    return None


def command_line_problem(words: List[str]) -> Optional[str]:
    """Why a checked command line would not parse (None when it does)."""
    runner, *arguments = checked_form(words)
    for word in arguments:
        if word.startswith("[") or word.endswith("]"):
            return f"{word!r}: brackets are not shell; say what is optional in a comment"
    if runner == "make":
        makefile = (REPO / "Makefile").read_text()
        targets = [word for word in arguments if not word.startswith("-") and "=" not in word]
        missing = [target for target in targets if not re.search(rf"(?m)^{re.escape(target)}:", makefile)]
        return f"the Makefile has no target {', '.join(missing)}" if missing else None
    if runner == "s3r":
        if not arguments or arguments[0] in ("-h", "--help"):
            return None if arguments else "s3r needs a command"
        return parse_problem(arguments[0], arguments[1:])
    if not (REPO / runner).is_file():
        return f"{runner} does not exist"
    name, defaults = script_command(REPO / runner)
    return parse_problem(name, arguments, dict(defaults))


def command_of(command_line: CommandLine) -> Optional[str]:
    """The ``s3r`` command a checked command line runs (None for make)."""
    runner, *arguments = checked_form(command_line.words)
    if runner == "s3r":
        return arguments[0] if arguments else None
    return None if runner == "make" else script_command(REPO / runner)[0]


COMMAND_LINES = documented_command_lines()


# --------------------------------------------------------------------------------------------------------- tests
def test_the_readme_is_a_front_page_with_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    first_block = fenced_blocks(text)[0]
    assert [words[:2] for _, words in shell_commands(first_block.lines)] == [["make", "demo"], ["make", "test"]]


def test_the_readme_links_every_page_of_the_documentation():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README.read_text())}
    assert [page.relative_to(REPO) for page in sorted(DOCS.rglob("*.md")) if page not in linked] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_resolves(document):
    text = document.read_text(encoding="utf-8")
    problems = [f"({target}): {problem}" for target in links(text) if (problem := link_problem(document, target))]
    assert problems == []


def test_headings_get_the_anchors_github_gives_them():
    text = "# Installing, and the `s3r` command\n```bash\n# a comment\n```\n## One run's tables\n## Notes\n## Notes\n"
    assert heading_anchors(text) == ["installing-and-the-s3r-command", "one-runs-tables", "notes", "notes-1"]


@pytest.mark.parametrize("target, problem", [
    ("docs/no-such-page.md", "docs/no-such-page.md does not exist"),
    ("docs/training.md#no-such-section", "docs/training.md has no section #no-such-section"),
    ("#no-such-section", "README.md has no section #no-such-section"),
    ("/docs/training.md", "an absolute path"),
    ("../elsewhere.md", "points outside the repository"),
])
def test_a_link_that_does_not_resolve_is_reported(target, problem):
    assert problem in link_problem(README, target)


@pytest.mark.parametrize("command_line", COMMAND_LINES, ids=str)
def test_every_documented_command_line_parses(command_line):
    assert command_line_problem(command_line.words) is None, str(command_line)


def test_the_documented_command_lines_cover_every_command():
    """Every command (or its published script) is shown at least once, so no parser escapes the check."""
    shown = {command_of(command_line) for command_line in COMMAND_LINES}
    assert sorted(set(COMMANDS) - shown) == []


def test_commands_are_shown_in_shell_blocks():
    """A command in an unlabelled block would escape the check above: command lines go in ``bash`` blocks."""
    hidden = [f"{document.relative_to(REPO)}:{block.first_line + index}: {line}"
              for document in DOCUMENTS for block in fenced_blocks(document.read_text(encoding="utf-8"))
              if block.language not in SHELL_LANGUAGES | {"python"}
              for index, line in enumerate(block.lines)
              if line.split()[:1] and line.split()[0] in COMMAND_PROGRAMS]
    assert hidden == []


@pytest.mark.parametrize("shell, commands", [
    ("s3r train --dataset x \\\n    --version y   # a comment", [["s3r", "train", "--dataset", "x", "--version", "y"]]),
    ("COLUMNS=100 s3r train --help > help.txt && make demo", [["s3r", "train", "--help"], ["make", "demo"]]),
    ("ffmpeg -i a.avi -f mpegts - | s3r watch - --weights w.pth",
     [["ffmpeg", "-i", "a.avi", "-f", "mpegts", "-"], ["s3r", "watch", "-", "--weights", "w.pth"]]),
    ("for seed in 1 2 3; do\n    python tools/x.py --seed $seed\ndone", [["python", "tools/x.py", "--seed", "1"]]),
])
def test_command_lines_are_split_as_a_shell_splits_them(shell, commands):
    assert [words for _, words in shell_commands(shell.splitlines())] == commands


@pytest.mark.parametrize("words, problem", [
    (["s3r", "train", "--no_such_option"], "unrecognized arguments: --no_such_option"),
    (["s3r", "trian"], "there is no command 'trian'"),
    (["python", "tools/trainval_anomaly_detector.py", "--inference"], "--inference needs --resume PATH"),
    (["python", "-m", "anomaly.cli", "detect", "a.mp4", "--threshold", "high", "--weights", "w.pth"],
     "argument --threshold: invalid float value: 'high'"),
    (["python", "tools/no_such_script.py"], "tools/no_such_script.py does not exist"),
    (["s3r", "detect", "a.mp4", "--weights", "w.pth", "[--ground_truth", "m.npy]"], "brackets are not shell"),
    (["make", "no-such-target"], "the Makefile has no target no-such-target"),
])
def test_a_command_line_that_does_not_parse_is_reported(words, problem):
    assert problem in command_line_problem(words)


def test_a_published_script_is_parsed_with_its_own_defaults():
    assert script_command(REPO / "tools" / "learn_dictionary.py") == ("learn-dictionary", (("dataset", "synthetic"),))
    assert script_command(REPO / "data" / "ucf-crime" / "ucf_crime_dictionary_learning.py") == (
        "learn-dictionary", (("dataset", "ucf-crime"),))


def test_the_command_reference_is_what_the_parsers_print():
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        f"{REFERENCE.relative_to(REPO)} is out of date: regenerate it with `{REGENERATE}` (or `make docs`) "
        "from the repository's root, and commit it")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_reference_shows_each_help_as_a_terminal_of_its_width_does(name, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(COLUMNS))
    with pytest.raises(SystemExit):
        run_command(name, ["--help"])
    assert capsys.readouterr().out == command_help(name)


def test_the_reference_does_not_depend_on_the_terminal_it_is_made_in(monkeypatch):
    pages = []
    for columns in ("37", "300"):
        monkeypatch.setenv("COLUMNS", columns)
        pages.append(render_reference())
    assert pages[0] == pages[1]
