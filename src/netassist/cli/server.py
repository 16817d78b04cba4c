"""``netassist run MODULE:APP``: the WSGI server. Flags follow gunicorn where it has them.

Every default comes from :class:`~netassist.server.config.ServerConfig` (and its request
limits), the settings object the Python API uses too, so the two cannot drift; ``--help``
shows them.
"""

from __future__ import annotations

import argparse
import logging
import os

from netassist.errors import ExitCode
from netassist.server.config import Bind, ServerConfig

_DEFAULTS = ServerConfig()

# (flags, setting, type, metavar, help): the server's settings as flags. A setting of the
# request limits is looked up in ServerConfig.limits.
_SETTINGS: list[tuple[tuple[str, ...], str, type, str, str]] = [
    (("-w", "--workers"), "workers", int, "N", "worker processes"),
    (("--threads",), "threads", int, "N", "threads per worker; 1 calls the app inline"),
    (
        ("--busy-poll",),
        "busy_poll",
        int,
        "USEC",
        "keep polling this many microseconds after the last event before sleeping: lower "
        "latency for sparse traffic, for CPU (--threads 1 only; 0 is off)",
    ),
    (("--keep-alive",), "keep_alive", float, "SECONDS", "idle time allowed between requests"),
    (("--header-timeout",), "header_timeout", float, "SECONDS", "time to read one request head"),
    (("--body-timeout",), "body_timeout", float, "SECONDS", "time without progress in a body"),
    (("--send-timeout",), "send_timeout", float, "SECONDS", "time without progress sending"),
    (("--max-connections",), "max_connections", int, "N", "connections per worker"),
    (("--backlog",), "backlog", int, "N", "the listen backlog"),
    (("--max-request-line",), "max_request_line", int, "BYTES", "longer gets 414"),
    (("--max-header-bytes",), "max_header_bytes", int, "BYTES", "a whole request head; more: 431"),
    (("--max-header-field",), "max_header_field", int, "BYTES", "one header field; more: 431"),
    (("--max-header-count",), "max_header_count", int, "N", "header fields; more gets 431"),
    (("--max-body",), "max_body", int, "BYTES", "request body; more gets 413"),
]


def _default(setting: str) -> object:
    if hasattr(_DEFAULTS, setting):
        return getattr(_DEFAULTS, setting)
    return getattr(_DEFAULTS.limits, setting)


def add_common_server_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs the HTTP server shares (run, serve)."""
    p.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="ADDRESS",
        help="HOST:PORT, [V6]:PORT, PORT or :PORT (on 127.0.0.1), "
        f"HOST (port {Bind().port}) or "
        "unix:PATH; 0.0.0.0 or :: for every interface; repeatable "
        f"(default {', '.join(str(b) for b in _DEFAULTS.binds)})",
    )
    p.add_argument(
        "--access-log",
        metavar="FILE",
        default=_DEFAULTS.access_log,
        help="log each request to FILE, or - for stderr (default: none)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="how much the server says on stderr (default info)",
    )
    for flags, setting, kind, metavar, text in _SETTINGS:
        p.add_argument(
            *flags,
            type=kind,
            default=_default(setting),
            metavar=metavar,
            help=f"{text} (default %(default)s)",
        )
    p.add_argument(
        "--script-name",
        metavar="PATH",
        default=os.environ.get("SCRIPT_NAME", _DEFAULTS.script_name),
        help="mount point, as in /app (default: $SCRIPT_NAME, else none)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The validated settings the options of :func:`add_common_server_options` give."""
    return ServerConfig.create(
        binds=args.bind or _DEFAULTS.binds,
        access_log=args.access_log,
        script_name=args.script_name,
        **{setting: getattr(args, setting) for _, setting, *_ in _SETTINGS},
    )


def configure_logging(level: str) -> None:
    """Server logs on stderr, one line each, at ``level``."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
    )


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
    p = commands.add_parser("run", help="serve a WSGI application (Flask, Django, Bottle, ...)")
    p.add_argument(
        "app",
        metavar="MODULE:APP",
        help="the application, as in myapp:app or pkg.wsgi:create_app()",
    )
    add_common_server_options(p)
    p.add_argument("--chdir", metavar="DIR", help="import the application from DIR")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``netassist run``."""
    # Imported here: other commands start without loading the server.
    from netassist.server import arbiter
    from netassist.server.loader import load_app

    configure_logging(args.log_level)
    config = config_from_args(args)
    if args.chdir:
        os.chdir(args.chdir)
    app = load_app(args.app)
    arbiter.run(app, config)
    return ExitCode.OK
