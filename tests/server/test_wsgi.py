"""PEP 3333 pieces without a server: start_response's rules (of both cores), the target
split, LiveInput."""

from __future__ import annotations

import sys

import pytest

from netassist.server import cores
from netassist.server.protocol import ProtocolError, ServerConnection
from netassist.server.wsgi import LiveInput, StartResponse, split_target


@pytest.fixture(params=["pure", "compiled"])
def start_type(request):
    """StartResponse of each core: wsgi.StartResponse and its compiled twin."""
    if request.param == "pure":
        return StartResponse
    speedups = cores.built()
    if speedups is None:
        pytest.skip("the compiled core is not built")
    return speedups.StartResponse


def _exc_info() -> tuple:
    try:
        raise ValueError("the app failed")
    except ValueError:
        return sys.exc_info()


def test_start_response_returns_write_and_keeps_status_and_headers(start_type):
    written = []
    start = start_type(written.append)
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"x")
    assert written == [b"x"]
    assert (start.status, start.headers) == ("200 OK", [("Content-Type", "text/plain")])


def test_a_second_call_without_exc_info_is_an_error(start_type):
    start = start_type(lambda data: None)
    start("200 OK", [])
    with pytest.raises(AssertionError):
        start("500 Internal Server Error", [])


def test_exc_info_before_the_head_went_out_replaces_the_response(start_type):
    start = start_type(lambda data: None)
    start("200 OK", [("X-A", "1")])
    start("500 Internal Server Error", [("X-B", "2")], _exc_info())
    assert (start.status, start.headers) == ("500 Internal Server Error", [("X-B", "2")])


def test_exc_info_after_the_head_went_out_raises_the_apps_exception(start_type):
    start = start_type(lambda data: None)
    start("200 OK", [])
    start.headers_sent = True
    info = _exc_info()
    with pytest.raises(ValueError, match="the app failed") as raised:
        start("500 Internal Server Error", [], info)
    assert raised.value is info[1]
    assert start.status == "200 OK"  # what went out stays what went out


def test_exc_info_as_the_first_call_is_a_plain_start(start_type):
    start = start_type(lambda data: None)
    start("500 Internal Server Error", [], _exc_info())
    assert start.status == "500 Internal Server Error"


@pytest.mark.parametrize(
    ("status", "headers"), [(b"200 OK", []), ("200 OK", ()), ("200 OK", None), (200, [])]
)
def test_start_response_wants_a_str_and_a_list(start_type, status, headers):
    with pytest.raises(TypeError):
        start_type(lambda data: None)(status, headers)


@pytest.mark.parametrize(
    ("target", "script_name", "expected"),
    [
        (b"/a/b?x=1", "", ("", "/a/b", "x=1")),
        (b"/app/a?x", "/app", ("/app", "/a", "x")),
        (b"/app", "/app", ("/app", "", "")),
        (b"/application", "/app", ("", "/application", "")),
        (b"/other/app", "/app", ("", "/other/app", "")),
        (b"/app/%E4%B8%AD%2F", "/app", ("/app", "/\xe4\xb8\xad/", "")),
        (b"http://h.example/p?q", "", ("", "/p", "q")),
        (b"http://h.example", "", ("", "/", "")),
        (b"*", "", ("", "*", "")),
    ],
)
def test_split_target(target, script_name, expected):
    assert split_target(target, script_name) == expected


def test_live_input_sends_100_continue_once_and_reads_what_arrives():
    proto = ServerConnection()
    proto.receive_data(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n"
    )
    proto.next_event()
    sent: list[bytes] = []
    arriving = [b"line one\n", b"abc"]
    live = LiveInput(proto, sent.append, lambda: arriving.pop(0))
    assert live.readline() == b"line one\n"
    assert sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert live.read() == b"abc"
    assert live.read() == b""
    assert sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_live_input_raises_when_the_body_is_cut_short():
    proto = ServerConnection()
    proto.receive_data(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"
    )
    proto.next_event()
    arriving = [b"abc", b""]
    live = LiveInput(proto, lambda data: None, lambda: arriving.pop(0))
    assert live.read(3) == b"abc"
    with pytest.raises(ProtocolError):
        live.read()


# --- proxy headers in the environ (forwarded.py's rules, as the builder applies them) -------


def _built(trusted: bool, headers: list[tuple[bytes, bytes]]) -> dict:
    from netassist.server.forwarded import TrustedPeers
    from netassist.server.protocol import Request
    from netassist.server.wsgi import EMPTY_INPUT, EnvironBuilder

    builder = EnvironBuilder(server_name="127.0.0.1", server_port="8000")
    if trusted:
        builder = builder.trusting(TrustedPeers(["127.0.0.1"]))
    base = builder.connection_base(("127.0.0.1", 5000))
    request = Request("GET", b"/", "1.1", [(b"Host", b"x"), *headers], True, None, False, False)
    return builder.build(base, request, EMPTY_INPUT, None)


PROXY_HEADERS = [
    (b"X-Forwarded-For", b"203.0.113.7"),
    (b"x-forwarded-proto", b"https"),
    (b"FORWARDED", b"for=198.51.100.1;proto=http"),
]


def test_a_peer_not_believed_never_puts_proxy_headers_in_the_environ():
    environ = _built(False, PROXY_HEADERS)
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED"} & set(environ)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "5000")
    assert environ["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("order", [PROXY_HEADERS, PROXY_HEADERS[::-1]], ids=["as-is", "reversed"])
def test_a_believed_peer_sets_the_client_whatever_the_order_of_its_headers(order):
    environ = _built(True, order)
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert environ["HTTP_FORWARDED"] == "for=198.51.100.1;proto=http"
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("203.0.113.7", "https")
    assert "REMOTE_PORT" not in environ


def test_repeated_x_forwarded_for_lines_make_one_chain():
    environ = _built(True, [(b"X-Forwarded-For", b"6.6.6.6"), (b"X-Forwarded-For", b"10.1.1.1")])
    assert environ["HTTP_X_FORWARDED_FOR"] == "6.6.6.6,10.1.1.1"
    assert environ["REMOTE_ADDR"] == "10.1.1.1"
