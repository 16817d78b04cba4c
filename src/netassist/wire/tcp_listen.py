"""TCP listener: serves many clients at once from one selector loop.

:class:`TcpListener` is one thread around a selector: every socket is non-blocking, each
client has its own output buffer, and nothing a client does (sending fast, reading slowly,
vanishing) can stall the others. ``broadcast`` is the tutorial's chat as a server, like
``ncat --chat``: each line is relayed to everyone else, prefixed with the sender's name and
with control characters escaped so no client can drive another's terminal.
"""

from __future__ import annotations

import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from netassist.errors import NetassistError, explain
from netassist.wire.codecs import PayloadMaker, check_encoding, show_bytes
from netassist.wire.record import Record, Recorder
from netassist.wire.sockets import CHUNK, DEFAULT_LISTEN_HOST, format_address, listen_tcp
from netassist.wire.stdin import StdinReader

#: A client whose unsent output passes this is too slow for a broadcast and is dropped.
BROADCAST_BUFFER_LIMIT = 8 * 1024 * 1024
#: With echo, stop reading a client while this much of its echo is still unsent.
ECHO_HIGH_WATER = 4 * 1024 * 1024
#: A broadcast line is relayed at this length even without its newline.
MAX_LINE = 64 * 1024
MAX_NAME = 32


@dataclass(eq=False)
class ListenerClient:
    """One connected client of a :class:`TcpListener`."""

    id: int
    sock: socket.socket
    peer: str
    name: str
    outbuf: bytearray = field(default_factory=bytearray)
    inbuf: bytearray = field(default_factory=bytearray)
    events: int = 0
    eof: bool = False  # the client sent end-of-file; close once its output is out
    paused: bool = False  # not reading, until its echo drains

    @property
    def tag(self) -> str:
        """``[name]`` for display."""
        return f"[{self.name}]"


