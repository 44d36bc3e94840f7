"""The one command: `s3r --help` lists every tool with one line, `s3r <command> --help` shows its options, and
every command keeps the exit contract of anomaly.cli.command."""

import subprocess
import sys

import pytest

from anomaly.cli import COMMANDS
from anomaly.cli.command import main, run_command, usage
from tests.conftest import REPO


def test_s3r_help_lists_every_command_with_one_line(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert listed == usage() + "\n"
    for name, command in COMMANDS.items():
        assert f"  {name}" in listed and command.summary in listed
    assert {"train", "learn-dictionary", "ground-truth", "video-lists", "synthetic", "extract", "detect", "summarize",
            "benchmark", "benchmark-extraction", "make-dataset"} <= set(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_shows_its_options(name, capsys):
    with pytest.raises(SystemExit) as exited:
        run_command(name, ["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: s3r {name} ")


def test_an_unknown_command_or_none_is_a_usage_error(capsys):
    assert main(["trian"]) == 2
    assert capsys.readouterr().err == ("s3r: unknown command 'trian'; the commands are " + ", ".join(COMMANDS)
                                       + " (see s3r --help)\n")
    assert main([]) == 2
    listing = capsys.readouterr()
    assert listing.out == "" and listing.err.startswith("usage: s3r <command> [options]")


def test_a_published_script_shows_its_own_defaults_in_its_help(capsys):
    script = subprocess.run([sys.executable, str(REPO / "tools" / "learn_dictionary.py"), "--help"],
                            capture_output=True, text=True, cwd=REPO)
    assert script.returncode == 0 and "--dataset DATASET     (str, default=synthetic)" in script.stdout


def test_a_command_line_argparse_cannot_parse_is_one_line_with_the_help_to_see(capsys):
    assert run_command("summarize", ["logs/x", "--no_such_option"]) == 2
    assert capsys.readouterr().err == ("s3r summarize: unrecognized arguments: --no_such_option (see s3r summarize "
                                       "--help)\n")
    assert run_command("summarize", []) == 2
    assert capsys.readouterr().err == ("s3r summarize: the following arguments are required: runs (see s3r summarize "
                                       "--help)\n")


def test_the_installed_command_and_the_published_script_are_the_same_command(tmp_path):
    script = subprocess.run([sys.executable, str(REPO / "tools" / "summarize_runs.py"), str(tmp_path / "none")],
                            capture_output=True, text=True, cwd=tmp_path)
    module = subprocess.run([sys.executable, "-m", "anomaly.cli", "summarize", str(tmp_path / "none")],
                            capture_output=True, text=True, cwd=REPO)
    assert script.returncode == module.returncode == 2
    assert script.stderr == module.stderr == f"s3r summarize: {tmp_path / 'none'}: no such run folder or curve file\n"
