"""``netassist files serve|ls|get``: file transfer over the netassist transfer protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from netassist import addresses
from netassist.cli.progress import TransferProgress
from netassist.errors import ExitCode, UsageError
from netassist.transfer import protocol as p
from netassist.transfer.client import Client, client_tls, shown


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``files`` command group."""
    files = commands.add_parser(
        "files", help="send and fetch files and folders, verified and resumable"
    )
    actions = files.add_subparsers(title="files commands", metavar="ACTION", required=True)

    s = actions.add_parser("serve", help="share a folder (read-only)")
    s.add_argument(
        "directory", metavar="DIR", nargs="?", default=".", help="the folder (default: here)"
    )
    s.add_argument(
        "-b",
        "--bind",
        default=f"127.0.0.1:{p.DEFAULT_PORT}",
        metavar="ADDRESS",
        help=f"where to listen: HOST:PORT, [V6]:PORT, PORT or :PORT (on 127.0.0.1), or HOST "
        f"(port {p.DEFAULT_PORT}); 0.0.0.0 or :: for every interface "
        f"(default 127.0.0.1:{p.DEFAULT_PORT})",
    )
    s.add_argument(
        "--token",
        default=os.environ.get("NETASSIST_TOKEN"),
        help="a shared secret clients must give",
    )
    s.add_argument("--max-clients", type=int, default=64)
    s.add_argument("--allow-upload", action="store_true", help="accept files sent with put")
    s.add_argument(
        "--show-hidden",
        action="store_true",
        help="share dot-files and dot-folders (and take them with --allow-upload)",
    )
    s.add_argument("--tls-cert", metavar="FILE", help="serve over TLS with this certificate (PEM)")
    s.add_argument(
        "--tls-key", metavar="FILE", help="the certificate's private key, if not in --tls-cert"
    )
    s.set_defaults(handler=serve)

    for name, helptext in (
        ("ls", "list a remote folder"),
        ("get", "fetch files or folders"),
        ("put", "send files or folders (the server must --allow-upload)"),
    ):
        c = actions.add_parser(name, help=helptext)
        c.add_argument("server", metavar="HOST[:PORT]")
        if name == "ls":
            c.add_argument("path", metavar="PATH", nargs="?", default="")
        elif name == "put":
            c.add_argument(
                "local",
                metavar="LOCAL... [REMOTE_DIR]",
                nargs="+",
                help="files or folders; a last name that does not exist here is the remote folder",
            )
            c.add_argument("--to", metavar="REMOTE_DIR", help="the remote folder, said explicitly")
            c.add_argument(
                "--hidden", action="store_true", help="send the dot-files inside folders too"
            )
            c.add_argument("--quiet", action="store_true", help="no progress bars, no summary")
        else:
            c.add_argument("remote", metavar="REMOTE", nargs="+")
            c.add_argument(
                "-o",
                "--output",
                default=".",
                metavar="DIR",
                help="where to put them (default: here)",
            )
            c.add_argument("--force", action="store_true", help="replace files that exist")
            c.add_argument(
                "--hidden",
                action="store_true",
                help="fetch the dot-files a server offers inside folders (skipped otherwise)",
            )
            c.add_argument("--quiet", action="store_true", help="no progress bars, no summary")
        c.add_argument("--token", default=os.environ.get("NETASSIST_TOKEN"))
        c.add_argument(
            "--tls", action="store_true", help="connect over TLS (the system's trusted CAs)"
        )
        c.add_argument(
            "--tls-ca",
            metavar="FILE",
            help="trust this CA or self-signed certificate (implies --tls)",
        )
        c.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
        c.set_defaults(handler={"ls": ls, "get": get, "put": put}[name])


def _server_address(text: str, *, listening: bool = False) -> tuple[str, int]:
    """Any form :mod:`netassist.addresses` reads; the port defaults to the protocol's own."""
    address = addresses.parse(text, default_port=p.DEFAULT_PORT, listening=listening)
    return address.host, address.port


def _client_tls(args: argparse.Namespace):
    return client_tls(args.tls_ca) if (args.tls or args.tls_ca) else None


def serve(args: argparse.Namespace) -> int:
    """``netassist files serve``."""
    # Imported here: a client command starts without the server's modules.
    from netassist.transfer.server import FileServer, tls_context

    if not os.path.isdir(args.directory):
        raise UsageError(f"{args.directory!r} is not a folder")
    host, port = _server_address(args.bind, listening=True)
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    server = FileServer(
        args.directory,
        host,
        port,
        token=args.token,
        max_clients=args.max_clients,
        allow_upload=args.allow_upload,
        tls=tls,
        show_hidden=args.show_hidden,
    )
    print(
        f"listening on tcp {server.address}{' (TLS)' if tls else ''}, "
        f"sharing {os.path.abspath(args.directory)}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve()
    finally:
        server.stop()
    return ExitCode.OK


def ls(args: argparse.Namespace) -> int:
    """``netassist files ls``."""
    host, port = _server_address(args.server)
    with Client(host, port, token=args.token, tls=_client_tls(args)) as client:
        entries = client.ls(args.path)
    _say_left_out(client.left_out)
    if args.json:
        print(json.dumps(entries, ensure_ascii=False))
        return ExitCode.OK
    for entry in entries:
        mark = "/" if entry.get("type") == "directory" else ""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(entry.get("mtime_ns", 0)) / 1e9))
        size = "" if mark else str(entry.get("size", ""))
        print(f"{size:>12}  {when}  {shown(str(entry.get('name')))}{mark}")
    return ExitCode.OK


