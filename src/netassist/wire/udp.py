"""UDP: send datagrams and wait for replies, or listen and show every datagram.

The tutorial's sender and receiver, grown up: any number of senders, replies, echo, a
stop condition, a log, and errors that say what happened (a refused port, a name that does
not resolve) instead of waiting forever.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from netassist.errors import (
    BadDataError,
    ExitCode,
    NetassistError,
    TimeoutExpired,
    UsageError,
    explain,
)
from netassist.wire.record import Record, Recorder
from netassist.wire.sockets import (
    DEFAULT_LISTEN_HOST,
    bind_udp,
    explain_denied,
    format_address,
    resolve,
)

MAX_DATAGRAM = 65535
RECEIVE_BUFFER = 4 * 1024 * 1024
#: Input longer than this cannot become one datagram (65,507 bytes at most), even as hex.
MAX_INPUT = 1024 * 1024


class Datagram(NamedTuple):
    """A datagram that arrived: its payload, who sent it, and when (epoch seconds)."""

    data: bytes
    peer: str
    ts: float


@dataclass
class SendResult:
    """What :func:`send` did: datagrams sent, the replies that came back, and how many got
    none (``unanswered``) or were refused (an ICMP "port unreachable": nothing listens)."""

    sent: int = 0
    replies: list[Datagram] = field(default_factory=list)
    unanswered: int = 0
    refused: int = 0


class SendFailed(NetassistError):
    """Some datagrams were refused or got no reply; :attr:`result` says what was done."""

    def __init__(self, message: str, exit_code: ExitCode, result: SendResult) -> None:
        super().__init__(message, exit_code)
        self.result = result


#: After the last datagram, how long an ICMP "port unreachable" may take to come back and
#: still be counted (replies and refusals within --wait-reply are always seen).
REFUSAL_GRACE = 0.05
# An ICMP answer to an earlier datagram is reported by the next send, which then sends
# nothing; the send is tried again, this many times at most.
_SEND_ATTEMPTS = 8
# Windows reports an ICMP "port unreachable" on UDP as a reset connection.
_REFUSED = (ConnectionRefusedError, ConnectionResetError)


def send(
    host: str,
    port: int,
    payloads: Iterable[bytes],
    *,
    repeat: int = 1,
    interval: float = 0.0,
    wait_reply: float | None = None,
    on_reply: Callable[[Datagram], None] | None = None,
    recorder: Recorder | None = None,
    broadcast: bool = False,
    bind: tuple[str, int] | None = None,
) -> SendResult:
    """Send each payload ``repeat`` times to ``host:port``, ``interval`` seconds apart.

    With ``wait_reply``, wait up to that many seconds after each datagram for an answer and
    pass it to ``on_reply``. Every datagram is sent even when the target refuses them (an
    ICMP "port unreachable": nothing listens there); after the last one, refusals raise
    :class:`SendFailed` with the connection-refused exit code, and datagrams that got no
    reply raise it with the timeout code.

    The socket is connected, so only the target's answers count and a refusal shows up
    instead of silence; with ``broadcast`` (``SO_BROADCAST``, needed to send to a broadcast
    address) it is not, and replies from any host count. ``bind`` sends from that local
    ``(host, port)``, so the peer sees (and answers) a port it expects.
    """
    found = resolve(host, port, socket.SOCK_DGRAM, proto="udp")
    family, socktype, proto, _, sockaddr = _same_family(found, bind) if bind else found[0]
    target = format_address(sockaddr)
    doing = f"sending to udp {target}"
    result = SendResult()
    sock = bind_udp(*bind, family=family) if bind else socket.socket(family, socktype, proto)
    with sock:
        try:
            if broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:
                sock.connect(sockaddr)
        except OSError as exc:
            raise _explain_send(exc, doing, host, broadcast, sock if bind else None) from None
        local = format_address(sock.getsockname())
        first = True
        for payload in payloads:
            for _ in range(repeat):
                if not first and interval > 0:
                    time.sleep(interval)
                first = False
                try:
                    _send_one(sock, payload, sockaddr if broadcast else None, result)
                except OSError as exc:
                    raise _explain_send(exc, doing, host, broadcast) from None
                result.sent += 1
                if recorder:
                    recorder.write(
                        Record(time.time(), "udp", "data", "out", local, target, payload)
                    )
                if wait_reply is not None:
                    _take_reply(sock, wait_reply, target, result, local, recorder, on_reply)
        if wait_reply is None and result.sent and not broadcast:
            result.refused += _late_refusal(sock, REFUSAL_GRACE)
    _raise_shortfall(result, target, wait_reply)
    return result


def _send_one(
    sock: socket.socket, payload: bytes, sockaddr: tuple | None, result: SendResult
) -> None:
    for _ in range(_SEND_ATTEMPTS):
        try:
            if sockaddr is None:
                sock.send(payload)
            else:
                sock.sendto(payload, sockaddr)
            return
        except _REFUSED:  # an earlier datagram's refusal; this one is not sent yet
            result.refused += 1
    raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")


def _take_reply(
    sock: socket.socket,
    seconds: float,
    target: str,
    result: SendResult,
    local: str,
    recorder: Recorder | None,
    on_reply: Callable[[Datagram], None] | None,
) -> None:
    sock.settimeout(seconds)
    try:
        data, addr = sock.recvfrom(MAX_DATAGRAM)
    except TimeoutError:
        result.unanswered += 1
        return
    except _REFUSED:
        result.refused += 1
        return
    except OSError as exc:
        raise explain(exc, f"waiting for a reply from udp {target}") from None
    finally:
        sock.settimeout(None)
    reply = Datagram(data, format_address(addr), time.time())
    result.replies.append(reply)
    if recorder:
        recorder.write(Record(reply.ts, "udp", "data", "in", local, reply.peer, reply.data))
    if on_reply:
        on_reply(reply)


def _late_refusal(sock: socket.socket, grace: float) -> int:
    """1 if an ICMP refusal of the last datagram arrives within ``grace`` seconds, else 0."""
    sock.settimeout(grace)
    try:
        sock.recv(MAX_DATAGRAM, socket.MSG_PEEK)
    except _REFUSED:
        return 1
    except OSError:  # the time ran out (or a reply came, which nobody waits for)
        return 0
    finally:
        sock.settimeout(None)
    return 0


def _same_family(found: list[tuple], bind: tuple[str, int]) -> tuple:
    """The first of the target's addresses that a socket bound to ``bind`` can reach: an
    IPv4 source cannot send to an IPv6 target, nor the other way round."""
    families = {info[0] for info in resolve(*bind, socket.SOCK_DGRAM, proto="udp")}
    for info in found:
        if info[0] in families:
            return info
    kind = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
    raise UsageError(
        f"--bind {format_address(bind)} is {kind.get(min(families), 'another family')} and "
        f"{format_address(found[0][4])} is {kind.get(found[0][0], 'another family')}: bind "
        "an address of the target's kind (0.0.0.0:PORT for IPv4, [::]:PORT for IPv6)"
    )


def _explain_send(
    exc: OSError, doing: str, host: str, broadcast: bool, bound: socket.socket | None = None
) -> NetassistError:
    if bound is not None and exc.errno == errno.EINVAL:
        local = format_address(bound.getsockname())
        return NetassistError(
            f"{doing} from {local}: that local address cannot reach it (bind to an address "
            "of this machine on the way there, or 0.0.0.0)",
            ExitCode.NETWORK,
        )
    if broadcast and exc.errno == errno.ENETUNREACH:
        # 255.255.255.255 goes out by the default route; a LAN without one (or a machine
        # on several) needs the LAN's own broadcast address.
        return NetassistError(
            f"{doing}: network unreachable (no route for it: name the LAN's own broadcast "
            "address instead, such as 192.168.1.255, from ip addr's brd)",
            ExitCode.NETWORK,
        )
    if broadcast:
        return explain_denied(exc, doing, "a firewall may refuse it")
    return explain_denied(
        exc, doing, f"is {host} a broadcast address? add --broadcast to send to it"
    )


def _raise_shortfall(result: SendResult, target: str, wait_reply: float | None) -> None:
    if result.refused:
        sent = f"{result.sent} datagram{'' if result.sent == 1 else 's'} sent to udp {target}"
        message = (
            f"{sent}; the peer refused {result.refused}: connection refused, nothing listens "
            "on that port (is the listener running, on this port?)"
        )
        if result.unanswered:
            message += f"; {result.unanswered} more got no reply within {wait_reply:g} s"
        raise SendFailed(message, ExitCode.CONNECTION_REFUSED, result)
    if result.unanswered:
        raise SendFailed(
            f"no reply from udp {target} within {wait_reply:g} s to {result.unanswered} of "
            f"{result.sent} datagrams (is anything answering? raise --wait-reply to wait "
            "longer)",
            ExitCode.TIMEOUT,
            result,
        )


def read_lines(stream: BinaryIO, *, whole: bool = False) -> Iterator[bytes]:
    """The lines of ``stream`` (each with its line end), or all of it as one when ``whole``.

    Input longer than :data:`MAX_INPUT` raises :class:`BadDataError` once that much is read,
    so a line with no end in sight never fills memory.
    """
    number = 0
    while True:
        data = stream.read(MAX_INPUT + 1) if whole else stream.readline(MAX_INPUT + 1)
        if not data and not whole:  # empty input with --whole is one empty datagram
            return
        number += 1
        if len(data) > MAX_INPUT:
            where = "the input" if whole else f"line {number} of the input"
            raise BadDataError(
                f"{where} is over {MAX_INPUT // 1024} KiB, more than one datagram can carry "
                "(65,507 bytes at most); send it over tcp instead"
            )
        yield data
        if whole:
            return


class UdpListener:
    """A bound UDP socket that hands every datagram to ``on_datagram``.

    ``echo`` sends each datagram back to its sender; ``reply`` sends fixed bytes instead.
    ``on_batch_end`` runs after each run of datagrams that arrived together (to flush output
    once per batch rather than once per datagram).
    :meth:`serve` runs until ``count`` datagrams arrived, ``timeout`` seconds passed, or
    :meth:`stop` is called from another thread.
    """

    def __init__(
        self,
        host: str = DEFAULT_LISTEN_HOST,
        port: int = 0,
        *,
        on_datagram: Callable[[Datagram], None] | None = None,
        echo: bool = False,
        reply: bytes | None = None,
        recorder: Recorder | None = None,
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        self.sock = bind_udp(host, port)
        self.sock.setblocking(False)
        try:
            # A deeper queue rides out bursts while the display catches up (the kernel caps it).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        self.on_datagram = on_datagram
        self.on_batch_end = on_batch_end
        self.echo = echo
        self.reply = reply
        self.recorder = recorder
        self.received = 0
        self._peers: dict[object, str] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False

    @property
    def address(self) -> str:
        """The bound address as ``host:port`` (useful with port 0)."""
        return format_address(self.sock.getsockname())

    @property
    def port(self) -> int:
        """The bound port."""
        return self.sock.getsockname()[1]

    def serve(
        self,
        count: int | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Receive until ``count`` datagrams, ``timeout`` seconds in all, ``idle_timeout``
        seconds without a datagram, or :meth:`stop`.

        Returns how many arrived. When ``count`` was given and time ran out first, raises
        :class:`TimeoutExpired` saying how many of them came.
        """
        started = time.monotonic()
        last = started
        local = self.address
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping and (count is None or self.received < count):
                now = time.monotonic()
                waits = [
                    t
                    for t in (timeout and started + timeout, idle_timeout and last + idle_timeout)
                    if t
                ]
                remaining = min(waits) - now if waits else None
                if remaining is not None and remaining <= 0:
                    if count is not None:
                        why = (
                            f"{timeout:g} s"
                            if timeout and now >= started + timeout
                            else (f"{idle_timeout:g} s without a datagram")
                        )
                        raise TimeoutExpired(
                            f"timed out after {why}: received {self.received} of {count} "
                            f"datagrams on udp {local}"
                        )
                    break
                if selector.select(remaining) and self._take_queued(local, count):
                    last = time.monotonic()
        return self.received

    def _take_queued(self, local: str, count: int | None) -> int:
        """Take every datagram already queued (one wake-up, many datagrams); return how many."""
        taken = 0
        while count is None or self.received < count:
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except (ConnectionResetError, ConnectionRefusedError):
                # Windows reports an earlier answer's ICMP "unreachable" here; the socket is fine.
                continue
            except OSError as exc:
                raise explain(exc, f"receiving on udp {local}") from None
            taken += 1
            self._handle(local, data, addr)
        if taken and self.on_batch_end:
            self.on_batch_end()
        return taken

    def _handle(self, local: str, data: bytes, addr: object) -> None:
        ts = time.time()
        peer = self._peers.get(addr)
        if peer is None:
            if len(self._peers) > 4096:  # many senders: keep the cache bounded
                self._peers.clear()
            peer = self._peers[addr] = format_address(addr)
        self.received += 1
        if self.recorder:
            self.recorder.write(Record(ts, "udp", "data", "in", local, peer, data))
        if self.on_datagram:
            self.on_datagram(Datagram(data, peer, ts))
        answer = data if self.echo else self.reply
        if answer is not None:
            try:
                self.sock.sendto(answer, addr)
            except OSError:
                # One sender that went away must not stop the listener for everyone else.
                return
            if self.recorder:
                self.recorder.write(Record(time.time(), "udp", "data", "out", local, peer, answer))

    def stop(self) -> None:
        """Make :meth:`serve` return soon; safe to call from any thread."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        """Release the socket."""
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> UdpListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
