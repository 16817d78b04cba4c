"""``netassist serve [DIR]``: a folder over HTTP, the command to use instead of
``python -m http.server``."""

from __future__ import annotations

import argparse
import os

from netassist.cli.server import add_common_server_options, config_from_args, log_when_ready
from netassist.errors import ExitCode, UsageError


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    p = commands.add_parser("serve", help="serve a folder over HTTP (ranges, ETags, listings)")
    p.add_argument(
        "directory", metavar="DIR", nargs="?", default=".", help="the folder (default: here)"
    )
    add_common_server_options(p)
    p.add_argument(
        "--no-listing", action="store_true", help="answer 404 for folders without index.html"
    )
    p.add_argument("--show-hidden", action="store_true", help="serve and list dot-files")
    p.add_argument(
        "--follow-symlinks", action="store_true", help="serve links that lead outside DIR"
    )
    p.add_argument(
        "--max-age",
        type=_seconds,
        metavar="SECONDS",
        help="Cache-Control max-age (default: no-cache)",
    )
    p.add_argument(
        "--charset",
        type=_charset,
        metavar="NAME",
        help="label every text file with this charset, HTML included (default: utf-8 for "
        "text; none for HTML and XML, so the page's own <meta charset> decides)",
    )
    p.add_argument(
        "--gzip",
        action="store_true",
        help="compress text files on the fly for clients that accept it",
    )
    p.set_defaults(handler=serve)


def _seconds(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds (0 or more)")
    return int(text)


def _charset(name: str) -> str:
    from netassist.static.types import check_charset

    try:
        return check_charset(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def serve(args: argparse.Namespace) -> int:
    """``netassist serve``."""
    # Imported here: other commands start without loading the server.
    from netassist.server import arbiter
    from netassist.static import StaticFiles

    if not os.path.isdir(args.directory):
        raise UsageError(f"{args.directory!r} is not a folder")
    config = config_from_args(args)
    app = StaticFiles(
        args.directory,
        listing=not args.no_listing,
        show_hidden=args.show_hidden,
        follow_symlinks=args.follow_symlinks,
        max_age=args.max_age,
        gzip=args.gzip,
        charset=args.charset,
    )
    folder = os.path.abspath(args.directory)
    arbiter.run(
        app,
        config,
        reconfigure=lambda: config_from_args(args),
        on_ready=log_when_ready("serving %s", folder),
    )
    return ExitCode.OK
