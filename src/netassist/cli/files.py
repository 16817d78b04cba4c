"""``netassist files serve|ls|get|put``: file transfer over the netassist transfer protocol."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator

from netassist import addresses
from netassist.cli.progress import TransferProgress
from netassist.errors import ExitCode, NetassistError, UsageError, explain
from netassist.transfer.admission import HANDSHAKE_TIMEOUT
from netassist.transfer.client import Client, client_tls, sendable, shown
from netassist.transfer.protocol import DEFAULT_PORT

MAX_TIMEOUT = 86_400.0


# The number types of the assistant's commands, imported when a flag is given (a files
# command starts without the assistant's modules).
def _positive_int(text: str) -> int:
    from netassist.cli.wire import _positive_int as parse

    return parse(text)


def _positive_float(text: str) -> float:
    from netassist.cli.wire import _positive_float as parse

    return parse(text)


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
        default=f"127.0.0.1:{DEFAULT_PORT}",
        metavar="ADDRESS",
        help=f"where to listen: HOST:PORT, [V6]:PORT, PORT or :PORT (on 127.0.0.1), or HOST "
        f"(port {DEFAULT_PORT}); 0.0.0.0 or :: for every interface "
        f"(default 127.0.0.1:{DEFAULT_PORT})",
    )
    s.add_argument(
        "--token",
        default=os.environ.get("NETASSIST_TOKEN"),
        help="a shared secret clients must give (default: $NETASSIST_TOKEN)",
    )
    s.add_argument(
        "--max-clients",
        type=_positive_int,
        default=64,
        metavar="N",
        help="clients served at once (default 64)",
    )
    s.add_argument(
        "--max-per-address",
        type=_positive_int,
        default=16,
        metavar="N",
        help="clients served at once from one address (default 16)",
    )
    s.add_argument(
        "--handshake-timeout",
        type=_timeout,
        default=HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="a connection that has not finished its handshake by then is closed "
        f"(default {HANDSHAKE_TIMEOUT:g})",
    )
    s.add_argument("--allow-upload", action="store_true", help="accept files sent with put")
    s.add_argument(
        "--show-hidden",
        action="store_true",
        help="share dot-files and dot-folders (and take them with --allow-upload)",
    )
    s.add_argument(
        "--quiet",
        action="store_true",
        help="no line per connection, transfer and refusal on stderr (warnings still)",
    )
    s.add_argument(
        "--plain",
        action="store_true",
        help="speak the tutorial's protocol instead (a client sends a name, gets the file's "
        "bytes, and the connection closes): read-only, no token, no TLS, nothing verified",
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
        c.add_argument(
            "server",
            metavar="HOST[:PORT]",
            help=f"the server: HOST:PORT, [V6]:PORT, or HOST (port {DEFAULT_PORT})",
        )
        if name == "ls":
            c.add_argument(
                "path",
                metavar="PATH",
                nargs="?",
                default="",
                help="a remote folder or file (default: the whole shared folder)",
            )
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
            c.add_argument(
                "--force", action="store_true", help="replace files that differ on the server"
            )
            c.add_argument("--quiet", action="store_true", help="no progress bars, no summary")
        else:
            c.add_argument(
                "remote",
                metavar="REMOTE",
                nargs="+",
                help="remote files or folders, as files ls shows them",
            )
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
            c.add_argument(
                "--plain",
                action="store_true",
                help="fetch from a server of the tutorial's protocol (send the name, receive "
                "until it closes): files only, not verified, not resumable",
            )
            c.add_argument("--quiet", action="store_true", help="no progress bars, no summary")
        c.add_argument(
            "--token",
            default=os.environ.get("NETASSIST_TOKEN"),
            help="the server's shared secret (default: $NETASSIST_TOKEN)",
        )
        c.add_argument(
            "--tls", action="store_true", help="connect over TLS (the system's trusted CAs)"
        )
        c.add_argument(
            "--tls-ca",
            metavar="FILE",
            help="trust this CA or self-signed certificate (implies --tls)",
        )
        c.add_argument(
            "--timeout",
            type=_timeout,
            default=30.0,
            metavar="SECONDS",
            help="give up when the server stays silent this long (default 30)",
        )
        c.add_argument(
            "--digest",
            choices=("blake3", "sha256"),
            help="the digest that verifies the data (default: blake3, or sha256 with a server "
            "of protocol version 1; sha256 to compare with published checksums)",
        )
        c.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
        c.set_defaults(handler={"ls": ls, "get": get, "put": put}[name])


def _server_address(text: str, *, listening: bool = False) -> tuple[str, int]:
    """Any form :mod:`netassist.addresses` reads; the port defaults to the protocol's own."""
    address = addresses.parse(text, default_port=DEFAULT_PORT, listening=listening)
    return address.host, address.port


def _timeout(text: str) -> float:
    """An argparse type: seconds above 0, at most a day (what a socket can wait)."""
    value = _positive_float(text)
    if value > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r} is more than a day")
    return value


