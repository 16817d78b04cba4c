"""A chat peer on a real socket: the protocol of :mod:`netassist.chat.protocol`, one UDP
socket, and one thread that receives, keeps time and sends.

The tutorial's chat has a sending thread and a receiving thread on one socket; so does this,
in effect: whoever sends (the user's thread) and the receiving thread share the socket and
take turns on the protocol's state under one lock. Events are handed to ``on_event`` under
that lock too, so they arrive in the order they happened (a message's ``Sent`` before its
``Delivered``), whichever thread caused them; ``on_event`` must be quick and must not call
back into the peer.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable

from netassist import addresses
from netassist.chat.protocol import (
    Address,
    ChatError,
    ChatProtocol,
    ChatSettings,
    Event,
    Joining,
    PeerInfo,
    TooLong,
)
from netassist.errors import BadDataError, NetassistError, UsageError, explain
from netassist.wire.sockets import bind_udp, format_address, resolve

#: Read buffer: a datagram larger than the largest UDP payload is not ours.
_RECV_SIZE = 65536
#: A deep receive queue rides out bursts (the kernel caps it).
_RECEIVE_BUFFER = 4 * 1024 * 1024
#: Datagrams taken per wake-up before timers get their turn.
_BATCH = 256
#: The longest the receiving thread sleeps, so a stop is seen even if a wake-up is lost.
_LONGEST_SLEEP = 1.0

EventHandler = Callable[[Event, float], None]


def user_error(exc: ChatError) -> NetassistError:
    """A protocol refusal as the command line reports it (too long: bad data, exit 4)."""
    if isinstance(exc, TooLong):
        return BadDataError(str(exc))
    return UsageError(str(exc))


def _parse_listed(text: str) -> Address | None:
    try:
        parsed = addresses.parse(text)
    except NetassistError:
        return None
    return parsed.host, parsed.port


class ChatPeer:
    """One member of a room on ``bind`` (``(host, port)``; port 0: any free port).

    ``on_event(event, time)`` gets every protocol event with the wall-clock time it happened.
    Call :meth:`start`, then :meth:`join` the peers you know and :meth:`send_text`; end with
    :meth:`close`, which says goodbye to the room.
    """

    def __init__(
        self,
        name: str,
        bind: tuple[str, int] = ("127.0.0.1", 0),
        *,
        key: bytes | None = None,
        settings: ChatSettings | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        try:
            self.protocol = ChatProtocol(
                name, key=key, settings=settings, parse_address=_parse_listed
            )
        except ChatError as exc:
            raise user_error(exc) from None
        self.on_event = on_event
        self.sock = bind_udp(*bind)
        self.sock.setblocking(False)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        self.family = self.sock.family
        self.send_errors = 0
        #: What stopped the receiving thread, if anything did.
        self.failure: NetassistError | None = None
        #: The last failure to send to each address (a few kept), for a caller to explain.
        self.send_failures: dict[Address, OSError] = {}
        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="chat-peer", daemon=True)

    @property
    def address(self) -> str:
        """Where this peer is bound, as ``host:port``."""
        return format_address(self.sock.getsockname())

    @property
    def id(self) -> str:
        """This run's id (a restarted peer has a new one)."""
        return self.protocol.id

    @property
    def name(self) -> str:
        """The name this peer goes by now."""
        return self.protocol.name

    def start(self) -> ChatPeer:
        """Start the receiving thread."""
        self._thread.start()
        return self

    # --- what the user does (any thread) -----------------------------------------------------

    def target(self, host: str, port: int) -> Address:
        """``host:port`` resolved to the address this socket sends to (an IPv4 address is
        mapped when the socket is IPv6)."""
        family = self.family
        try:
            found = resolve(host, port, socket.SOCK_DGRAM, proto="udp", family=family)
        except NetassistError:
            if family != socket.AF_INET6:
                raise
            found = resolve(host, port, socket.SOCK_DGRAM, proto="udp", family=socket.AF_INET)
            return f"::ffff:{found[0][4][0]}", port
        sockaddr = found[0][4]
        return sockaddr[0], sockaddr[1]

    def join(self, address: Address) -> None:
        """Introduce ourselves to the member at ``address`` (resolved: see :meth:`target`)."""
        with self._lock:
            self.protocol.join(address, time.monotonic())
            self._flush()

    def discover(self, broadcast: Address) -> None:
        """Ask every peer at the broadcast address ``broadcast`` to answer (``--discover``)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        with self._lock:
            self.protocol.join(broadcast, time.monotonic(), broadcast=True)
            self._flush()

    def add_plain_peer(self, address: Address) -> None:
        """A peer that sends and takes plain text datagrams (the tutorial's chat)."""
        with self._lock:
            self.protocol.add_plain_peer(address)

    def send_text(self, text: str, to: list[str] | None = None) -> str:
        """Send ``text`` to the room, or privately to the member ids ``to``; its id.

        Raises :class:`~netassist.chat.protocol.ChatError` (too long, no one to send to).
        """
        with self._lock:
            message_id = self.protocol.send_text(text, time.monotonic(), to)
            self._flush()
        return message_id

    def rename(self, name: str) -> None:
        """Take another name; the room is told at once."""
        with self._lock:
            self.protocol.rename(name, time.monotonic())
            self._flush()

    def peers(self) -> list[PeerInfo]:
        """The members (and plain peers) known now."""
        with self._lock:
            return self.protocol.peers()

    def find(self, name: str) -> list[PeerInfo]:
        """The members called ``name``."""
        with self._lock:
            return self.protocol.find(name)

    def joining(self) -> tuple[Joining, int]:
        """The joins still waiting for an answer, and how many members are known."""
        with self._lock:
            return self.protocol.joining, len(self.protocol.members)

    @property
    def pending(self) -> int:
        """Our messages still waiting for acknowledgements."""
        with self._lock:
            return self.protocol.pending

    def wait_settled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every message of ours is delivered or
        given up; whether that happened."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while self.protocol.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(min(remaining, _LONGEST_SLEEP))
        return True

    def close(self, *, leave: bool = True) -> None:
        """Say goodbye to the room (unless ``leave`` is false), stop the thread, release the
        socket. Safe to call more than once."""
        with self._lock:
            if leave and not self.protocol.left and self.sock.fileno() >= 0:
                self.protocol.leave(time.monotonic())
                self._flush()
            self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> ChatPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the receiving thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # kept for the user's thread to report (see failure)
            self.failure = exc if isinstance(exc, NetassistError) else explain(exc, "chatting")

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                with self._lock:
                    deadline = self.protocol.next_deadline()
                wait = _LONGEST_SLEEP
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                ready = selector.select(wait)
                if self._stopping:
                    return
                for key, _ in ready:
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                self._take_queued()

    def _take_queued(self) -> None:
        with self._lock:
            for _ in range(_BATCH):
                try:
                    data, source = self.sock.recvfrom(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except (ConnectionResetError, ConnectionRefusedError):
                    continue  # Windows reports an earlier datagram's ICMP "unreachable" here
                except OSError as exc:
                    if self._stopping:
                        return
                    raise explain(exc, f"receiving on udp {self.address}") from None
                self.protocol.receive(data, (source[0], source[1]), time.monotonic())
            self.protocol.tick(time.monotonic())
            self._flush()

    def _flush(self) -> None:
        """Send what the protocol wants sent and hand its events on (lock held)."""
        for address, data in self.protocol.take_datagrams():
            try:
                self.sock.sendto(data, address)
            except OSError as exc:
                # A peer gone or unreachable costs us nothing: the protocol retries and
                # reports what stays undelivered.
                self.send_errors += 1
                if len(self.send_failures) < 64:
                    self.send_failures[address] = exc
        events = self.protocol.take_events()
        if events:
            now = time.time()
            if self.on_event is not None:
                for event in events:
                    self.on_event(event, now)
            self._settled.notify_all()
