"""``netassist chat``: the LAN chat (interactive), ``chat send``, ``chat listen`` and
``chat history``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from netassist import addresses
from netassist.errors import ExitCode, UsageError
from netassist.wire.codecs import check_encoding

#: Where ``--key`` may come from instead, so the secret stays out of ``ps``.
KEY_VARIABLE = "NETASSIST_CHAT_KEY"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``chat`` command and its ``send``, ``listen`` and ``history`` actions."""
    chat = commands.add_parser(
        "chat",
        help="a LAN chat, peer to peer over UDP: no message lost, a history kept",
        usage="netassist chat --name NAME [--bind HOST:PORT] --peer HOST:PORT [--peer ...]\n"
        "       netassist chat send|listen|history ...",
        description="Chat with the peers you name (and those they know). Type a line to send "
        "it; /peers, /name NEW, /msg NAME TEXT, /history N, /quit (or exit).",
    )
    _add_room(chat)
    chat.set_defaults(handler=chat_interactive)
    actions = chat.add_subparsers(title="actions", metavar="ACTION", required=False)

    p = actions.add_parser(
        "send",
        help="send one message; exit 0 once every member acknowledged it",
        usage="netassist chat send --name NAME --peer HOST:PORT [options] TEXT",
    )
    p.add_argument("text", metavar="TEXT", help="the message ('-': read it from stdin)")
    p.add_argument("--to", metavar="NAME", help="send privately to the member called NAME")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on acknowledgements after SECONDS (default 30)",
    )
    _add_room(p)
    p.set_defaults(handler=chat_send)

    p = actions.add_parser(
        "listen",
        help="stay in the room and print each message as a JSON line",
        usage="netassist chat listen --name NAME --bind HOST:PORT [options]",
    )
    p.add_argument(
        "--send-stdin", action="store_true", help="also send each line of stdin as a message"
    )
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="leave after SECONDS")
    _add_room(p)
    p.set_defaults(handler=chat_listen)

    p = actions.add_parser("history", help="print a --log file readably")
    p.add_argument("file", metavar="FILE", help="a file written by chat --log")
    p.add_argument("--last", type=int, metavar="N", help="only the last N lines")
    p.set_defaults(handler=chat_history)


def _add_room(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", metavar="NAME", help="your name in the room (required)")
    p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1 on any free port; 0.0.0.0:PORT for the LAN)",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a member of the room (repeatable); it introduces you to the others",
    )
    p.add_argument(
        "--plain-peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a program that sends plain text datagrams, like the tutorial's chat "
        "(no delivery guarantee)",
    )
    p.add_argument(
        "--key",
        metavar="SECRET",
        help=f"authenticate every datagram with this shared secret (HMAC); or set {KEY_VARIABLE}",
    )
    p.add_argument("--log", metavar="FILE", help="append the history to FILE as JSON Lines")
    p.add_argument(
        "--discover",
        action="store_true",
        help="find peers by a broadcast to the room's port (needs --bind 0.0.0.0:PORT)",
    )
    p.add_argument(
        "--discover-to",
        metavar="HOST:PORT",
        help="the broadcast address for --discover (default 255.255.255.255 at --bind's port)",
    )
    p.add_argument(
        "--encoding",
        default="utf-8",
        metavar="NAME",
        help="the terminal's text encoding (the wire is always UTF-8)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 to 1,000,000 seconds")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _room(args: argparse.Namespace):
    from netassist.chat.session import RoomOptions

    if not args.name:
        raise UsageError("give your name with --name NAME")
    peers = [addresses.parse(text) for text in args.peer]
    plain = [addresses.parse(text) for text in args.plain_peer]
    if args.bind:
        bind = addresses.parse(args.bind, listening=True)
    else:
        beyond = [str(a) for a in peers + plain if not _is_loopback(a.host)]
        if beyond or args.discover:
            why = f"{beyond[0]} is" if beyond else "--discover looks"
            raise UsageError(
                f"{why} beyond this machine: give --bind 0.0.0.0:PORT (or this machine's "
                "address on that network); without --bind the chat listens on 127.0.0.1 only"
            )
        six = any(":" in a.host for a in peers + plain)
        bind = addresses.Address("::1" if six else addresses.LOOPBACK, 0)
    discover_to = None
    if args.discover_to and not args.discover:
        raise UsageError("--discover-to goes with --discover")
    if args.discover:
        if args.discover_to:
            target = addresses.parse(args.discover_to)
            discover_to = (target.host, target.port)
        elif bind.port == 0:
            raise UsageError(
                "--discover broadcasts to the room's port: give it with --bind 0.0.0.0:PORT"
            )
        else:
            discover_to = ("255.255.255.255", bind.port)
    key = args.key if args.key is not None else os.environ.get(KEY_VARIABLE)
    if key == "":
        raise UsageError("--key cannot be empty")
    return RoomOptions(
        name=args.name,
        bind=(bind.host, bind.port),
        peers=tuple((a.host, a.port) for a in peers),
        plain_peers=tuple((a.host, a.port) for a in plain),
        key=key.encode("utf-8") if key else None,
        discover_to=discover_to,
        log=args.log,
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def chat_interactive(args: argparse.Namespace) -> int:
    """``netassist chat``: the terminal interface."""
    from netassist.chat import ui

    options = _room(args)
    return ui.run(options, encoding=check_encoding(args.encoding))


def chat_send(args: argparse.Namespace) -> int:
    """``netassist chat send``."""
    from netassist.chat import scripted

    encoding = check_encoding(args.encoding)
    options = _room(args)
    text = args.text
    if text == "-":
        data = sys.stdin.buffer.read(scripted.MAX_TEXT * 4 + 1)
        text = data.decode(encoding, "replace").removesuffix("\n").removesuffix("\r")
    scripted.send(options, text, to=args.to, timeout=args.timeout, say=_say)
    return ExitCode.OK


def chat_listen(args: argparse.Namespace) -> int:
    """``netassist chat listen``."""
    from netassist.chat import scripted

    encoding = check_encoding(args.encoding)
    options = _room(args)

    def write(line: str) -> None:
        sys.stdout.buffer.write(line.encode("utf-8") + b"\n")
        sys.stdout.buffer.flush()

    lines = scripted.stdin_lines(encoding) if args.send_stdin else None
    scripted.listen(options, write=write, say=_say, lines=lines, timeout=args.timeout)
    return ExitCode.OK


def chat_history(args: argparse.Namespace) -> int:
    """``netassist chat history``."""
    from netassist.chat.history import history_lines

    if args.last is not None and args.last < 1:
        raise UsageError("--last takes a number of lines, 1 or more")
    sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    for line in history_lines(args.file, args.last):
        print(line)
    sys.stdout.flush()
    return ExitCode.OK
