"""The file server's lines: to a stream in the servers' log format, or to logging."""

from __future__ import annotations

import io
import logging
import re

from netassist.transfer.serverlog import ServerLog

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] (INFO|WARNING) netassist\.files: ")


def test_lines_go_to_the_stream_in_the_log_format():
    stream = io.StringIO()
    log = ServerLog(stream)
    log.info("%s get %s: sent %s bytes", "127.0.0.1:5", "a.txt", "1,234")
    log.warning("disk full")
    first, second = stream.getvalue().splitlines()
    assert LINE.match(first) and first.endswith(
        "INFO netassist.files: 127.0.0.1:5 get a.txt: sent 1,234 bytes"
    )
    assert LINE.match(second) and second.endswith("WARNING netassist.files: disk full")


def test_quiet_keeps_only_warnings():
    stream = io.StringIO()
    log = ServerLog(stream, quiet=True)
    log.info("connected")
    log.warning("disk full")
    assert stream.getvalue().count("\n") == 1 and "disk full" in stream.getvalue()


def test_without_a_stream_lines_go_to_the_logger(caplog):
    with caplog.at_level(logging.INFO, logger="netassist.files"):
        ServerLog().info("%s connected", "127.0.0.1:5")
    assert caplog.records[0].getMessage() == "127.0.0.1:5 connected"


def test_a_closed_stream_does_not_stop_the_server():
    stream = io.StringIO()
    stream.close()
    ServerLog(stream).info("still serving")  # nothing raised
