"""The applications every server in bench/ runs: the same 13-byte hello world."""

from __future__ import annotations

BODY = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ, start_response):
    """WSGI hello world: 13-byte text/plain body with Content-Length."""
    start_response("200 OK", HEADERS)
    return [BODY]


async def asgi_hello(scope, receive, send):
    """The same for ASGI servers (uvicorn)."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})
