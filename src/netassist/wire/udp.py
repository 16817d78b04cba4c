"""UDP: send datagrams and wait for replies, or listen and show every datagram.

The tutorial's sender and receiver, grown up: any number of senders, replies, echo, a
stop condition, a log, and errors that say what happened (a refused port, a name that does
not resolve) instead of waiting forever.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from netassist.errors import BadDataError, TimeoutExpired, explain
from netassist.wire.record import Record, Recorder
from netassist.wire.sockets import DEFAULT_LISTEN_HOST, bind_udp, format_address, resolve

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
    """What :func:`send` did: datagrams sent, and the replies that came back."""

    sent: int = 0
    replies: list[Datagram] = field(default_factory=list)
    unanswered: int = 0


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
) -> SendResult:
    """Send each payload ``repeat`` times to ``host:port``, ``interval`` seconds apart.

    With ``wait_reply``, wait up to that many seconds after each datagram for an answer and
    pass it to ``on_reply``; when some datagram got none, :class:`TimeoutExpired` is raised
    after all were sent. The socket is connected, so only the target's answers count and an
    ICMP "port unreachable" shows up as a refused connection instead of silence.
    """
    family, socktype, proto, _, sockaddr = resolve(host, port, socket.SOCK_DGRAM, proto="udp")[0]
    target = format_address(sockaddr)
    result = SendResult()
    with socket.socket(family, socktype, proto) as sock:
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            raise explain(exc, f"sending to udp {target}") from None
        local = format_address(sock.getsockname())
        first = True
        for payload in payloads:
            for _ in range(repeat):
                if not first and interval > 0:
                    time.sleep(interval)
                first = False
                try:
                    sock.send(payload)
                except OSError as exc:
                    raise explain(exc, f"sending to udp {target}") from None
                result.sent += 1
                if recorder:
                    recorder.write(
                        Record(time.time(), "udp", "data", "out", local, target, payload)
                    )
                if wait_reply is not None:
                    reply = _await_reply(sock, wait_reply, target)
                    if reply is None:
                        result.unanswered += 1
                        continue
                    result.replies.append(reply)
                    if recorder:
                        recorder.write(
                            Record(reply.ts, "udp", "data", "in", local, target, reply.data)
                        )
                    if on_reply:
                        on_reply(reply)
    if result.unanswered:
        raise TimeoutExpired(
            f"no reply from udp {target} within {wait_reply:g} s to {result.unanswered} of "
            f"{result.sent} datagrams (is anything answering? raise --wait-reply to wait longer)"
        )
    return result


def _await_reply(sock: socket.socket, seconds: float, target: str) -> Datagram | None:
    sock.settimeout(seconds)
    try:
        data = sock.recv(MAX_DATAGRAM)
    except TimeoutError:
        return None
    except OSError as exc:
        raise explain(exc, f"waiting for a reply from udp {target}") from None
    finally:
        sock.settimeout(None)
    return Datagram(data, target, time.time())


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
                if selector.select(remaining) and self._drain(local, count):
                    last = time.monotonic()
        return self.received

    def _drain(self, local: str, count: int | None) -> int:
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