def get(args: argparse.Namespace) -> int:
    """``netassist files get``."""
    host, port = _server_address(args.server)
    started = time.monotonic()
    results = []
    progress = TransferProgress(enabled=not (args.quiet or args.json))
    try:
        with Client(host, port, token=args.token, tls=_client_tls(args)) as client:
            for remote in args.remote:
                results += client.get(
                    remote,
                    args.output,
                    force=args.force,
                    hidden=args.hidden,
                    on_progress=progress.update,
                    on_total=progress.total,
                )
    finally:
        progress.close()
    took = max(time.monotonic() - started, 1e-9)
    received = sum(r.received for r in results)
    refused = _say_refused(results)
    # Hidden names the user asked for with --hidden and did not get are missing too.
    missing = refused or (args.hidden and client.left_out["hidden"])
    _say_left_out(client.left_out, asked_hidden=args.hidden)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], ensure_ascii=False))
    elif not args.quiet:
        skipped = sum(r.skipped and not r.refused for r in results)
        resumed = sum(1 for r in results if r.resumed_from)
        print(
            f"{len(results) - skipped - refused} file(s), {received:,} bytes in {took:.2f} s "
            f"({received / took / 1e6:.1f} MB/s), "
            f"all verified"
            + (f"; {skipped} existing skipped (--force replaces)" if skipped else "")
            + (f"; {resumed} resumed" if resumed else "")
            + (f"; {refused} name(s) skipped (see above)" if refused else ""),
            file=sys.stderr,
        )
    return ExitCode.FILE if missing else ExitCode.OK


def _say_refused(results: list) -> int:
    """One line on stderr per name skipped for its name; returns how many."""
    refused = [r for r in results if r.refused]
    for r in refused:
        held = ""
        if r.remote.endswith("/"):
            held = f" ({r.files} file{'s' * (r.files != 1)}, {r.size:,} bytes)" if r.files else ""
        print(f"skipped {r.remote}{held}: {r.refused}", file=sys.stderr)
    return len(refused)


_LEFT_OUT = {
    "hidden": ("hidden entr{y}", "files serve --show-hidden shares them"),
    "outside": ("link{s} leading outside the shared folder", ""),
    "broken": ("broken link{s}", ""),
    "special": ("device{s}, FIFO{s} or socket{s}", ""),
    "names": ("name{s} its naming rules refuse", ""),
}


def _say_left_out(left_out: dict[str, int], *, asked_hidden: bool = False) -> None:
    """Say what the server left out of the folders it listed, by why (one line)."""
    said = []
    for why, count in left_out.items():
        what, hint = _LEFT_OUT.get(why, ("other entr{y}", ""))
        if why == "hidden" and asked_hidden:
            hint = "--hidden cannot fetch them: the server needs files serve --show-hidden"
        plural = count != 1
        what = what.format(s="s" * plural, y="ies" if plural else "y")
        said.append(f"{count} {what}" + (f" ({hint})" if hint else ""))
    if said:
        print(f"the server left out {', '.join(said)}", file=sys.stderr)


def put(args: argparse.Namespace) -> int:
    """``netassist files put``."""
    host, port = _server_address(args.server)
    locals_ = list(args.local)
    remote_dir = args.to or ""
    if not args.to and len(locals_) > 1 and not os.path.exists(locals_[-1]):
        remote_dir = locals_.pop()
    for path in locals_:
        if not os.path.exists(path):
            raise UsageError(f"{path!r} does not exist here")
    started = time.monotonic()
    results = []
    progress = TransferProgress(enabled=not (args.quiet or args.json))
    try:
        with Client(host, port, token=args.token, tls=_client_tls(args)) as client:
            for path in locals_:
                results += client.put(
                    path,
                    remote_dir,
                    hidden=args.hidden,
                    on_progress=progress.update,
                    on_total=progress.total,
                )
    finally:
        progress.close()
    refused = _say_refused(results)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], ensure_ascii=False))
    elif not args.quiet:
        sent = sum(r.received for r in results)
        took = max(time.monotonic() - started, 1e-9)
        print(
            f"{len(results) - refused} file(s), {sent:,} bytes sent in {took:.2f} s, "
            "all verified by the server"
            + (f"; {refused} name(s) skipped (see above)" if refused else ""),
            file=sys.stderr,
        )
    return ExitCode.FILE if refused else ExitCode.OK
