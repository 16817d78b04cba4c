"""The ``netassist`` command: parse arguments, call the library, turn failures into one line.

Each command group lives in its own module and registers its subcommands here; none of them
holds logic a library user would need.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from netassist import __version__
from netassist.errors import ExitCode, NetassistError, explain


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line that says where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``prog: message (see prog --help)`` and exit with the usage code."""
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command-line grammar, with every subcommand registered (or, given the
    ``command`` a command line starts with, only the group that holds it: a ``files get``
    then starts without importing the other groups)."""
    parser = OneLineParser(
        prog="netassist",
        description="The Python networking toolkit: a TCP/UDP debugging assistant and more.",
    )
    parser.add_argument("--version", action="version", version=f"netassist {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=OneLineParser
    )
    for group in _GROUPS.get(command or "", _ALL):
        importlib.import_module(f"netassist.cli.{group}").register(commands)
    return parser


_ALL = ("wire", "server", "static", "files", "chat")
# The group of each command (the order is that of netassist --help).
_GROUPS = {"files": ("files",)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see :class:`netassist.errors.ExitCode`)."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    args, extras = parser.parse_known_args(argv)
    _place_late_positional(parser, args, extras)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(handler(args) or 0)
    except NetassistError as exc:
        _say(f"netassist: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (``| head``): not an error of ours.
        _silence_stdout()
        return ExitCode.OK
    except OSError as exc:
        if exc.errno not in _OUTPUT_FULL:
            return _internal_error(exc)
        # Every file netassist opens says its own name when a write fails; what is left is
        # stdout redirected to a file on a full disk (or to /dev/full).
        _silence_stdout()
        where = exc.filename or "the output"
        _say(f"netassist: {explain(exc, f'writing {where}')} (free some space, or write elsewhere)")
        return ExitCode.FILE
    except Exception as exc:
        return _internal_error(exc)


#: Write failures that mean the output's disk is full, not a bug of ours.
_OUTPUT_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _internal_error(exc: Exception) -> int:
    if os.environ.get("NETASSIST_DEBUG"):
        raise exc
    _say(
        f"netassist: internal error: {type(exc).__name__}: {exc} "
        "(set NETASSIST_DEBUG=1 to see the traceback, and please report it)"
    )
    return ExitCode.ERROR


def _place_late_positional(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]
) -> None:
    # argparse fills an optional positional (udp send's MESSAGE) before it sees later
    # options, so `udp send HOST PORT --hex 41` would leave "41" over; put it where it belongs.
    name = getattr(args, "late_positional", None)
    lone = len(extras) == 1 and (not extras[0].startswith("-") or extras[0] == "-")
    if lone and name:
        current = getattr(args, name)
        if isinstance(current, list):
            current.append(extras.pop())
        elif current is None:
            setattr(args, name, extras.pop())
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