class TcpListener:
    """Accepts TCP clients and serves them all from one selector loop.

    Callbacks (all run on the serving thread): ``on_open(client)``, ``on_data(client, data)``,
    ``on_close(client, reason)`` and ``on_refused(peer)``; ``on_tick()`` runs after each
    round of events and returns in how many seconds it wants to run again even if nothing
    happens (``None``: not until something does). ``keep_open=False`` serves one client and
    returns when it leaves, like ``nc -l``; ``broadcast`` implies ``keep_open``.
    """

    def __init__(
        self,
        host: str = DEFAULT_LISTEN_HOST,
        port: int = 0,
        *,
        echo: bool = False,
        broadcast: bool = False,
        keep_open: bool = False,
        max_clients: int | None = None,
        encoding: str = "utf-8",
        recorder: Recorder | None = None,
        on_open: Callable[[ListenerClient], None] | None = None,
        on_data: Callable[[ListenerClient, bytes], None] | None = None,
        on_close: Callable[[ListenerClient, str], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        on_tick: Callable[[], float | None] | None = None,
    ) -> None:
        if echo and broadcast:
            raise NetassistError("choose --echo or --broadcast, not both")
        self.sock = listen_tcp(host, port)
        self.sock.setblocking(False)
        self.echo = echo
        self.broadcast = broadcast
        self.keep_open = keep_open or broadcast
        self.max_clients = max_clients
        self.encoding = check_encoding(encoding)
        self.recorder = recorder
        self.on_open = on_open
        self.on_data = on_data
        self.on_close = on_close
        self.on_refused = on_refused
        self.on_tick = on_tick
        self.clients: dict[int, ListenerClient] = {}
        self.served = 0
        self._local = format_address(self.sock.getsockname())
        self._accepting = True
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full wake-up pipe already wakes the loop
        self._commands: deque[Callable[[], None]] = deque()
        self._host_inbuf = bytearray()
        self._stopping = False

    @property
    def address(self) -> str:
        """The listening address as ``host:port`` (useful with port 0)."""
        return self._local

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self._local.rsplit(":", 1)[1])

    # --- called from other threads -------------------------------------------------------

    def send_all(self, data: bytes) -> None:
        """Send ``data`` to every connected client; safe from any thread.

        In broadcast mode each line of it is labelled ``[host]`` like a chat message.
        """
        self._call_soon(lambda: self._send_from_host(data))

    def end_host_input(self) -> None:
        """What the host types has ended: in broadcast mode, relay an unfinished last line."""
        self._call_soon(lambda: self._send_from_host(b"", end=True))

    def stop(self) -> None:
        """Make :meth:`serve` return soon; safe from any thread."""
        self._stopping = True
        self._call_soon(lambda: None)

    def _call_soon(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # --- the loop --------------------------------------------------------------------------

    def serve(self, timeout: float | None = None) -> int:
        """Serve until stopped, until the one client left (without ``keep_open``), or until
        ``timeout`` seconds passed. Returns how many clients were served."""
        deadline = None if timeout is None else time.monotonic() + timeout
        selector = self._selector
        selector.register(self.sock, selectors.EVENT_READ, "accept")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        tick_at = None
        try:
            while not self._stopping:
                if not self.keep_open and self.served and not self.clients:
                    break
                now = time.monotonic()
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    break
                if tick_at is not None:
                    until_tick = max(0.0, tick_at - now)
                    wait = until_tick if wait is None else min(wait, until_tick)
                for key, mask in selector.select(wait):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._run_commands()
                    else:
                        client: ListenerClient = key.data
                        if mask & selectors.EVENT_WRITE and client.id in self.clients:
                            self._flush(client)
                        if mask & selectors.EVENT_READ and client.id in self.clients:
                            self._read(client)
                if self.on_tick is not None:
                    delay = self.on_tick()
                    tick_at = None if delay is None else time.monotonic() + delay
        finally:
            for client in list(self.clients.values()):
                self._drop(client, "listener stopped")
        return self.served

    def _run_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._commands:
            self._commands.popleft()()

    def _accept(self) -> None:
        while self._accepting:
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of descriptors or a client that reset before accept: keep listening.
                return
            peer = format_address(addr)
            if self.max_clients is not None and len(self.clients) >= self.max_clients:
                sock.close()
                if self.on_refused:
                    self.on_refused(peer)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.served += 1
            client = ListenerClient(self.served, sock, peer, peer)
            self.clients[client.id] = client
            self._update(client)
            if self.recorder:
                self.recorder.write(
                    Record(time.time(), "tcp", "open", "in", self._local, peer, conn=client.id)
                )
            if self.on_open:
                self.on_open(client)
            if self.broadcast:
                others = len(self.clients) - 1
                self._queue(
                    client,
                    self._line(
                        f"* welcome {client.name}: {others} other(s) here; type /name NEW to rename"
                    ),
                )
                self._announce(f"* {client.name} joined", skip=client)
            if not self.keep_open:
                # Like nc -l: one client, then the listening socket is gone.
                self._accepting = False
                self._selector.unregister(self.sock)
                self.sock.close()

    def _read(self, client: ListenerClient) -> None:
        try:
            data = client.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(client, str(explain(exc, "reading")).split(": ", 1)[-1])
            return
        if not data:
            self._end_of_input(client)
            return
        if self.recorder:
            self.recorder.write(
                Record(time.time(), "tcp", "data", "in", self._local, client.peer, data, client.id)
            )
        if self.on_data:
            self.on_data(client, data)
        if self.echo:
            self._queue(client, data)
            if len(client.outbuf) > ECHO_HIGH_WATER:
                client.paused = True
                self._update(client)
        elif self.broadcast:
            self._relay(client, data)

    def _end_of_input(self, client: ListenerClient) -> None:
        client.eof = True
        if self.broadcast:
            for line in _take_lines(client.inbuf, end=True):
                self._relay_line(client, line)
            self._announce(f"* {client.name} left", skip=client)
        if client.outbuf:
            self._update(client)  # write what is left, then close
        else:
            self._drop(client, "closed by peer")

    def _flush(self, client: ListenerClient) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(client, str(explain(exc, "writing")).split(": ", 1)[-1])
            return
        del client.outbuf[:sent]
        if not client.outbuf and client.eof:
            self._drop(client, "closed by peer")
            return
        if client.paused and len(client.outbuf) <= ECHO_HIGH_WATER // 2:
            client.paused = False
        self._update(client)

    def _queue(self, client: ListenerClient, data: bytes) -> None:
        if not data or client.id not in self.clients:
            return
        if self.recorder:
            self.recorder.write(
                Record(time.time(), "tcp", "data", "out", self._local, client.peer, data, client.id)
            )
        was_empty = not client.outbuf
        client.outbuf += data
        if was_empty:
            # Most sends complete at once; try before paying for a selector round.
            self._flush(client)
        if (
            self.broadcast
            and client.id in self.clients
            and len(client.outbuf) > BROADCAST_BUFFER_LIMIT
        ):
            self._drop(client, "too slow to keep up with the broadcast")

    def _update(self, client: ListenerClient) -> None:
        events = 0
        if not client.eof and not client.paused:
            events |= selectors.EVENT_READ
        if client.outbuf:
            events |= selectors.EVENT_WRITE
        if events == client.events:
            return
        if client.events == 0:
            self._selector.register(client.sock, events, client)
        elif events == 0:
            self._selector.unregister(client.sock)
        else:
            self._selector.modify(client.sock, events, client)
        client.events = events

    def _drop(self, client: ListenerClient, reason: str) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        if client.events:
            self._selector.unregister(client.sock)
            client.events = 0
        client.sock.close()
        if self.recorder:
            self.recorder.write(
                Record(time.time(), "tcp", "close", "in", self._local, client.peer, conn=client.id)
            )
        if self.on_close:
            self.on_close(client, reason)
        if self.broadcast and not client.eof and not self._stopping:
            self._announce(f"* {client.name} left ({reason})", skip=client)

    # --- broadcast -------------------------------------------------------------------------

    def _line(self, text: str) -> bytes:
        return (text + "\n").encode(self.encoding, "backslashreplace")

    def _announce(self, text: str, skip: ListenerClient | None = None) -> None:
        line = self._line(text)
        for other in list(self.clients.values()):
            if other is not skip:
                self._queue(other, line)

    def _relay(self, client: ListenerClient, data: bytes) -> None:
        client.inbuf += data
        for line in _take_lines(client.inbuf):
            self._relay_line(client, line)
            if client.id not in self.clients:
                return

    def _relay_line(self, client: ListenerClient, line: bytes) -> None:
        text = self._shown(line)
        command, _, argument = text.partition(" ")
        if command in ("/name", "/nick"):
            new = argument.strip()[:MAX_NAME]
            if new and new != "host" and all(c.name != new for c in self.clients.values()):
                old, client.name = client.name, new
                self._announce(f"* {old} is now {new}")
            else:
                self._queue(client, self._line(f"* name {new!r} is taken or empty"))
            return
        message = self._line(f"{client.tag} {text}")
        for other in list(self.clients.values()):
            if other is not client:
                self._queue(other, message)

    def _send_from_host(self, data: bytes, end: bool = False) -> None:
        if self.broadcast:
            self._host_inbuf += data
            data = b"".join(
                self._line(f"[host] {self._shown(line)}")
                for line in _take_lines(self._host_inbuf, end=end)
            )
        for client in list(self.clients.values()):
            self._queue(client, data)

    def _shown(self, line: bytes) -> str:
        return show_bytes(line.rstrip(b"\r"), self.encoding)

    def close(self) -> None:
        """Release the listening socket and every client."""
        for client in list(self.clients.values()):
            self._drop(client, "listener closed")
        if self._accepting:
            self.sock.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> TcpListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _take_lines(buffer: bytearray, end: bool = False) -> list[bytes]:
    """Remove the complete lines from ``buffer`` and return them without their newlines.

    A line that reaches :data:`MAX_LINE` without a newline counts as complete, and so does
    what is left at the ``end`` of the input.
    """
    lines = []
    start = 0
    while (newline := buffer.find(b"\n", start)) >= 0:
        lines.append(bytes(buffer[start:newline]))
        start = newline + 1
    del buffer[:start]
    if buffer and (end or len(buffer) >= MAX_LINE):
        lines.append(bytes(buffer))
        buffer.clear()
    return lines


class HostInput:
    """What the host types, sent to every client from a thread of its own.

    A thread reads stdin because Windows cannot select on it; it reads through a
    :class:`StdinReader`, so :meth:`stop` ends it even while it waits for input.
    """

    def __init__(
        self, listener: TcpListener, maker: PayloadMaker, reader: StdinReader | None = None
    ) -> None:
        self.listener = listener
        self.maker = maker
        self.reader = reader if reader is not None else StdinReader()
        self.thread = threading.Thread(target=self._run, name="netassist-stdin", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.maker.copy(self.reader.read, self.listener.send_all)
            self.listener.end_host_input()
        except (NetassistError, OSError, ValueError) as exc:
            print(f"netassist: stdin: {exc}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stop reading and wait for the thread (where the platform lets a read be ended)."""
        self.reader.stop()
        self.thread.join(1.0 if self.reader.stoppable else 0)
        if not self.thread.is_alive():
            self.reader.close()

    def __enter__(self) -> HostInput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