def _output_folder(path: str) -> None:
    """Make sure ``-o`` is a folder (created where missing) before anything is fetched."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"-o {path}: this is a file, not a folder; give the folder to fetch into")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        error = explain(exc, f"creating the folder {path} (-o)")
        if error.exit_code is not ExitCode.PERMISSION_DENIED:
            error.exit_code = ExitCode.FILE
        raise error from None


def _client(args: argparse.Namespace) -> Client:
    host, port = _server_address(args.server)
    if args.digest is None:
        _say_digest_fallback()
    return Client(
        host,
        port,
        token=args.token,
        tls=_client_tls(args),
        timeout=args.timeout,
        digest=args.digest,
    )


def _say_digest_fallback() -> None:
    """One line on stderr where the blake3 wheel is missing: digests are SHA-256 then."""
    from netassist.transfer import digest

    if digest.BLAKE3 not in digest.available():
        print(f"netassist: {digest.MISSING_NOTICE}", file=sys.stderr)


@contextlib.contextmanager
def _transfer(args: argparse.Namespace) -> Iterator[tuple[Client, TransferProgress]]:
    """A connected client and the progress bars of a get or put. Ctrl-C says what became
    of the file in the middle, and that running again resumes it."""
    progress = TransferProgress(enabled=not (args.quiet or args.json))
    client = None
    try:
        with _client(args) as client:
            yield client, progress
    except KeyboardInterrupt:
        kept = ""
        if client is not None and client.receiving:
            kept = f": {client.receiving} keeps what arrived"
        elif client is not None and client.sending:
            kept = f": the server keeps what arrived of {shown(client.sending)!r}"
        again = ", and running the same command again resumes" if kept else ""
        raise NetassistError(f"interrupted{kept}{again}", ExitCode.INTERRUPTED) from None
    finally:
        progress.close()  # the bars go before any line is said


def _client_tls(args: argparse.Namespace):
    return client_tls(args.tls_ca) if (args.tls or args.tls_ca) else None


def serve(args: argparse.Namespace) -> int:
    """``netassist files serve``."""
    # Imported here: a client command starts without the server's modules.
    from netassist.server.arbiter import stopped_by_signals
    from netassist.transfer.server import FileServer, tls_context
    from netassist.transfer.serverlog import ServerLog

    if not os.path.isdir(args.directory):
        raise UsageError(f"{args.directory!r} is not a folder")
    if args.plain:
        _plain_alone(args, "--allow-upload", "--token", "--tls-cert")
    host, port = _server_address(args.bind, listening=True)
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    if not args.plain:
        _say_digest_fallback()
    server = FileServer(
        args.directory,
        host,
        port,
        token=args.token,
        max_clients=args.max_clients,
        max_per_address=args.max_per_address,
        handshake_timeout=args.handshake_timeout,
        allow_upload=args.allow_upload,
        tls=tls,
        show_hidden=args.show_hidden,
        plain=args.plain,
        log=ServerLog(sys.stderr, quiet=args.quiet),
    )
    kind = " (TLS)" if tls else " (plain: the tutorial's protocol, read-only)" if args.plain else ""
    # The handlers go in before the line that tells a supervisor (or a test) we are up.
    with stopped_by_signals(server.stop):
        print(
            f"listening on tcp {server.address}{kind}, sharing {os.path.abspath(args.directory)}",
            file=sys.stderr,
            flush=True,
        )
        try:
            server.serve()
        finally:
            server.stop()
    # Transfers in progress end with the process; their clients keep .part files and resume.
    server.log.info("stopped")
    return ExitCode.OK


def ls(args: argparse.Namespace) -> int:
    """``netassist files ls``."""
    with _client(args) as client:
        entries = client.ls(args.path)
    _say_left_out(client.left_out)
    if args.json:
        print(json.dumps(entries, ensure_ascii=False))
        return ExitCode.OK
    for entry in entries:
        mark = "/" if entry.get("type") == "directory" else ""
        when = _when(entry["mtime_ns"])
        size = "" if mark else str(entry.get("size", ""))
        print(f"{size:>12}  {when}  {shown(str(entry.get('name')))}{mark}")
    return ExitCode.OK


def _when(mtime_ns: int) -> str:
    """A modification time as ls shows it (``?`` for one this system cannot show)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime_ns / 1e9))
    except (OverflowError, OSError, ValueError):
        return "?".center(16)


def _plain_alone(args: argparse.Namespace, *options: str) -> None:
    """Refuse ``options`` given with --plain: the tutorial's protocol has no room for them."""
    given = [o for o in options if getattr(args, o.lstrip("-").replace("-", "_"))]
    if given:
        where = " (NETASSIST_TOKEN is set)" if "--token" in given else ""
        raise UsageError(
            f"--plain speaks the tutorial's protocol, which has no {' or '.join(given)}{where}"
        )


