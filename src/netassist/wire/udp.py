"""UDP: send datagrams and wait for replies, or listen and show every datagram.

The tutorial's sender and receiver, grown up: any number of senders, replies, echo, a
stop condition, a log, and errors that say what happened (a refused port, a name that does
not resolve) instead of waiting forever.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netassist.errors import TimeoutExpired, explain
from netassist.wire.record import Record, Recorder
from netassist.wire.sockets import DEFAULT_LISTEN_HOST, bind_udp, format_address, resolve

MAX_DATAGRAM = 65535


@dataclass(frozen=True, slots=True)
class Datagram:
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


class UdpListener:
    """A bound UDP socket that hands every datagram to ``on_datagram``.

    ``echo`` sends each datagram back to its sender; ``reply`` sends fixed bytes instead.
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
    ) -> None:
        self.sock = bind_udp(host, port)
        self.sock.setblocking(False)
        self.on_datagram = on_datagram
        self.echo = echo
        self.reply = reply
        self.recorder = recorder
        self.received = 0
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

    def serve(self, count: int | None = None, timeout: float | None = None) -> int:
        """Receive until ``count`` datagrams, ``timeout`` seconds, or :meth:`stop`.

        Returns how many arrived. When ``count`` was given and the time ran out first,
        raises :class:`TimeoutExpired` saying how many of them came.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        local = self.address
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping and (count is None or self.received < count):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if count is not None:
                        raise TimeoutExpired(
                            f"timed out after {timeout:g} s: received {self.received} of "
                            f"{count} datagrams on udp {local}"
                        )
                    break
                if not selector.select(remaining):
                    continue
                self._receive_ready(local)
        return self.received

    def _receive_ready(self, local: str) -> None:
        try:
            data, addr = self.sock.recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return
        except (ConnectionResetError, ConnectionRefusedError):
            # Windows reports an earlier reply's ICMP "port unreachable" here; the socket is fine.
            return
        except OSError as exc:
            raise explain(exc, f"receiving on udp {local}") from None
        ts = time.time()
        peer = format_address(addr)
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
