"""Two cores, one behaviour: the compiled core (``netassist._speedups``) against the pure one.

The compiled parser of common heads and its response framing are compared with protocol.py's
on the corpus and on random and hostile heads; then two live servers, one per core, are sent
the same random and hostile requests over real sockets, and must answer with the same bytes
(the Date aside).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netassist.server import cores
from netassist.server.limits import Limits
from netassist.server.protocol import NEED_DATA, PAUSED, ProtocolError, Request, ServerConnection
from tests.conftest import NETASSIST, Proc
from tests.server.corpus import INVALID, VALID

speedups = cores.built()
pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled core is not built")

LIMITS = (8190, 32768, 8190, 100)

# --- random and hostile heads -----------------------------------------------------------------

METHODS = [b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]
METHODS += [b"CONNECT", b"PROPFIND", b"-BLARGH", b"get", b"G\tT", b""]
TARGETS = [b"/", b"/a/b?x=1&y=%2F", b"/%E4%B8%AD%20x", b"/%zz%4", b"/a%2", b"/a?", b"/?"]
TARGETS += [b"*", b"http://h.test/x?y", b"h.test:80", b"/#frag", b"/a b", b"/\x7f", b"/\xe4"]
TARGETS += [b"//x", b'/a"b', b"/{}", b"/a;b=c,d", b"/~user/@x:1!$&'()*+"]
VERSIONS = [b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1"]
NAMES = [b"Host", b"host", b"Content-Length", b"content-length", b"Transfer-Encoding"]
NAMES += [b"Connection", b"Expect", b"Upgrade", b"X-Forwarded-For", b"Forwarded", b"Cookie"]
NAMES += [b"X-Forwarded-Proto", b"Content-Type", b"User-Agent", b"Accept", b"X_Under", b"X-Dup"]
NAMES += [b"X-Dup", b"Referer", b"Date", b"TE", b"Bad Name", b"", b"X\x00", b"\xe4", b"Trailer"]
VALUES = [b"example.com", b"h.test:8080", b"[::1]:80", b"[v1.x]", b"a b", b"a,b", b"", b" "]
VALUES += [b"0", b"00", b"12", b"-0", b"+0", b"0x0", b"chunked", b"gzip, chunked", b"close"]
VALUES += [b"keep-alive", b"Keep-Alive", b"upgrade", b"keep-alive, close", b"100-continue"]
VALUES += [b"a=1; b=2", b"v\x00", b"v\x7f", b"\xe4\xb8\xad", b"  padded  ", b"\tx\t", b"x:y"]
SEPARATORS = [b": ", b": ", b":", b" : ", b":\t", b":  "]
ENDINGS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\r\n"]


@st.composite
def heads(draw) -> bytes:
    """A request head: mostly well-formed, with hostile bytes in any part."""

    def ending() -> bytes:
        return draw(st.sampled_from(ENDINGS))

    target = draw(st.sampled_from(TARGETS) | st.binary(min_size=1, max_size=10).map(b"/".__add__))
    line = b" ".join([draw(st.sampled_from(METHODS)), target, draw(st.sampled_from(VERSIONS))])
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(NAMES),
                st.sampled_from(SEPARATORS),
                st.sampled_from(VALUES) | st.binary(max_size=6),
            ),
            max_size=7,
        )
    )
    if draw(st.integers(0, 4)):
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", b": ", b"example.com"))
    text = draw(st.sampled_from([b"", b"", b"", b"\r\n"])) + line + ending()
    return text + b"".join(name + sep + value + ending() for name, sep, value in fields) + b"\r\n"


def parsed(raw: bytes, compiled: bool, limits: Limits | None = None) -> list:
    """What protocol.py makes of ``raw`` (fed whole, then more is awaited): each request's
    fields, then the status of the error, if any."""
    conn = ServerConnection(limits, compiled=compiled and speedups.parse_head)
    seen: list = []
    first = True
    for _ in range(10):
        try:
            # The worker's way first: a whole head alone goes to receive_head.
            event = (first and conn.receive_head(raw)) or conn.next_event()
        except ProtocolError as error:
            return [*seen, error.status]
        first = False
        if isinstance(event, Request):
            fields = ("method", "target", "version", "headers", "keep_alive", "content_length")
            fields += ("chunked", "expect_continue", "has_body")
            seen.append(tuple(getattr(event, name) for name in fields))
            continue
        if event is PAUSED:
            conn.whole_response("200 OK", [("Content-Length", "0")], b"")
            if not conn.keep_alive:
                break
            conn.start_next_cycle()
            continue
        if event is NEED_DATA:
            break
    return seen


COMMON = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"HEAD /a?b=c HTTP/1.1\r\nHost: [::1]:8000\r\nAccept: */*\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Type: text/plain\r\n\r\n",
    b"GET /%E4%B8%AD HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nX-Y:  v  \r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nhost: h\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("raw", COMMON)
def test_the_compiled_parser_takes_the_common_heads(raw):
    assert speedups.parse_head(raw, raw.find(b"\r\n"), LIMITS) is not None
    assert parsed(raw, compiled=True) == parsed(raw, compiled=False)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \xe4\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n",
    ],
)
def test_the_compiled_parser_hands_the_rest_to_python(raw):
    assert speedups.parse_head(raw, raw.find(b"\r\n"), LIMITS) is None


def test_the_compiled_parser_checks_the_limits_as_python_does():
    raw = b"GET /" + b"a" * 20 + b" HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"
    line_end = raw.find(b"\r\n")
    assert speedups.parse_head(raw, line_end, (line_end, 1000, 1000, 3)) is not None
    assert speedups.parse_head(raw, line_end, (line_end - 1, 1000, 1000, 3)) is None
    assert speedups.parse_head(raw, line_end, (line_end, 1000, 1000, 2)) is None
    for limits, status in [
        (Limits(max_request_line=line_end - 1), 414),
        (Limits(max_header_count=2), 431),
        (Limits(max_header_bytes=30), 431),
        (Limits(max_header_field=4), 431),
    ]:
        assert parsed(raw, compiled=True, limits=limits) == [status]
        assert parsed(raw, compiled=False, limits=limits) == [status]


@pytest.mark.parametrize("case", VALID + INVALID, ids=lambda c: c.name)
def test_the_corpus_parses_alike(case):
    assert parsed(case.raw, compiled=True) == parsed(case.raw, compiled=False)


LIMIT_CHOICES = st.builds(
    Limits,
    max_request_line=st.sampled_from([8, 24, 8190]),
    max_header_bytes=st.sampled_from([40, 80, 32768]),
    max_header_field=st.sampled_from([6, 20, 8190]),
    max_header_count=st.sampled_from([1, 3, 100]),
)


@settings(max_examples=600, deadline=None)
@given(heads(), st.none() | LIMIT_CHOICES)
def test_random_and_hostile_heads_parse_alike(raw, limits):
    assert parsed(raw, compiled=True, limits=limits) == parsed(raw, compiled=False, limits=limits)


# --- response framing -------------------------------------------------------------------------

STATUSES = ["200 OK", "404 Not Found", "204 No Content", "304 Not Modified", "100 Continue"]
STATUSES += ["200", "200 ", "600 X", "20 OK", "200 OK\r\nX: y", "200 \u00d6k", "199 x", "500 E"]
FIELD_NAMES = ["Content-Type", "Content-Length", "content-length", "Connection", "Date"]
FIELD_NAMES += ["Server", "Transfer-Encoding", "Keep-Alive", "X-A", "Bad Name", "", "X\u4e2d"]
FIELD_VALUES = ["text/plain", "0", "5", "13", "abc", "", "a\r\nb", "x\x00", "close", "\u00e9"]
FIELD_VALUES += [" 5", "\u00b2", "Tue, 01 Dec 2026 00:00:00 GMT", "x\x7fy"]
DATE = re.compile(rb"Date: [^\r]*\r\n")


def _request(method: str, version: str) -> ServerConnection:
    conn = ServerConnection(compiled=False)
    keep = b"Connection: keep-alive\r\n" if version == "1.0" else b""
    conn.receive_data(
        b"%s / HTTP/%s\r\nHost: h\r\n%s\r\n" % (method.encode(), version.encode(), keep)
    )
    assert isinstance(conn.next_event(), Request)
    return conn


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(STATUSES),
    st.lists(st.tuples(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_VALUES)), max_size=5),
    st.binary(max_size=40) | st.sampled_from([b"", b"hello"]),
    st.sampled_from(["GET", "HEAD", "POST"]),
    st.sampled_from(["1.1", "1.0"]),
)
def test_the_compiled_framing_is_whole_responses(status, headers, body, method, version):
    conn = _request(method, version)
    framed = speedups.frame_whole(status, headers, body, method == "HEAD", version == "1.1", "nx")
    conn.server_name = "nx"
    try:
        expected = conn.whole_response(status, headers, body)
    except ValueError:
        expected = None
    if framed is not None:  # what the compiled core sends, protocol.py sends the same way
        assert expected is not None
        assert conn.keep_alive
        assert DATE.sub(b"", framed) == DATE.sub(b"", expected)
        assert len(DATE.findall(framed)) == len(DATE.findall(expected)) >= 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "method", "version"),
    [
        (
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", "5")],
            b"hello",
            "GET",
            "1.1",
        ),
        ("200 OK", [("Content-Type", "text/plain")], b"hello", "GET", "1.1"),
        ("200 OK", [], b"", "GET", "1.1"),
        ("404 Not Found", [("Content-Length", "5")], b"hello", "HEAD", "1.1"),
        ("304 Not Modified", [("ETag", '"x"')], b"", "GET", "1.0"),
        ("200 OK", [("Content-Length", "3"), ("Date", "x"), ("Server", "y")], b"abc", "GET", "1.0"),
    ],
)
def test_the_compiled_framing_takes_the_common_responses(status, headers, body, method, version):
    framed = speedups.frame_whole(status, headers, body, method == "HEAD", version == "1.1", "nx")
    assert framed is not None
    conn = _request(method, version)
    conn.server_name = "nx"
    assert DATE.sub(b"", framed) == DATE.sub(b"", conn.whole_response(status, headers, body))


# --- two live servers, one per core -------------------------------------------------------------


def _start(core: str, *args: str) -> tuple[Proc, int]:
    env = dict(os.environ, NETASSIST_PURE="1" if core == "pure" else "0")
    command = [*NETASSIST, "run", "tests.server.apps:environ", "--bind", "127.0.0.1:0", *args]
    proc = Proc(command, env=env)
    try:
        match = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+) .* with the (\S+) ")
    except AssertionError:
        proc.stop()
        raise
    assert match.group(2) == {"pure": "pure-Python", "compiled": "compiled"}[core], match.group(0)
    return proc, int(match.group(1))


@pytest.fixture(scope="module", params=[("--threads", "1"), ("--threads", "2")], ids=str)
def two_servers(request) -> Iterator[tuple[int, int]]:
    """A pure and a compiled server of the environ app; their ports."""
    pure, pure_port = _start("pure", *request.param)
    try:
        compiled, compiled_port = _start("compiled", *request.param)
    except BaseException:
        pure.stop()
        raise
    yield pure_port, compiled_port
    for proc in (pure, compiled):
        proc.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the server closes; the Date lines dropped."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return DATE.sub(b"Date: -\r\n", b"".join(chunks))


@pytest.mark.integration
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(heads(), min_size=1, max_size=3),
    st.sampled_from([b"", b"", b"hello, body", b"5\r\nhello\r\n0\r\n\r\n"]),
    st.sampled_from(["", "?chunked", "?gen", "?gen-chunked-split", "?gen-split", "?gen-late"])
    | st.sampled_from(["?gen-many", "?gen-chunked-many", "?gen-fail", "?gen-chunked-fail"]),
)
def test_both_cores_answer_random_and_hostile_requests_alike(two_servers, requests, body, query):
    requests[0] = requests[0].replace(b" / ", b" /%s " % query.encode(), 1)
    data = requests[0] + body + b"".join(requests[1:])
    pure_port, compiled_port = two_servers
    assert exchange(compiled_port, data) == exchange(pure_port, data)


@pytest.mark.integration
@pytest.mark.parametrize("raw", COMMON + [case.raw for case in VALID + INVALID])
def test_both_cores_answer_the_corpus_alike(two_servers, raw):
    pure_port, compiled_port = two_servers
    assert exchange(compiled_port, raw) == exchange(pure_port, raw)


@pytest.mark.integration
def test_the_compiled_core_serves_the_common_request_itself(netassist):
    """The differential tests would pass if the compiled core handed everything back."""
    callers = {}
    for core in ("compiled", "pure"):
        env = dict(os.environ, NETASSIST_PURE="1" if core == "pure" else "0")
        proc = netassist("run", "tests.server.apps:raw", "--bind", "127.0.0.1:0", env=env)
        port = int(proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        answer = exchange(port, b"GET /caller HTTP/1.1\r\nHost: h\r\n\r\n")
        callers[core] = answer.rpartition(b"\r\n\r\n")[2]
        proc.stop()
    # From the compiled core the app's caller is the worker's Python that called the core:
    # _accept reads a new connection's first request at once.
    assert callers == {"compiled": b"_accept", "pure": b"_call_app"}


@pytest.mark.integration
def test_the_build_without_a_compiler_is_pure_python(tmp_path):
    """``pip wheel`` where no C compiler runs: the build succeeds, the pure core serves."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"), PIP_NO_INPUT="1")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), root],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert "the compiled core was not built" in built.stderr + built.stdout
    wheels = list(tmp_path.glob("netassist-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert "netassist/server/protocol.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))]
