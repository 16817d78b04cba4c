"""The access log's formats and the log files (``server/logs.py``), without a server."""

from __future__ import annotations

import base64
import os
import re

import pytest

from netassist.server.config import COMBINED_FORMAT
from netassist.server.logs import Entry, LogFile, compile_format


def entry(**changes) -> Entry:
    values = {
        "method": "GET",
        "target": "/a/b?q=1",
        "version": "1.1",
        "status": "200 OK",
        "sent": 13,
        "started": 1_700_000_000.25,
        "took": 0.001234,
        "request_headers": [(b"Referer", b"http://x/"), (b"User-Agent", b"curl/8.0")],
        "response_headers": [("Content-Type", "text/plain"), ("X-Id", "42")],
        "environ": {"REMOTE_ADDR": "203.0.113.7", "PATH_INFO": "/a/b"},
    }
    values.update(changes)
    return Entry(**values)


def test_the_combined_format_is_what_log_tools_read():
    line = compile_format(COMBINED_FORMAT)(entry())
    # GoAccess's and AWStats' "COMBINED": host ident user [time] "request" status bytes
    # "referer" "agent".
    pattern = (
        r"203\.0\.113\.7 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"GET /a/b\?q=1 HTTP/1\.1" 200 13 "http://x/" "curl/8\.0"'
    )
    assert re.fullmatch(pattern, line), line


def test_other_fields():
    line = compile_format("%D %T %m %U %q %H %{X-Id}o %{referer}i %{PATH_INFO}e %% %B %P")(
        entry(took=2.5)
    )
    assert line == f"2500000 2 GET /a/b ?q=1 HTTP/1.1 42 http://x/ /a/b % 13 {os.getpid()}"


def test_missing_values_are_a_dash():
    line = compile_format("%b %{X-None}i %{X-None}o %{NONE}e %h %u")(
        entry(sent=0, environ={"REMOTE_ADDR": ""})
    )
    assert line == "- - - - - -"


def test_basic_auth_user():
    auth = b"Basic " + base64.b64encode(b"alice:secret")
    line = compile_format("%u")(entry(request_headers=[(b"Authorization", auth)]))
    assert line == "alice"


def test_what_a_client_sends_cannot_forge_a_line_or_a_field():
    hostile = entry(
        target='/x" 200 1 "-" "-"\n203.0.113.1 - - [x] "GET /admin',
        request_headers=[(b"User-Agent", "中\x1b[31m\\".encode())],
    )
    line = compile_format(COMBINED_FORMAT)(hostile)
    assert "\n" not in line and "\x1b" not in line
    assert '/x\\" 200 1 \\"-\\" \\"-\\"\\x0a203.0.113.1' in line
    assert line.endswith('"\\xe4\\xb8\\xad\\x1b[31m\\\\"')


@pytest.mark.parametrize("bad", ["%Z", "%", "100%", "%{}i", "%{X}z", "%>x"])
def test_an_unknown_field_is_refused(bad):
    with pytest.raises(ValueError, match=r"known field|names no header"):
        compile_format(bad)


def test_reopen_writes_into_the_new_file_after_a_move(tmp_path):
    path = tmp_path / "access.log"
    log = LogFile(str(path))
    log.write("first\n")
    path.rename(tmp_path / "access.log.1")  # what logrotate does
    log.write("second\n")  # still the old file, until told
    log.reopen()
    log.write("third\n")
    log.close()
    assert (tmp_path / "access.log.1").read_text() == "first\nsecond\n"
    assert path.read_text() == "third\n"
