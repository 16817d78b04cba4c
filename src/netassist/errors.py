"""Expected failures, each with one line for the user and its own exit code.

Library code raises :class:`NetassistError` (or lets an ``OSError`` escape and the caller
passes it through :func:`explain`); the command line prints ``str(error)`` on one line of
stderr and exits with ``error.exit_code``. Scripts can tell failures apart by that code, so
the numbers are part of the public contract and are listed in the README.
"""

from __future__ import annotations

import errno
import socket
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of the ``netassist`` command, one per kind of expected failure."""

    OK = 0
    ERROR = 1  # anything not listed below
    USAGE = 2  # bad arguments (argparse uses 2 as well)
    BAD_PORT = 3
    BAD_DATA = 4  # bad hex, text that does not encode, an unreadable log record
    HOST_NOT_FOUND = 5
    CONNECTION_REFUSED = 6
    ADDRESS_IN_USE = 7
    PERMISSION_DENIED = 8
    TIMEOUT = 9
    NETWORK = 10  # unreachable, reset, aborted
    FILE = 11  # a local file that cannot be read or written
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class NetassistError(Exception):
    """An expected failure: ``str()`` is the one line the user sees."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(NetassistError):
    """Arguments that cannot work together or cannot be parsed."""

    exit_code = ExitCode.USAGE


class BadPortError(NetassistError):
    """A port that is not a whole number in range."""

    exit_code = ExitCode.BAD_PORT


class BadDataError(NetassistError):
    """Payload input that cannot be turned into bytes (bad hex, unencodable text)."""

    exit_code = ExitCode.BAD_DATA


class TimeoutExpired(NetassistError):
    """A wait that the user bounded ran out."""

    exit_code = ExitCode.TIMEOUT


_ERRNO_CODES: dict[int, tuple[ExitCode, str]] = {
    errno.ECONNREFUSED: (ExitCode.CONNECTION_REFUSED, "connection refused"),
    errno.EADDRINUSE: (ExitCode.ADDRESS_IN_USE, "address already in use"),
    errno.EADDRNOTAVAIL: (ExitCode.NETWORK, "address not available on this machine"),
    errno.EACCES: (ExitCode.PERMISSION_DENIED, "permission denied"),
    errno.EPERM: (ExitCode.PERMISSION_DENIED, "permission denied"),
    errno.ETIMEDOUT: (ExitCode.TIMEOUT, "timed out"),
    errno.ENETUNREACH: (ExitCode.NETWORK, "network unreachable"),
    errno.EHOSTUNREACH: (ExitCode.NETWORK, "host unreachable"),
    errno.ECONNRESET: (ExitCode.NETWORK, "connection reset by peer"),
    errno.ECONNABORTED: (ExitCode.NETWORK, "connection aborted"),
    errno.EPIPE: (ExitCode.NETWORK, "connection closed by peer"),
    errno.EMSGSIZE: (ExitCode.BAD_DATA, "message too long for one datagram"),
    errno.ENOENT: (ExitCode.FILE, "no such file or directory"),
    errno.EISDIR: (ExitCode.FILE, "is a directory"),
    errno.ENOSPC: (ExitCode.FILE, "no space left on device"),
    errno.EDQUOT: (ExitCode.FILE, "disk quota exceeded"),
    errno.EFBIG: (ExitCode.FILE, "file too large"),
    errno.EROFS: (ExitCode.FILE, "read-only file system"),
}

_HINTS: dict[ExitCode, str] = {
    ExitCode.CONNECTION_REFUSED: "is anything listening there?",
    ExitCode.ADDRESS_IN_USE: "another program holds this port; pick another or stop it",
    ExitCode.PERMISSION_DENIED: "ports below 1024 need root; try a port above 1024",
    ExitCode.HOST_NOT_FOUND: "check the spelling, or give an IP address",
    ExitCode.TIMEOUT: "the peer may be down or filtered; raise the timeout to wait longer",
}


def explain(exc: BaseException, doing: str) -> NetassistError:
    """Turn an OS-level failure into a :class:`NetassistError` with one clear line.

    ``doing`` says what was being attempted, for example ``"connecting to 127.0.0.1:9"``;
    the line reads ``"<doing>: <what went wrong> (<what to do>)"``.
    """
    if isinstance(exc, NetassistError):
        return exc
    if isinstance(exc, socket.gaierror):
        code, what = ExitCode.HOST_NOT_FOUND, "host not found"
    elif isinstance(exc, TimeoutError | socket.timeout):
        code, what = ExitCode.TIMEOUT, "timed out"
    elif isinstance(exc, OSError) and exc.errno in _ERRNO_CODES:
        code, what = _ERRNO_CODES[exc.errno]
    elif isinstance(exc, OSError):
        code, what = ExitCode.ERROR, (exc.strerror or str(exc)).lower()
    else:
        code, what = ExitCode.ERROR, str(exc) or type(exc).__name__
    if (
        doing.startswith(("opening", "reading", "writing", "creating"))
        and code is ExitCode.PERMISSION_DENIED
    ):
        hint = "check the file's permissions"
    else:
        hint = _HINTS.get(code)
    line = f"{doing}: {what}" + (f" ({hint})" if hint else "")
    return NetassistError(line, code)
