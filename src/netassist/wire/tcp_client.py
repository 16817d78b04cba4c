"""TCP client: an nc-style session that copies a source to a socket and the socket back.

:func:`run_session` copies a source (stdin, ``--send`` texts, a file) to the socket on one
thread and the socket to a callback on the calling thread; at the end of the source it
half-closes, so the peer sees end-of-file and can answer and close, as HTTP/1.0 and most line
protocols expect.
"""

from __future__ import annotations

import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from netassist.errors import NetassistError, TimeoutExpired, UsageError, explain
from netassist.paths import kind_of
from netassist.wire.codecs import PayloadMaker
from netassist.wire.record import Record, Recorder
from netassist.wire.sockets import CHUNK, connect_tcp, format_address
from netassist.wire.stdin import StdinReader


def connect(host: str, port: int, timeout: float | None = 10.0) -> socket.socket:
    """Connect to ``host:port`` (IPv4, IPv6 or a name), giving up after ``timeout`` seconds."""
    return connect_tcp(host, port, timeout)


class Channel:
    """The sending half of a client session, handed to a source on the sender thread."""

    def __init__(self, sock: socket.socket, recorder: Recorder | None, conn: int = 1) -> None:
        self.sock = sock
        self.recorder = recorder
        self.conn = conn
        self.local = format_address(sock.getsockname())
        self.peer = format_address(sock.getpeername())
        self.bytes_out = 0
        self.last_activity = time.monotonic()

    def send(self, data: bytes) -> None:
        """Send all of ``data`` (and log it)."""
        if not data:
            return
        self.sock.sendall(data)
        self.bytes_out += len(data)
        self.last_activity = time.monotonic()
        if self.recorder:
            self.recorder.write(
                Record(
                    time.time(), "tcp", "data", "out", self.local, self.peer, bytes(data), self.conn
                )
            )

    def send_file(self, path: str | Path) -> None:
        """Send a whole file: zero-copy with ``sendfile`` unless every byte must be logged."""
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise explain(exc, f"opening {path}") from None
        with handle:
            if self.recorder is None:
                self.bytes_out += self.sock.sendfile(handle)
                self.last_activity = time.monotonic()
                return
            while chunk := handle.read(CHUNK):
                self.send(chunk)


#: A source writes everything it has to the channel, then returns.
Source = Callable[[Channel], None]


class StdinSource:
    """A source that reads stdin to its end: raw bytes, or converted as it streams in when
    typed input must be (hex, CRLF, another encoding), in bounded memory.

    :func:`run_session` calls :meth:`stop` when the session ends first (the peer closed,
    Ctrl-C), so the sending thread does not stay behind waiting for input.
    """

    def __init__(self, maker: PayloadMaker, reader: StdinReader | None = None) -> None:
        self.maker = maker
        self.reader = reader if reader is not None else StdinReader()

    def __call__(self, channel: Channel) -> None:
        """Send everything read to ``channel``; the reader is closed at the end."""
        try:
            self.maker.copy(self.reader.read, channel.send)
        finally:
            self.reader.close()

    def stop(self) -> None:
        """End the input early; safe from any thread."""
        self.reader.stop()


def stdin_source(maker: PayloadMaker, reader: StdinReader | None = None) -> StdinSource:
    """A :class:`StdinSource` reading ``reader`` (stdin when not given)."""
    return StdinSource(maker, reader)


def parts_source(texts: Iterable[bytes] = (), files: Iterable[str | Path] = ()) -> Source:
    """A source that sends the given payloads, then the given files, in order.

    Every file is checked now, so a typo fails before anything is connected or sent.
    """
    payloads, paths = list(texts), [Path(p) for p in files]
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise explain(exc, f"opening {path}") from None
        if stat.S_ISDIR(mode):
            raise explain(IsADirectoryError(21, "is a directory"), f"opening {path}")
        if not stat.S_ISREG(mode):
            # A device or a FIFO has no end to send: it was called "no such file" here.
            raise UsageError(
                f"--file {path} is {kind_of(mode)}: only regular files can be sent "
                f"(pipe a stream in on stdin instead, as in: < {path})"
            )

    def source(channel: Channel) -> None:
        for payload in payloads:
            channel.send(payload)
        for path in paths:
            channel.send_file(path)

    return source


@dataclass
class SessionResult:
    """Byte counts of a finished client session."""

    bytes_in: int = 0
    bytes_out: int = 0


def run_session(
    sock: socket.socket,
    source: Source | None,
    on_data: Callable[[bytes], None],
    *,
    idle_timeout: float | None = None,
    half_close: bool = True,
    recorder: Recorder | None = None,
) -> SessionResult:
    """Copy ``source`` to ``sock`` and everything received to ``on_data`` until the peer closes.

    At the end of the source the sending side is shut down (``half_close``), the way
    ``printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc host 80`` needs. ``idle_timeout`` ends the session
    with :class:`TimeoutExpired` after that many seconds with no data either way. A failure
    in the source (a bad hex line, a missing file) ends the session with that error.

    When the session ends while the source still runs (the peer closed first, Ctrl-C), the
    source is stopped (its ``stop()``, when it has one) and the sending thread is waited
    for, so nothing is left running when this returns.
    """
    channel = Channel(sock, recorder)
    if recorder:
        recorder.write(
            Record(time.time(), "tcp", "open", "out", channel.local, channel.peer, conn=1)
        )
    failure: list[BaseException] = []
    ended = threading.Event()

    def pump() -> None:
        try:
            if source is not None:
                source(channel)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # handed to the receiving thread, which reports it
            if ended.is_set():
                return  # cut short because the session ended: not the source's failure
            failure.append(exc)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    sender = threading.Thread(target=pump, name="netassist-send", daemon=True)
    sender.start()
    result = SessionResult()
    last_in = 0.0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while True:
                wait = None
                if idle_timeout is not None:
                    idle = time.monotonic() - max(channel.last_activity, last_in)
                    wait = idle_timeout - idle
                    if wait <= 0:
                        raise TimeoutExpired(
                            f"no data to or from {channel.peer} for {idle_timeout:g} s; closed "
                            "(raise --idle-timeout to wait longer)"
                        )
                if not selector.select(wait):
                    continue
                try:
                    count = sock.recv_into(buffer)
                except OSError as exc:
                    if failure:
                        break
                    raise explain(exc, f"reading from {channel.peer}") from None
                if not count:
                    break
                data = bytes(view[:count])
                result.bytes_in += count
                last_in = time.monotonic()
                if recorder:
                    recorder.write(
                        Record(
                            time.time(), "tcp", "data", "in", channel.local, channel.peer, data, 1
                        )
                    )
                on_data(data)
    finally:
        ended.set()
        _stop_sender(sender, source, sock)
        if recorder:
            recorder.write(
                Record(time.time(), "tcp", "close", "in", channel.local, channel.peer, conn=1)
            )
    if failure:
        exc = failure[0]
        if isinstance(exc, NetassistError):
            raise exc
        raise explain(exc, f"sending to {channel.peer}") from None
    result.bytes_out = channel.bytes_out
    return result


def _stop_sender(sender: threading.Thread, source: Source | None, sock: socket.socket) -> None:
    if not sender.is_alive():
        return
    stop = getattr(source, "stop", None)
    if stop is not None:
        stop()
    sender.join(0.5)
    if sender.is_alive():
        # Still sending, to a peer that does not read: cut the connection under it.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sender.join(5)