def _get_plain(args: argparse.Namespace) -> int:
    """``netassist files get --plain``: one connection per name."""
    from netassist.transfer.plain import fetch_plain

    _plain_alone(args, "--token", "--tls", "--tls-ca")
    host, port = _server_address(args.server)
    started = time.monotonic()
    results = []
    progress = TransferProgress(enabled=not (args.quiet or args.json))
    try:
        for remote in args.remote:
            results.append(
                fetch_plain(
                    host,
                    port,
                    remote,
                    args.output,
                    force=args.force,
                    timeout=args.timeout,
                    on_progress=progress.update,
                )
            )
    finally:
        progress.close()
    return _report_get(args, results, started, "plain: not verified (no digest in that protocol)")


def get(args: argparse.Namespace) -> int:
    """``netassist files get``."""
    _output_folder(args.output)
    if args.plain:
        return _get_plain(args)
    started = time.monotonic()
    results = []
    with _transfer(args) as (client, progress):
        for remote in args.remote:
            results += client.get(
                remote,
                args.output,
                force=args.force,
                hidden=args.hidden,
                on_progress=progress.update,
                on_total=progress.total,
            )
    checked = f"all verified ({_digest_name(client.agreed.digest)})"
    return _report_get(args, results, started, checked, client.left_out)


def _digest_name(algorithm: str) -> str:
    """How a summary line names a digest algorithm."""
    return {"blake3": "BLAKE3", "sha256": "SHA-256"}.get(algorithm, algorithm)


def _report_get(
    args: argparse.Namespace,
    results: list,
    started: float,
    checked: str,
    left_out: dict[str, int] | None = None,
) -> int:
    """Say what a get skipped and left out, then the JSON results or the summary line;
    the exit code."""
    took = max(time.monotonic() - started, 1e-9)
    received = sum(r.received for r in results)
    refused = _say_refused(results)
    left_out = left_out or {}
    # Hidden names the user asked for with --hidden and did not get are missing too, and so
    # are files the server left out because they changed while it sent the folder, or
    # because their names cannot travel (not UTF-8...), or because it may not read them
    # (a stream names a thousand such files; "denied" counts the rest).
    missing = (
        refused
        or (args.hidden and left_out.get("hidden"))
        or left_out.get("changed")
        or left_out.get("names")
        or left_out.get("unreadable")
        or left_out.get("denied")
    )
    _say_left_out(left_out, asked_hidden=args.hidden)
    if args.json:
        print(json.dumps([r.as_json() for r in results], ensure_ascii=False))
    elif not args.quiet:
        skipped = sum(r.skipped and not r.refused for r in results)
        unnamed = left_out.get("names", 0)
        resumed = sum(1 for r in results if r.resumed_from)
        print(
            f"{len(results) - skipped - refused} file(s), {received:,} bytes in {took:.2f} s "
            f"({received / took / 1e6:.1f} MB/s), {checked}"
            + (f"; {skipped} existing skipped (--force replaces)" if skipped else "")
            + (f"; {resumed} resumed" if resumed else "")
            + (f"; {refused} name(s) skipped (see above)" if refused else "")
            + (f"; {unnamed} name(s) the server could not send (see above)" if unnamed else ""),
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
    "unreadable": ("folder{s} it cannot read", "sent empty; the server's user may not read them"),
    "denied": ("more file{s} it cannot read", "the server's user may not read them"),
    "names": (
        "name{s} its naming rules refuse",
        "not UTF-8, or shaped like a path such as C:x or %2e%2e; renamed on the server they "
        "can be fetched",
    ),
    "changed": ("file{s} replaced while the folder was sent", "running again fetches them"),
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
    locals_ = list(args.local)
    remote_dir = args.to or ""
    if not args.to and len(locals_) > 1 and not os.path.exists(locals_[-1]):
        remote_dir = locals_.pop()
    for path in locals_:
        if not os.path.exists(path):
            raise NetassistError(f"{path}: no such file or folder here", ExitCode.FILE)
        if not os.path.isdir(path):
            sendable(path)  # a device or a FIFO is refused before anything is sent
    started = time.monotonic()
    results = []
    with _transfer(args) as (client, progress):
        for path in locals_:
            results += client.put(
                path,
                remote_dir,
                force=args.force,
                hidden=args.hidden,
                on_progress=progress.update,
                on_total=progress.total,
            )
    refused = _say_refused(results)
    if args.json:
        print(json.dumps([r.as_json() for r in results], ensure_ascii=False))
    elif not args.quiet:
        sent = sum(r.received for r in results)
        took = max(time.monotonic() - started, 1e-9)
        already = sum(r.skipped and not r.refused for r in results)
        print(
            f"{len(results) - already - refused} file(s), {sent:,} bytes sent in {took:.2f} s, "
            f"all verified by the server ({_digest_name(client.agreed.digest)})"
            + (f"; {already} already there (the same digest)" if already else "")
            + (f"; {refused} name(s) skipped (see above)" if refused else ""),
            file=sys.stderr,
        )
    return ExitCode.FILE if refused else ExitCode.OK
