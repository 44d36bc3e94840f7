"""Running a command: the one place of the exit contract every tool shares.

Exit status:
- 0: done;
- 1: some items failed (extraction, detection: one line each, the others were done);
- 2: bad input or usage: one line ``s3r <command>: [<file>: ]<problem>`` on stderr, nothing half-written;
- 130 / 143: interrupted by SIGINT / SIGTERM (training saves its state first and says how to resume).

``s3r <command> ...`` and the published scripts (``python tools/<script>.py ...``) both come here.
"""

import importlib
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

from tap import Tap

from anomaly.cli import COMMANDS
from anomaly.errors import InputError, Interrupted

PROGRAM = "s3r"


class UsageError(Exception):
    """A command line argparse cannot parse, or an option value ``process_args`` refuses."""


class CommandArguments(Tap):
    """The option parser of a command: argparse's errors become one line (``UsageError``) instead of its usage
    block, so that every refusal reads the same. (A static method: Tap's ``as_dict``, the arguments a run logs,
    leaves those out.)"""

    @staticmethod
    def error(message: str):
        raise UsageError(message)


def _raise_interrupted(signal_number: int, _frame) -> None:
    raise Interrupted(signal_number)


def _command_module(name: str):
    return importlib.import_module(f"anomaly.cli.{COMMANDS[name].module}")


def command_parser(name: str, defaults: Optional[Dict[str, Any]] = None) -> CommandArguments:
    """The option parser of ``s3r <name>``; ``defaults`` are a published script's own (``tools/learn_dictionary.py``
    defaults to the synthetic dataset), which its help shows."""
    module = _command_module(name)
    arguments = type(module.Arguments.__name__, (module.Arguments,), defaults) if defaults else module.Arguments
    return arguments(prog=f"{PROGRAM} {name}", description=module.__doc__.split("\n\n")[0])


def run_command(name: str, argv: Optional[List[str]] = None, defaults: Optional[Dict[str, Any]] = None) -> int:
    """Parse ``argv`` with the command's ``Arguments``, run it, and turn every outcome into its exit status."""
    parser = command_parser(name, defaults)
    prog = parser.prog
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main_thread else None
    try:
        return _command_module(name).run(parser.parse_args(argv))
    except UsageError as error:
        print(f"{prog}: {error} (see {prog} --help)", file=sys.stderr)
    except InputError as error:
        print(f"{prog}: {error}", file=sys.stderr)
    except Interrupted as interruption:
        print(f"{prog}: {interruption}", file=sys.stderr)
        return 128 + interruption.signal_number
    except KeyboardInterrupt:
        print(f"{prog}: {Interrupted(signal.SIGINT)}", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 2


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROGRAM} <command> [options]   ({PROGRAM} <command> --help for its options)", "",
             "S3R video anomaly detection. Commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """``s3r <command> [options]``: the installed console command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)  # asked for, or a usage error
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"{PROGRAM}: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)} "
              f"(see {PROGRAM} --help)", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:])
