"""The WSGI server: strict HTTP/1.1, a fast worker, and :func:`serve`."""

from __future__ import annotations

from collections.abc import Callable

from netassist.server.config import Bind, ServerConfig


def serve(app: Callable | str, **settings: object) -> None:
    """Serve a WSGI application until TERM or Ctrl-C.

    ``app`` is the application, or a ``"module:name"`` string that each worker imports
    (``preload=True``: the master, once). ``settings`` are those of
    :class:`ServerConfig` (``binds=["127.0.0.1:8000"]``, ``threads=4``, ``keep_alive=5``...,
    and the request limits such as ``max_body``); the command line builds the same object.
    """
    from netassist.server import arbiter

    if "bind" in settings:
        settings["binds"] = settings.pop("bind")
    config = ServerConfig.create(**settings)
    arbiter.run(app, config)


__all__ = ["Bind", "ServerConfig", "serve"]
