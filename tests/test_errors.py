"""OS failures become one line with a distinct exit code."""

from __future__ import annotations

import errno
import socket

from netassist.errors import ExitCode, explain


def test_each_expected_failure_has_its_own_code():
    cases = {
        ConnectionRefusedError(errno.ECONNREFUSED, "x"): ExitCode.CONNECTION_REFUSED,
        OSError(errno.EADDRINUSE, "x"): ExitCode.ADDRESS_IN_USE,
        PermissionError(errno.EACCES, "x"): ExitCode.PERMISSION_DENIED,
        socket.gaierror(-2, "Name or service not known"): ExitCode.HOST_NOT_FOUND,
        TimeoutError(): ExitCode.TIMEOUT,
        FileNotFoundError(errno.ENOENT, "x"): ExitCode.FILE,
    }
    for exc, code in cases.items():
        error = explain(exc, "doing it")
        assert error.exit_code == code
        assert str(error).startswith("doing it: ")
        assert "\n" not in str(error)
    assert len(set(cases.values())) == len(cases)


def test_message_says_what_to_do():
    error = explain(ConnectionRefusedError(errno.ECONNREFUSED, "x"), "connecting to 127.0.0.1:9")
    assert (
        str(error) == "connecting to 127.0.0.1:9: connection refused (is anything listening there?)"
    )
