"""StaticFiles hands large bodies to the server's ``wsgi.file_wrapper`` without asking which
server runs it: whatever the wrapper does with the file, a range stays a range."""

from __future__ import annotations

import os
from wsgiref.util import FileWrapper as WsgirefWrapper

import pytest

from netassist.server.wsgi import FileWrapper as NetassistWrapper
from netassist.static import StaticFiles

SIZE = 300_000  # above the size sent whole with the head


@pytest.fixture
def app(tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(SIZE))
    return StaticFiles(tmp_path)


def _environ(wrapper, software: str, range_header: str | None) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/big.bin",
        "RAW_URI": "/big.bin",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": software,
        "wsgi.file_wrapper": wrapper,
    }
    if range_header:
        environ["HTTP_RANGE"] = range_header
    return environ


def _get(app, wrapper, software: str, range_header: str | None) -> tuple[str, dict, bytes]:
    environ = _environ(wrapper, software, range_header)
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, dict(headers)

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        body.close()
    return got["status"], got["headers"], data


@pytest.mark.parametrize("wrapper", [WsgirefWrapper, NetassistWrapper, None])
@pytest.mark.parametrize("software", ["netassist", "wsgiref/0.2"])
@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("100-199", 100, 199), ("1000-", 1000, SIZE - 1), (None, 0, SIZE - 1)],
)
def test_a_range_read_through_any_wrapper_is_exactly_the_range(
    app, tmp_path, wrapper, software, spec, start, end
):
    # Before, under a server calling itself "netassist" a middle range went to the wrapper as
    # the bare file: a wrapper that reads (any but netassist's own) sent the rest of the file.
    data = (tmp_path / "big.bin").read_bytes()
    status, headers, body = _get(app, wrapper, software, spec and f"bytes={spec}")
    assert status == ("206 Partial Content" if spec else "200 OK")
    assert headers["Content-Length"] == str(end - start + 1)
    assert body == data[start : end + 1]


def test_the_body_is_the_servers_wrapper_when_there_is_one(app):
    environ = _environ(NetassistWrapper, "any", "bytes=10-20")
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        assert type(body) is NetassistWrapper
        # What a sendfile server reads from it: the file's descriptor and the range's start.
        assert body.filelike.tell() == 10
        assert os.fstat(body.filelike.fileno()).st_size == SIZE
    finally:
        body.close()
