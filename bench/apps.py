"""The applications every server in bench/ runs: the same 13-byte hello world, and a Flask
route (``flask_json``: ``GET /json/<int:n>`` answered with ``jsonify``), a real app's cost."""

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


def __getattr__(name: str):
    """``flask_json``, made on first use, so that serving hello never imports Flask."""
    if name != "flask_json":
        raise AttributeError(name)
    from flask import Flask, jsonify

    app = Flask("bench")

    @app.get("/json/<int:n>")
    def numbers(n: int):
        return jsonify(n=n, square=n * n, name="netassist")

    globals()["flask_json"] = app
    return app
