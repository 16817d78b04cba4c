"""``netassist udp``, ``netassist tcp`` and ``netassist replay``: the debugging assistant."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from netassist import addresses
from netassist.addresses import Address
from netassist.errors import ExitCode, UsageError
from netassist.wire import replay as replay_mod
from netassist.wire import tcp, udp
from netassist.wire.codecs import PayloadMaker, check_encoding
from netassist.wire.display import Display
from netassist.wire.record import Recorder, read_records
from netassist.wire.sockets import format_address


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``udp``, ``tcp`` and ``replay`` commands."""
    udp_parser = commands.add_parser("udp", help="send or listen for UDP datagrams")
    udp_commands = udp_parser.add_subparsers(title="udp commands", metavar="ACTION", required=True)

    p = udp_commands.add_parser(
        "send",
        help="send datagrams (MESSAGE, or stdin one line each)",
        usage="netassist udp send [options] HOST PORT [MESSAGE] (or HOST:PORT [MESSAGE])",
    )
    p.add_argument(
        "words",
        metavar="HOST PORT [MESSAGE]",
        nargs="+",
        help="where to send (HOST PORT, HOST:PORT, [V6]:PORT or PORT for 127.0.0.1), "
        "then the text to send; stdin when absent",
    )
    p.add_argument("--whole", action="store_true", help="send all of stdin as one datagram")
    p.add_argument(
        "--repeat", type=_positive_int, default=1, metavar="N", help="send each message N times"
    )
    p.add_argument(
        "--interval", type=_seconds, default=0.0, metavar="SECONDS", help="pause between datagrams"
    )
    p.add_argument(
        "--wait-reply",
        type=_seconds,
        metavar="SECONDS",
        help="after each datagram wait this long for the answer and print it",
    )
    p.add_argument("--crlf", action="store_true", help="end lines with CRLF")
    p.add_argument(
        "--broadcast",
        action="store_true",
        help="allow a broadcast address as HOST (SO_BROADCAST); replies from any host count",
    )
    p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="send from this local address (PORT or :PORT is 127.0.0.1:PORT), so the peer "
        "sees and answers the port it expects",
    )
    _add_common(p, default_show="text")
    p.set_defaults(handler=udp_send, late_positional="words")

    p = udp_commands.add_parser(
        "listen",
        help="print every datagram that arrives",
        usage="netassist udp listen [options] ([HOST] PORT | --bind HOST:PORT)",
    )
    _add_listen_address(p, optional=True)
    p.add_argument("--echo", action="store_true", help="send each datagram back to its sender")
    p.add_argument("--reply", metavar="TEXT", help="answer each datagram with TEXT")
    p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="listen on (and answer from) this address, instead of [HOST] PORT",
    )
    p.add_argument("--count", type=_positive_int, metavar="N", help="stop after N datagrams")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="stop after SECONDS without a datagram",
    )
    _add_common(p, default_show="text")
    p.set_defaults(handler=udp_listen)

    tcp_parser = commands.add_parser("tcp", help="connect to or listen on a TCP port, like nc")
    tcp_commands = tcp_parser.add_subparsers(title="tcp commands", metavar="ACTION", required=True)

    p = tcp_commands.add_parser(
        "connect",
        help="stdin to the socket, the socket to stdout",
        usage="netassist tcp connect [options] HOST PORT (or HOST:PORT)",
    )
    p.add_argument(
        "address",
        metavar="HOST PORT",
        nargs="+",
        help="where to connect: HOST PORT, HOST:PORT, [V6]:PORT, or PORT for 127.0.0.1",
    )
    p.add_argument(
        "--send",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT instead of stdin (repeatable), then wait for the answer",
    )
    p.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="send the file at PATH instead of stdin (repeatable)",
    )
    p.add_argument("--crlf", action="store_true", help="send line ends as CRLF, like nc -C")
    p.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after SECONDS (default 10)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close after SECONDS with no data either way",
    )
    p.add_argument(
        "--no-half-close",
        dest="half_close",
        action="store_false",
        help="keep the sending side open at the end of input",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="say when connected and closed")
    _add_common(p, default_show="auto")
    p.set_defaults(handler=tcp_connect)

    p = tcp_commands.add_parser(
        "listen",
        help="serve TCP clients, many at once",
        usage="netassist tcp listen [options] [HOST] PORT",
    )
    _add_listen_address(p)
    p.add_argument("--echo", action="store_true", help="send each client back what it sends")
    p.add_argument(
        "--broadcast",
        action="store_true",
        help="chat: relay each client's lines to all the others, with names",
    )
    p.add_argument(
        "-k",
        "--keep-open",
        action="store_true",
        help="keep serving after a client leaves (default: exit like nc)",
    )
    p.add_argument(
        "--max-clients", type=_positive_int, metavar="N", help="refuse clients beyond N at once"
    )
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("--crlf", action="store_true", help="send typed line ends as CRLF")
    p.add_argument("-q", "--quiet", action="store_true", help="no connect/disconnect lines")
    _add_common(p, default_show="auto")
    p.set_defaults(handler=tcp_listen)

    p = commands.add_parser("replay", help="send the data of a --log file again")
    p.add_argument("file", metavar="FILE", help="a file written by --log (JSON Lines)")
    p.add_argument(
        "--to",
        nargs="+",
        required=True,
        metavar="HOST PORT",
        help="where to send it: HOST PORT, HOST:PORT, [V6]:PORT, or PORT for 127.0.0.1",
    )
    p.add_argument("--timing", action="store_true", help="keep the recorded gaps between sends")
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="with --timing, play FACTOR times faster",
    )
    p.add_argument(
        "--direction",
        choices=("out", "in"),
        default="out",
        help="replay what was sent (out, default) or what was received (in)",
    )
    p.add_argument(
        "--wait",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="after sending, wait this long for each TCP peer to close (default 2)",
    )
    p.add_argument("--encoding", default="utf-8", help="show answers in this encoding")
    p.set_defaults(handler=replay)


