"""WSGI applications the server tests run with ``netassist run tests.server.apps:NAME``.

Every one is wrapped in ``wsgiref.validate.validator``, so each test also checks that the
server keeps PEP 3333 (the validator raises inside the app on any violation, which the
tests see as a 500).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
from wsgiref.validate import validator

CLOSE_MARKERS = os.environ.get("NETASSIST_TEST_CLOSE_DIR")


def _echo(environ, start_response):
    """Answer with JSON of what the app saw: method, paths, headers, body digest and size."""
    stream = environ["wsgi.input"]
    parts = []
    while chunk := stream.read(65536):  # the validator insists on a size
        parts.append(chunk)
    body = b"".join(parts)
    seen = {
        "method": environ["REQUEST_METHOD"],
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "raw_uri": environ["RAW_URI"],
        "protocol": environ["SERVER_PROTOCOL"],
        "remote_addr": environ["REMOTE_ADDR"],
        "remote_port": environ.get("REMOTE_PORT"),
        "scheme": environ["wsgi.url_scheme"],
        "server_name": environ["SERVER_NAME"],
        "server_port": environ["SERVER_PORT"],
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "input_terminated": environ.get("wsgi.input_terminated"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_size": len(body),
        "body_head": body[:64].decode("latin-1"),
    }
    payload = json.dumps(seen).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


def _stream(environ, start_response):
    """A body in pieces without Content-Length: chunked for HTTP/1.1, close for 1.0."""
    count = int(environ["QUERY_STRING"] or "5")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (f"piece {i}\n".encode() for i in range(count))


def _reader(environ, start_response):
    """Read the body with read(n), readline and iteration mixed, and report the digest."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    first = stream.readline(100)
    digest.update(first)
    while chunk := stream.read(65536):
        digest.update(chunk)
    payload = digest.hexdigest().encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _file(environ, start_response):
    """Send the file named by the query string through wsgi.file_wrapper."""
    handle = open(environ["QUERY_STRING"], "rb")  # noqa: SIM115 - the server closes it
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](handle, 1 << 20)


def _fail(environ, start_response):
    raise RuntimeError("boom: the application failed")


class _Tracked:
    """An iterable whose close() leaves a marker file, so tests can see it was called."""

    def __init__(self, name: str, fail: bool) -> None:
        self.name = name
        self.fail = fail

    def __iter__(self):
        yield b"first "
        if self.fail:
            raise ValueError("failing halfway")
        yield b"second"

    def close(self) -> None:
        if CLOSE_MARKERS:
            with open(os.path.join(CLOSE_MARKERS, self.name), "w") as marker:
                marker.write("closed")


def _tracked(environ, start_response):
    query = environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Tracked(query or "plain", fail=query.startswith("fail"))


def _slow(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or "0.2"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"slow"]


def _hold(environ, start_response):
    """Tell the test it is running (a connection to the port in the query string), and
    answer only once the test says so: synchronisation without sleeping."""
    with socket.create_connection(("127.0.0.1", int(environ["QUERY_STRING"])), timeout=60) as peer:
        peer.sendall(threading.current_thread().name.encode() + b"\n")
        peer.recv(1)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
    return [b"released"]


def _write(environ, start_response):
    """The legacy write() callable: the head and two pieces through it, one from the body."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    mode = environ["QUERY_STRING"]
    write(b"written ")
    if mode == "not-bytes":
        write("a str")  # must raise TypeError in the app
    write(b"twice, ")
    return [b"then returned"]


def _thread(environ, start_response):
    """The name of the thread that runs this request."""
    name = threading.current_thread().name.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(name)))])
    return [name]


def _pid(environ, start_response):
    """The process id of the worker that answers."""
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _caller(environ, start_response):
    """Which function called the app: ``_call_app`` when the Python path serves the request,
    the worker's function that called the compiled core when that does (C has no frame)."""
    frame = sys._getframe(1)
    while frame.f_code.co_name == "_router":
        frame = frame.f_back
    body = frame.f_code.co_name.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def big_body(size: int) -> bytes:
    """The body /big?SIZE answers: ``size`` bytes that differ from line to line."""
    lines = b"".join(b"%07d\n" % i for i in range(size // 8 + 1))
    return lines[:size]


def _big(environ, start_response):
    """``big_body(SIZE)`` for /big?SIZE, as one piece; without Content-Length (chunked) for
    /big?SIZE-chunked."""
    size, _, mode = environ["QUERY_STRING"].partition("-")
    body = big_body(int(size))
    headers = [("Content-Type", "application/octet-stream")]
    if mode != "chunked":
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


def _environ(environ, start_response):
    """Every str, bool and tuple of the environ but REMOTE_PORT and SERVER_PORT (which differ
    between connections and servers) and the body's digest, as JSON; chunked when the query
    holds "chunked", from a generator when it holds "gen" (_pieces). The differential tests
    compare both cores' answers to it byte for byte."""
    body = environ["wsgi.input"].read()
    seen = {
        key: value
        for key, value in sorted(environ.items())
        if key not in ("REMOTE_PORT", "SERVER_PORT") and isinstance(value, str | bool | tuple)
    }
    seen["body"] = hashlib.sha256(body).hexdigest()
    payload = json.dumps(seen).encode()
    headers = [("Content-Type", "application/json")]
    query = environ["QUERY_STRING"]
    if "chunked" not in query:
        headers.append(("Content-Length", str(len(payload))))
    if "gen" not in query:
        start_response("200 OK", headers)
        return [payload]
    return _pieces(query, start_response, headers, payload)


def _pieces(query, start_response, headers, payload):
    """The environ app's answer from a generator, in the ways the query asks for: start_response
    late (inside it), empty pieces, several pieces, many, or an error after the first."""
    if "late" not in query:
        start_response("200 OK", headers)
    yield b""
    if "late" in query:
        start_response("200 OK", headers)
    if "many" in query:
        yield from (payload[i : i + 7] for i in range(0, len(payload), 7))
        return
    if "split" in query:
        yield payload[:5]
        yield b""
        yield payload[5:]
    else:
        yield payload
    if "fail" in query:
        raise RuntimeError("the generator failed after its body")


def _router(environ, start_response):
    routes = {
        "/echo": _echo,
        "/hello": _hello,
        "/stream": _stream,
        "/read": _reader,
        "/file": _file,
        "/fail": _fail,
        "/tracked": _tracked,
        "/slow": _slow,
        "/thread": _thread,
        "/hold": _hold,
        "/write": _write,
        "/pid": _pid,
        "/caller": _caller,
        "/big": _big,
    }
    path = environ["PATH_INFO"]
    for prefix, handler in routes.items():
        if path.startswith(prefix):
            return handler(environ, start_response)
    return _echo(environ, start_response)


app = validator(_router)
hello = validator(_hello)
raw = _router  # the same routes without the validator (for speed or for raw-bytes paths)
environ = _environ
