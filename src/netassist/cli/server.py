"""``netassist run MODULE:APP``: the WSGI server. Flags follow gunicorn where it has them."""

from __future__ import annotations

import argparse
import logging
import os

from netassist.errors import ExitCode


def add_common_server_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs the HTTP server shares (run, serve)."""
    p.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="ADDRESS",
        help="HOST:PORT, [V6]:PORT or unix:PATH; repeatable (default 127.0.0.1:8000)",
    )
    p.add_argument("-w", "--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--threads", type=int, default=1, help="threads per worker; 1 runs inline (default)"
    )
    p.add_argument(
        "--access-log",
        metavar="FILE",
        help="log each request to FILE, or - for stderr (default: none)",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument(
        "--busy-poll",
        type=int,
        default=0,
        metavar="USEC",
        help="keep polling this many microseconds after the last event before sleeping: "
        "lower latency for sparse traffic, for CPU (--threads 1 only; default 0, off)",
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
    p.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before a silent worker is replaced",
    )
    p.add_argument(
        "--keep-alive", type=float, default=5.0, help="idle seconds allowed between requests"
    )
    p.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds to read one request head"
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds without progress while a body arrives",
    )
    p.add_argument(
        "--send-timeout", type=float, default=30.0, help="seconds without progress while sending"
    )
    p.add_argument("--max-connections", type=int, default=10_000, help="connections per worker")
    p.add_argument("--backlog", type=int, default=2048, help="the listen backlog")
    p.add_argument("--max-request-line", type=int, default=8190, help="bytes; longer gets 414")
    p.add_argument(
        "--max-header-bytes", type=int, default=32768, help="bytes of a request head; more gets 431"
    )
    p.add_argument("--max-header-count", type=int, default=100, help="header fields; more gets 431")
    p.add_argument(
        "--max-body", type=int, default=1 << 30, help="request body bytes; more gets 413"
    )
    p.add_argument(
        "--script-name", default=os.environ.get("SCRIPT_NAME", ""), help="mount point, as in /app"
    )
    p.add_argument("--chdir", metavar="DIR", help="import the application from DIR")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``netassist run``."""
    # Imported here: other commands start without loading the server.
    from netassist.server import arbiter
    from netassist.server.config import ServerConfig
    from netassist.server.loader import load_app

    configure_logging(args.log_level)
    config = ServerConfig.create(
        binds=args.bind or ["127.0.0.1:8000"],
        workers=args.workers,
        threads=args.threads,
        timeout=args.timeout,
        keep_alive=args.keep_alive,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        send_timeout=args.send_timeout,
        max_connections=args.max_connections,
        backlog=args.backlog,
        max_request_line=args.max_request_line,
        max_header_bytes=args.max_header_bytes,
        max_header_count=args.max_header_count,
        max_body=args.max_body,
        script_name=args.script_name,
        access_log=args.access_log,
        busy_poll=args.busy_poll,
    )
    if args.chdir:
        os.chdir(args.chdir)
    app = load_app(args.app)
    arbiter.run(app, config)
    return ExitCode.OK