def _add_listen_address(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument(
        "address",
        metavar="[HOST] PORT",
        nargs="*" if optional else "+",
        help="where to listen: PORT (on 127.0.0.1), HOST PORT, HOST:PORT or [V6]:PORT; "
        "0.0.0.0 or :: for every interface",
    )


def _add_common(p: argparse.ArgumentParser, *, default_show: str) -> None:
    p.add_argument(
        "--encoding",
        default="utf-8",
        metavar="NAME",
        help="text encoding on the wire: utf-8 (default), gbk, gb18030, latin-1, ...",
    )
    p.add_argument("--hex", action="store_true", help="input is hex; output is a hex dump")
    explained = (
        "text on a terminal, raw bytes into a pipe" if default_show == "auto" else default_show
    )
    p.add_argument(
        "--show",
        choices=("text", "hex", "both", "raw"),
        help=f"how to print what arrives (default: {explained}; hex with --hex)",
    )
    p.set_defaults(default_show=default_show)
    p.add_argument("--log", metavar="FILE", help="append every event to FILE as JSON Lines")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


#: A client's unfinished line is shown after this many seconds without more of it.
PARTIAL_LINE_WAIT = 1.0
#: The longest wait a flag takes (select and sleep refuse much more): about eleven days.
MAX_SECONDS = 1_000_000


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:  # "nan" is a float to Python, not a number of seconds to anyone
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is too long: at most {MAX_SECONDS:,} s")
    return value


def _positive_float(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _listen_address(words: list[str]) -> Address:
    return _only_address(words, listening=True)


def _only_address(words: list[str], *, listening: bool = False) -> Address:
    address, rest = addresses.parse_pair(words, listening=listening)
    if rest:
        raise UsageError(f"unexpected {' '.join(rest)!r} after the address")
    return address


def _bind_address(text: str) -> Address:
    """``--bind``'s address: any form :mod:`netassist.addresses` reads, port 0 allowed."""
    return addresses.parse(text, listening=True)


def _bind_pair(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    address = _bind_address(text)
    return address.host, address.port


def _udp_listen_address(args: argparse.Namespace) -> Address:
    if args.bind is None:
        if not args.address:
            raise UsageError("give [HOST] PORT, or --bind HOST:PORT, to listen on")
        return _listen_address(args.address)
    if args.address:
        raise UsageError("give the address once: [HOST] PORT or --bind HOST:PORT")
    return _bind_address(args.bind)


def _show(args: argparse.Namespace, *, many_peers: bool = False) -> str:
    if args.show:
        return args.show
    if args.hex:
        return "hex"
    if args.default_show == "auto":
        # Raw bytes into a pipe, like nc; but several clients' bytes interleaved with no
        # names say nothing, so with more than one possible they go as tagged lines.
        return "text" if sys.stdout.isatty() or many_peers else "raw"
    return args.default_show


@contextlib.contextmanager
def _recorder(args: argparse.Namespace) -> Iterator[Recorder | None]:
    if not args.log:
        yield None
        return
    with Recorder(args.log, check_encoding(args.encoding)) as recorder:
        yield recorder


def udp_send(args: argparse.Namespace) -> int:
    """``netassist udp send``."""
    target, rest = addresses.parse_pair(args.words)
    if len(rest) > 1:
        raise UsageError("give one MESSAGE (quote it if it has spaces), or none to read stdin")
    message = rest[0] if rest else None
    maker = PayloadMaker(hex_input=args.hex, crlf=args.crlf, encoding=args.encoding)
    display = Display(_show(args), maker.encoding)
    if message is not None:
        if args.whole:
            raise UsageError("--whole reads stdin; leave out MESSAGE")
        payloads = iter([maker.from_text(message)])
    elif args.whole:
        payloads = (
            maker.from_text(maker.typed_text(data)) if maker.line_mode else data
            for data in udp.read_lines(sys.stdin.buffer, whole=True)
        )
    else:
        # One datagram per line; the line end is not part of the message unless --crlf asks.
        payloads = (
            maker.from_line(line if args.crlf else line.rstrip(b"\r\n"))
            for line in udp.read_lines(sys.stdin.buffer)
        )

    def show_reply(reply: udp.Datagram) -> None:
        display.datagram(reply.ts, "reply from", reply.peer, reply.data)

    with _recorder(args) as recorder:
        udp.send(
            target.host,
            target.port,
            payloads,
            repeat=args.repeat,
            interval=args.interval,
            wait_reply=args.wait_reply,
            on_reply=show_reply,
            recorder=recorder,
            broadcast=args.broadcast,
            bind=_bind_pair(args.bind),
        )
    return ExitCode.OK


def udp_listen(args: argparse.Namespace) -> int:
    """``netassist udp listen``."""
    where = _udp_listen_address(args)
    maker = PayloadMaker(hex_input=args.hex, encoding=args.encoding)
    reply = maker.from_text(args.reply) if args.reply is not None else None
    display = Display(_show(args), maker.encoding)

    def show(datagram: udp.Datagram) -> None:
        display.datagram(datagram.ts, "from", datagram.peer, datagram.data, flush=False)

    with (
        _recorder(args) as recorder,
        udp.UdpListener(
            where.host,
            where.port,
            on_datagram=show,
            echo=args.echo,
            reply=reply,
            recorder=recorder,
            on_batch_end=display.flush,
        ) as listener,
    ):
        display.status(f"listening on udp {listener.address}")
        listener.serve(count=args.count, timeout=args.timeout, idle_timeout=args.idle_timeout)
    return ExitCode.OK


def tcp_connect(args: argparse.Namespace) -> int:
    """``netassist tcp connect``."""
    target = _only_address(args.address)
    maker = PayloadMaker(hex_input=args.hex, crlf=args.crlf, encoding=args.encoding)
    display = Display(_show(args), maker.encoding)
    if args.send or args.file:
        payloads = [maker.from_text(text) for text in args.send]  # bad hex fails before connecting
        source = tcp.parts_source(payloads, args.file)
    else:
        source = tcp.stdin_source(maker)
    sock = tcp.connect(target.host, target.port, timeout=args.connect_timeout)
    with sock, _recorder(args) as recorder:
        peer = format_address(sock.getpeername())
        if args.verbose:
            display.status(f"connected to {peer} from {format_address(sock.getsockname())}")
        result = tcp.run_session(
            sock,
            source,
            lambda data: display.stream(sock, data),
            idle_timeout=args.idle_timeout,
            half_close=args.half_close,
            recorder=recorder,
        )
        display.end_stream(sock)
        if args.verbose:
            display.status(
                f"closed by {peer}: {result.bytes_out} bytes sent, {result.bytes_in} received"
            )
    return ExitCode.OK


def tcp_listen(args: argparse.Namespace) -> int:
    """``netassist tcp listen``."""
    where = _listen_address(args.address)
    maker = PayloadMaker(hex_input=args.hex, crlf=args.crlf, encoding=args.encoding)
    display = Display(_show(args, many_peers=args.keep_open or args.broadcast), maker.encoding)
    tagged = display.show != "raw"

    def opened(client: tcp.ListenerClient) -> None:
        if not args.quiet:
            display.status(f"[{client.peer}] connected")

    def received(client: tcp.ListenerClient, data: bytes) -> None:
        display.stream(client.id, data, client.tag if tagged else None)

    def closed(client: tcp.ListenerClient, reason: str) -> None:
        display.end_stream(client.id)
        if not args.quiet:
            display.status(f"[{client.peer}] disconnected: {reason}")

    def refused(peer: str) -> None:
        if not args.quiet:
            display.status(f"[{peer}] refused: already {args.max_clients} clients")

    with (
        _recorder(args) as recorder,
        tcp.TcpListener(
            where.host,
            where.port,
            echo=args.echo,
            broadcast=args.broadcast,
            keep_open=args.keep_open,
            max_clients=args.max_clients,
            encoding=maker.encoding,
            recorder=recorder,
            on_open=opened,
            on_data=received,
            on_close=closed,
            on_refused=refused,
            on_tick=(lambda: display.flush_idle(PARTIAL_LINE_WAIT)) if tagged else None,
        ) as listener,
    ):
        display.status(f"listening on tcp {listener.address}")
        with tcp.HostInput(listener, maker):
            listener.serve(timeout=args.timeout)
    return ExitCode.OK


def replay(args: argparse.Namespace) -> int:
    """``netassist replay``."""
    target = _only_address(args.to)
    display = Display("text" if sys.stdout.isatty() else "raw", args.encoding)
    records = list(read_records(args.file))
    result = replay_mod.replay(
        records,
        target.host,
        target.port,
        direction=args.direction,
        timing=args.timing,
        speed=args.speed,
        wait=args.wait,
        on_reply=lambda conn, data: display.stream(conn, data),
    )
    display.status(
        f"replayed {result.records} records, {result.bytes_sent} bytes"
        + (f" over {result.connections} connection(s)" if result.connections else "")
    )
    return ExitCode.OK
