"""``netassist run MODULE:APP``: the WSGI server. Flags follow gunicorn where it has them.

Every default comes from :class:`~netassist.server.config.ServerConfig` (and its request
limits), the settings object the Python API uses too, so the two cannot drift; ``--help``
shows them. A flag that is not given leaves its setting to ``--config FILE`` and the
``NETASSIST_*`` environment variables (``ServerConfig.load`` layers them).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable

from netassist.errors import ExitCode
from netassist.server.config import FROM_TEXT, LOG_LEVELS, Bind, ServerConfig

_DEFAULTS = ServerConfig()

# (flags, setting, metavar, help): the server's settings as flags. A setting of the
# request limits is looked up in ServerConfig.limits; each is read by config.FROM_TEXT.
_SETTINGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("-w", "--workers"), "workers", "N|auto", "worker processes; auto: one per usable core"),
    (("--threads",), "threads", "N", "threads per worker; 1 calls the app inline"),
    (
        ("--busy-poll",),
        "busy_poll",
        "USEC",
        "keep polling this many microseconds after the last event before sleeping: lower "
        "latency for sparse traffic, for CPU (--threads 1 only; 0 is off)",
    ),
    (("--keep-alive",), "keep_alive", "SECONDS", "idle time allowed between requests"),
    (("--header-timeout",), "header_timeout", "SECONDS", "time to read one request head"),
    (("--body-timeout",), "body_timeout", "SECONDS", "time without progress in a body"),
    (("--send-timeout",), "send_timeout", "SECONDS", "time without progress sending"),
    (
        ("-t", "--timeout"),
        "timeout",
        "SECONDS",
        "a worker silent this long (an app stuck in a request) is killed and replaced, and "
        "the request named in the log; 0: never",
    ),
    (
        ("--graceful-timeout",),
        "graceful_timeout",
        "SECONDS",
        "on TERM, HUP or retirement, how long requests in progress may take to finish",
    ),
    (
        ("--max-requests",),
        "max_requests",
        "N",
        "a worker retires after this many requests, its replacement already serving; 0: never",
    ),
    (
        ("--max-requests-jitter",),
        "max_requests_jitter",
        "N",
        "each worker retires after a random count in [N, N+this], so they do not all at once",
    ),
    (("--max-connections",), "max_connections", "N", "connections per worker"),
    (("--backlog",), "backlog", "N", "the listen backlog"),
    (("--max-request-line",), "max_request_line", "BYTES", "longer gets 414"),
    (("--max-header-bytes",), "max_header_bytes", "BYTES", "a whole request head; more: 431"),
    (("--max-header-field",), "max_header_field", "BYTES", "one header field; more: 431"),
    (("--max-header-count",), "max_header_count", "N", "header fields; more gets 431"),
    (("--max-body",), "max_body", "BYTES", "request body; more gets 413"),
    (
        ("--umask",),
        "umask",
        "MODE",
        "octal umask of unix: sockets, who may connect (007: owner and group); "
        "default: the process's",
    ),
    (("--pid",), "pid", "FILE", "write the master's pid here; refused while it names a live one"),
    (("--access-log",), "access_log", "FILE", "log each request to FILE, or - for stderr"),
    (
        ("--access-log-format",),
        "access_log_format",
        "FORMAT",
        "Apache-style fields: %%h %%t %%r %%>s %%b %%D (microseconds), %%{Header}i, "
        "%%{Header}o ... (default: the combined format)",
    ),
    (("--error-log",), "error_log", "FILE", "where the server's own messages go; - is stderr"),
    (
        ("--forwarded-allow-ips",),
        "forwarded_allow_ips",
        "LIST",
        "peers whose X-Forwarded-For/-Proto and Forwarded are believed: addresses, networks, "
        "unix (a unix: socket's peers) or *, comma-separated; removed from all others",
    ),
    (("--certfile",), "certfile", "FILE", "serve TLS with this certificate (PEM)"),
    (("--keyfile",), "keyfile", "FILE", "the certificate's private key (PEM)"),
]
# Settings whose help says its own default.
_NO_DEFAULT_SHOWN = frozenset({"umask", "access_log_format"})


def _default(setting: str) -> object:
    if hasattr(_DEFAULTS, setting):
        value = getattr(_DEFAULTS, setting)
    else:
        value = getattr(_DEFAULTS.limits, setting)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else value


def _reader(setting: str) -> Callable[[str], object]:
    convert = FROM_TEXT[setting]

    def read(text: str) -> object:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    read.__name__ = setting.replace("_", "-")  # what argparse names in its errors
    return read


def add_common_server_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs the HTTP server shares (run, serve)."""
    p.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="ADDRESS",
        help="HOST:PORT, [V6]:PORT, PORT or :PORT (on 127.0.0.1), "
        f"HOST (port {Bind().port}), unix:PATH or fd://N (an inherited socket); "
        "0.0.0.0 or :: for every interface; repeatable "
        f"(default {', '.join(str(b) for b in _DEFAULTS.binds)})",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="read settings from a TOML file (keys named as these flags); NETASSIST_* "
        "environment variables override it, and flags override both",
    )
    p.add_argument(
        "--log-level",
        type=_reader("log_level"),
        choices=LOG_LEVELS,
        help=f"the error log's level (default {_DEFAULTS.log_level})",
    )
    for flags, setting, metavar, text in _SETTINGS:
        shown = "" if setting in _NO_DEFAULT_SHOWN else f" (default {_default(setting)})"
        p.add_argument(
            *flags, dest=setting, type=_reader(setting), metavar=metavar, help=text + shown
        )
    p.add_argument(
        "--script-name",
        metavar="PATH",
        help="mount point, as in /app (default: $SCRIPT_NAME, else none)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The validated settings of the options of :func:`add_common_server_options` (and
    ``run``'s), over those of ``--config`` and the environment."""
    overrides: dict[str, object] = {}
    for setting in [s for _, s, _, _ in _SETTINGS] + ["log_level", "script_name", "preload"]:
        value = getattr(args, setting, None)
        if value is not None:
            overrides[setting] = value
    if getattr(args, "reload", None) is not None:
        overrides["reload"] = args.reload
    if args.bind:
        overrides["binds"] = args.bind
    return ServerConfig.load(file=args.config, environ=os.environ, **overrides)


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
    p.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        help="import the app once in the master before forking (less memory, faster forks; "
        "HUP then imports the app's own modules again in the master) (default: each worker "
        "imports it)",
    )
    p.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        help="for development: new workers whenever a Python file of the app changes",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``netassist run``."""
    # Imported here: other commands start without loading the server.
    from netassist.server import arbiter

    config = config_from_args(args)
    if args.chdir:
        os.chdir(args.chdir)
    arbiter.run(args.app, config, reconfigure=lambda: config_from_args(args))
    return ExitCode.OK


def log_when_ready(line: str, *values: object) -> Callable[[list[str]], None]:
    """An ``on_ready`` that logs one more line once the server listens."""
    return lambda addresses: logging.getLogger("netassist.server").info(line, *values)
