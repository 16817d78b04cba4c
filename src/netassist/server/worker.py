"""One worker process: accept connections, read requests, run the WSGI app, write responses.

Design
------
Every socket is non-blocking and registered in one epoll set with ``EPOLLONESHOT``. The
worker's ``threads`` take turns at ``epoll.poll`` on that same set; the thread that gets an
event owns that connection until it re-arms it, so no connection is ever touched by two
threads at once and no request is handed from thread to thread (no cross-thread wake-up
per request). With one thread this is a plain event loop that calls the app inline. With
more, one thread polls and serves while the apps it calls return quickly, and the others
sleep; when it has been busy with one event for a millisecond (an app blocked on I/O) the
next thread takes over polling, so a blocked app holds only its own thread while the
others keep serving.

What a thread may wait for is bounded: a request head or body that has not fully arrived
goes back to epoll (a slow client holds no thread), bodies are buffered before the app is
called (spooled to a temporary file when large), and a response that does not fit into the
socket is resumed on ``EPOLLOUT`` where it stopped. Deadlines (head, keep-alive idle, body
progress, send progress) are swept once a second; only the offending connection is closed.

The exception is ``Expect: 100-continue``: the app is called at once with a live
``wsgi.input`` that sends ``100 Continue`` on first read and then reads the socket itself.

Linux's epoll is required for more than one thread; elsewhere (macOS, Windows) the same
loop runs on ``selectors`` with one thread.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import select
import selectors
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from stat import S_ISREG
from typing import IO, Any

from netassist.corking import CORK_MIN, set_cork
from netassist.server.config import ServerConfig
from netassist.server.protocol import (
    CLOSED,
    NEED_DATA,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
    ServerConnection,
)
from netassist.server.wsgi import EMPTY_INPUT, EnvironBuilder, FileWrapper, StartResponse, WSGIApp

log = logging.getLogger("netassist.server")
access_log = logging.getLogger("netassist.access")

_read_fd = os.read
_write_fd = os.write
RECV_SIZE = 64 * 1024  # below the allocator's mmap threshold: a bigger recv costs a mmap per call
LINGER_SECONDS = 2.0
_NEVER = float("inf")  # the deadline of a connection whose app is running
# Bytes per sendfile call. 2 MiB (nginx's sendfile_max_chunk) moved a 1 GiB file to curl
# about 10% faster here than one call for everything (medians of 9 runs each: 2.06 against
# 1.87 GB/s, bench/README.md).
SENDFILE_CHUNK = 2 << 20
SWEEP_INTERVAL = 1.0
# With several threads, how long the polling thread may be busy with one event before
# another thread takes over polling (see _loop_taking_turns).
HANDOFF_AFTER = 0.001
QUIET_AFTER, QUIET_TICK = 0.05, 0.02  # how the turn watcher idles

# What a connection is doing; the deadline that applies follows from it.
HEAD, BODY, APP, SEND, LINGER = range(5)

_HAS_EPOLL = hasattr(select, "epoll")
if _HAS_EPOLL:
    _IN = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
    _OUT = select.EPOLLOUT | select.EPOLLONESHOT
    # With one thread nothing needs excluding: a connection stays armed (level-triggered)
    # and costs no epoll_ctl per request.
    _IN_LEVEL = select.EPOLLIN | select.EPOLLRDHUP
    _OUT_LEVEL = select.EPOLLOUT
else:  # pragma: no cover - exercised on non-Linux systems only
    _IN, _OUT = selectors.EVENT_READ, selectors.EVENT_WRITE
    _IN_LEVEL, _OUT_LEVEL = _IN, _OUT


class Connection:
    """One client connection and where it stands."""

    __slots__ = (
        "armed",
        "body",
        "body_size",
        "builder",
        "closed",
        "corked",
        "deadline",
        "environ",
        "fd",
        "file",
        "head_started",
        "iterator",
        "lock",
        "out",
        "phase",
        "proto",
        "registered",
        "remote",
        "request",
        "result",
        "sock",
        "start",
        "started_at",
    )

    def __init__(
        self, sock: socket.socket, remote: Any, proto: ServerConnection, builder: EnvironBuilder
    ):
        self.sock = sock
        self.fd = sock.fileno()
        self.remote = remote if isinstance(remote, tuple) else None
        self.proto = proto
        self.builder = builder
        self.environ = builder.connection_base(self.remote)
        self.armed = 0  # the level-triggered mask this connection is registered with
        # One start_response per connection, reset for each request (_call_app): a new one
        # per request cost 1.4k of about 52k instructions (bench/README.md).
        self.start = StartResponse(None)
        self.lock = threading.Lock()
        self.closed = False
        self.corked = False
        self.registered = False
        self.phase = HEAD
        self.deadline = 0.0
        self.head_started = 0.0
        self.request: Request | None = None
        self.body: Any = None
        self.body_size = 0
        self.result: Any = None
        self.iterator: Any = None
        self.out = b""
        self.file: list[int] | None = None  # [file fd, offset, remaining, total] during sendfile
        self.started_at = 0.0


class LiveInput(io.RawIOBase):
    """``wsgi.input`` for ``Expect: 100-continue``: sends ``100 Continue`` on the first
    read, then reads the body from the socket as the app asks for it."""

    def __init__(self, worker: Worker, conn: Connection) -> None:
        self._worker = worker
        self._conn = conn
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Get the next piece of body into the buffer; False at the end."""
        if self._done:
            return False
        conn = self._conn
        proto = conn.proto
        continue_bytes = proto.continue_response()
        if continue_bytes:
            self._worker.send_blocking(conn, continue_bytes)
        while True:
            event = proto.next_event()  # ProtocolError propagates to the app as an error
            if isinstance(event, Data):
                self._buffer += event.data
                return True
            if isinstance(event, EndOfMessage) or event is not NEED_DATA:
                self._done = True
                return False
            data = self._worker.recv_blocking(conn)
            proto.receive_data(data)

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            if not self._fill():
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self._buffer and (size is None or size < 0 or len(self._buffer) < size):
            if not self._fill():
                break
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line


class _Poller:
    """epoll with one-shot arming, or a selectors fallback for a single thread."""

    def __init__(self) -> None:
        # The bound methods themselves, not Python methods forwarding to them: with several
        # threads modify() runs once per request, and a forwarding frame costs about as much
        # as the call it forwards.
        self.poll: Callable[[float, int], list[tuple[int, int]]]
        self.register: Callable[[int, int], object]
        self.modify: Callable[[int, int], object]
        if _HAS_EPOLL:
            self._epoll = select.epoll()
            self.poll = self._epoll.poll
            self.register = self._epoll.register
            self.modify = self._epoll.modify
        else:  # pragma: no cover
            self._selector = selectors.DefaultSelector()
            self.poll = self._poll_selector
            self.register = self.modify = self._arm_selector

    def unregister(self, fd: int) -> None:
        try:
            if _HAS_EPOLL:
                self._epoll.unregister(fd)
            else:  # pragma: no cover
                self._selector.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass

    def _arm_selector(self, fd: int, mask: int) -> None:
        # Polling unregisters what it returns (one-shot), so arming an fd that is already
        # known may find it registered or not.
        try:
            self._selector.modify(fd, mask)
        except KeyError:
            self._selector.register(fd, mask)

    def _poll_selector(
        self, timeout: float, maxevents: int
    ) -> list[tuple[int, int]]:  # pragma: no cover
        ready = []
        for key, mask in self._selector.select(timeout):
            self._selector.unregister(key.fd)  # one-shot, like EPOLLONESHOT
            ready.append((key.fd, mask))
        return ready

    def close(self) -> None:
        if _HAS_EPOLL:
            self._epoll.close()
        else:  # pragma: no cover
            self._selector.close()


class Worker:
    """Serves ``app`` on already-listening ``sockets`` until :meth:`stop`."""

    def __init__(self, app: WSGIApp, config: ServerConfig, sockets: list[socket.socket]) -> None:
        self.app = app
        self.config = config
        self.threads = config.threads if _HAS_EPOLL else 1
        self.poller = _Poller()
        self.listeners: dict[int, tuple[socket.socket, EnvironBuilder]] = {}
        self.conns: dict[int, Connection] = {}
        self.stopping = False
        self._accept_paused = False
        self._sweep_lock = threading.Lock()
        # --threads N: whose turn it is to poll (see _loop_taking_turns).
        self._poll_turn = threading.Lock()
        self._turn_guard = threading.Lock()
        self._turn = 0
        self._busy: tuple[float] | None = None  # (since,) while an event is served
        self._pending: deque[tuple[int, int]] = deque()  # polled, not yet served
        self._next_sweep = 0.0
        self._wake_r, self._wake_w = os.pipe()
        self.poller.register(self._wake_r, select.EPOLLIN if _HAS_EPOLL else selectors.EVENT_READ)
        self._log_access = config.access_log is not None
        self._keep_alive = config.keep_alive
        self._level = _HAS_EPOLL and self.threads == 1
        self._in, self._out = (_IN_LEVEL, _OUT_LEVEL) if self._level else (_IN, _OUT)
        self.now = time.monotonic()  # read once per batch of events: deadlines are coarse
        multiprocess = config.workers > 1
        for sock in sockets:
            sock.setblocking(False)
            name = sock.getsockname()
            if isinstance(name, tuple):
                server_name, server_port = str(name[0]), str(name[1])
            else:
                server_name, server_port = str(name), ""
            builder = EnvironBuilder(
                server_name=server_name,
                server_port=server_port,
                multithread=self.threads > 1,
                multiprocess=multiprocess,
                script_name=config.script_name,
            )
            self.listeners[sock.fileno()] = (sock, builder)
            self.poller.register(sock.fileno(), _IN)

    # --- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop`; returns after in-flight requests finished."""
        helpers = [
            threading.Thread(target=self._loop, name=f"netassist-worker-{i}", daemon=True)
            for i in range(1, self.threads)
        ]
        if helpers:
            helpers.append(
                threading.Thread(target=self._watch_turns, name="netassist-turns", daemon=True)
            )
        for thread in helpers:
            thread.start()
        try:
            self._loop()
            self._drain()
        finally:
            for thread in helpers:
                thread.join(self.config.send_timeout)
            self._shutdown()

    def stop(self) -> None:
        """Stop accepting and leave :meth:`run` once busy connections finish; thread- and
        signal-safe."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _loop(self) -> None:
        if self.threads > 1:
            self._loop_taking_turns()
        else:
            poll = self.poller.poll
            if self.config.busy_poll:
                poll = partial(self._poll_busy, poll, self.config.busy_poll / 1e6)
            # One thread: the handler is called directly, without the per-connection lock.
            self._serve(poll)

    def _serve(self, poll: Any) -> None:
        """Poll and dispatch events on the only thread until stopping."""
        listeners = self.listeners
        conns = self.conns
        handle = self._handle_unlocked
        while not self.stopping:
            try:
                events = poll(SWEEP_INTERVAL, 64)
            except InterruptedError:
                continue
            self.now = now = time.monotonic()
            for fd, mask in events:
                conn = conns.get(fd)
                if conn is not None:
                    handle(conn, mask)
                elif fd in listeners:
                    self._accept(fd)
            if now >= self._next_sweep:
                self._sweep(now)

    def _loop_taking_turns(self) -> None:
        """The loop of each of several threads: one at a time polls and serves.

        If every thread waited in epoll, each GIL release at a syscall would wake another
        one, all of them would stay runnable and take turns on the core, and a request would
        wait behind the others' time slices (13 ms p99 at c50: bench/README.md). So only the
        thread holding ``_poll_turn`` polls and serves, and it keeps the turn while
        its events are served quickly; the others sleep on the lock. When it has been busy
        with one event for ``HANDOFF_AFTER`` (an app blocked on I/O, a slow upload),
        ``_watch_turns`` passes the turn on, so a blocked app holds only its own thread.
        """
        while not self.stopping:
            if not self._poll_turn.acquire(timeout=SWEEP_INTERVAL):
                continue
            turn = self._turn
            self._serve_turn(turn)
            self._pass_turn(turn)

    def _serve_turn(self, turn: int) -> None:
        """Serve events until stopping or until ``turn`` is over.

        Events are polled in batches into ``_pending``, shared by all threads: a batch left
        unfinished when the turn passes on (its holder blocked in an app) is where the next
        holder starts, so no event waits behind a blocked thread, and a busy worker makes
        one ``epoll_wait`` per batch instead of one per request.
        """
        poll = self.poller.poll
        pending = self._pending
        conns = self.conns
        listeners = self.listeners
        clock = time.monotonic
        while not self.stopping and self._turn == turn:
            if not pending:
                try:
                    events = poll(SWEEP_INTERVAL, 64)
                except InterruptedError:
                    continue
                now = clock()
                if now >= self._next_sweep:
                    self._sweep(now)
                pending.extend(events)
            while self._turn == turn:
                try:
                    fd, mask = pending.popleft()
                except IndexError:
                    break
                # Per event, not per batch: the watcher measures from it how long this
                # event has kept the thread busy.
                self.now = clock()
                conn = conns.get(fd)
                if conn is not None:
                    self._handle_in_turn(conn, mask)
                elif fd in listeners:
                    self._accept(fd)

    def _handle_in_turn(self, conn: Connection, mask: int) -> None:
        busy = self._busy = (self.now,)  # a new tuple per event: the watcher compares identity
        self._on_event(conn, mask)
        with self._turn_guard:
            if self._busy is busy:  # else the turn was passed on while this event ran
                self._busy = None

    def _pass_turn(self, turn: int) -> None:
        """Let the next thread poll, if ``turn`` is still the current one."""
        with self._turn_guard:
            if self._turn == turn:
                self._next_turn()

    def _next_turn(self) -> None:
        # Called with _turn_guard held.
        self._turn += 1
        self._busy = None
        self._poll_turn.release()

    def _watch_turns(self) -> None:
        """Pass the turn on when its holder has been busy with one event too long.

        Only while that same event still runs (the identical ``_busy``): the turn then
        never moves while its holder waits in epoll, so a holder never polls without it.
        """
        last_seen_busy = 0.0
        while not self.stopping:
            # Tick every HANDOFF_AFTER while events are being served; an idle worker checks
            # only now and then (the first slow app after a quiet spell waits a little
            # longer for its handoff), so idling costs next to no CPU.
            quiet = time.monotonic() - last_seen_busy > QUIET_AFTER
            time.sleep(QUIET_TICK if quiet else HANDOFF_AFTER)
            busy = self._busy
            if busy is None:
                continue
            now = last_seen_busy = time.monotonic()
            if now - busy[0] >= HANDOFF_AFTER:
                with self._turn_guard:
                    if self._busy is busy:
                        self._next_turn()

    @staticmethod
    def _poll_busy(
        poll: Any, window: float, timeout: float, maxevents: int
    ) -> list[tuple[int, int]]:
        """Poll without sleeping for ``window`` seconds, then wait as usual.

        Waking a core that went idle costs more than handling a small request (here about
        15 us of a 45 us round trip with one client: bench/README.md); a short spin after
        the last event keeps the core awake for the next one. Under load the first poll
        finds events and nothing spins.
        """
        events = poll(0, maxevents)
        if events:
            return events
        clock = time.perf_counter
        end = clock() + window
        while clock() < end:
            events = poll(0, maxevents)
            if events:
                return events
        return poll(timeout, maxevents)

    # --- accepting ----------------------------------------------------------------------------

    def _accept(self, fd: int) -> None:
        sock, builder = self.listeners[fd]
        config = self.config
        for _ in range(64):
            if len(self.conns) >= config.max_connections:
                self._accept_paused = True
                return  # the listener stays disarmed until a connection closes
            try:
                client, remote = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept more connections: %s", exc.strerror)
                    break
                continue  # ECONNABORTED and friends: that client is gone, others are not
            client.setblocking(False)
            if client.family != socket.AF_UNIX:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(
                client, remote, ServerConnection(config.limits, config.server_name), builder
            )
            conn.deadline = self.now + config.header_timeout
            conn.start.write = partial(self._write_callable, conn)
            self.conns[conn.fd] = conn
            if self.threads > 1:
                # Let whichever thread is free take it: reading it here would queue every new
                # connection's first request behind this thread's app call.
                with conn.lock:
                    self._arm(conn, self._in)
                continue
            with conn.lock:
                # With TCP_DEFER_ACCEPT the request is usually here already: no epoll round trip.
                self._read(conn)
        self._rearm_listener(fd)

    def _rearm_listener(self, fd: int) -> None:
        if not self.stopping:
            try:
                self.poller.modify(fd, _IN)
            except (OSError, ValueError):
                pass

    # --- events ---------------------------------------------------------------------------------

    def _on_event(self, conn: Connection, mask: int) -> None:
        """An event with several threads (one thread calls :meth:`_handle_unlocked`)."""
        # Wait, do not skip: the holder is the thread that just re-armed this connection (and
        # is about to let go) or the sweeper; skipping would lose a one-shot event for good.
        conn.lock.acquire()
        try:
            self._handle(conn)
        finally:
            conn.lock.release()

    def _handle_unlocked(self, conn: Connection, mask: int) -> None:
        try:
            if conn.phase <= BODY:
                self._read(conn)  # the hot path: a request (or more of its body) arrived
            elif not conn.closed:
                self._handle(conn)
        except Exception:  # a bug of ours must cost one connection, never the worker
            log.exception("internal error serving %s", conn.remote)
            self._close(conn)

    def _handle(self, conn: Connection) -> None:
        try:
            if conn.closed:
                return
            if conn.phase == SEND:
                self._pump(conn)
            elif conn.phase == LINGER:
                self._linger(conn)
            else:
                self._read(conn)
        except Exception:  # a bug of ours must cost one connection, never the worker
            log.exception("internal error serving %s", conn.remote)
            self._close(conn)

    def _arm(self, conn: Connection, mask: int) -> None:
        if conn.armed == mask or conn.closed:
            return  # level-triggered and already watching for this
        try:
            if conn.registered:
                self.poller.modify(conn.fd, mask)
            else:
                # Marked first: once registered, another thread may handle it at once.
                conn.registered = True
                self.poller.register(conn.fd, mask)
        except OSError:
            self._close(conn)
            return
        if self._level:
            conn.armed = mask

    def _read(self, conn: Connection) -> None:
        try:
            # os.read/os.write: the same syscalls as recv/send with no flags, about 500
            # instructions cheaper per call than the socket methods' argument parsing.
            data = _read_fd(conn.fd, RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            self._arm(conn, self._in)
            return
        except OSError:
            self._close(conn)
            return
        if conn.phase == HEAD and data:
            try:
                request = conn.proto.receive_head(data)
            except ProtocolError as error:
                self._send_error(conn, error)
                return
            if request is not None and self._on_request(conn, request):
                return
        else:
            conn.proto.receive_data(data)
        self._process(conn)

    def _on_request(self, conn: Connection, request: Request) -> bool:
        """Start on a request head; True when the app was called (its body, if any, is
        read as the app asks), False when a buffered body is to be read first."""
        conn.request = request
        conn.head_started = 0.0
        if not request.has_body:
            # No body: its Content-Length, if any, is 0, which is what the app should see.
            self._call_app(conn, EMPTY_INPUT, request.content_length)
            return True
        if request.expect_continue:
            self._call_app(conn, LiveInput(self, conn), request.content_length)
            return True
        conn.phase = BODY
        conn.body = io.BytesIO()
        conn.body_size = 0
        return False

    def _process(self, conn: Connection) -> None:
        """Turn buffered bytes into requests and responses until more input is needed."""
        proto = conn.proto
        config = self.config
        while True:
            try:
                event = proto.next_event()
            except ProtocolError as error:
                self._send_error(conn, error)
                return
            if event is NEED_DATA:
                now = time.monotonic()
                if conn.phase == BODY:
                    conn.deadline = now + config.body_timeout
                elif proto.buffered and not conn.head_started:
                    # The next head has begun: from now on it must arrive within header_timeout.
                    conn.head_started = now
                    conn.deadline = now + config.header_timeout
                self._arm(conn, self._in)
                return
            if isinstance(event, Request):
                if self._on_request(conn, event):
                    return
                continue
            if isinstance(event, Data):
                body = conn.body
                body.write(event.data)
                conn.body_size += len(event.data)
                if type(body) is io.BytesIO and conn.body_size > config.body_memory:
                    conn.body = _spool(body)
                continue
            if isinstance(event, EndOfMessage):
                body = conn.body
                body.seek(0)
                self._call_app(conn, body, conn.body_size)
                return
            if event is CLOSED:
                self._close(conn)
                return
            # PAUSED cannot come here: _finish starts the next cycle before processing again.
            log.error("unexpected protocol event %r", event)
            self._close(conn)
            return

    # --- the application -----------------------------------------------------------------------

    def _call_app(self, conn: Connection, body: Any, content_length: int | None) -> None:
        request = conn.request
        assert request is not None
        conn.phase = APP
        conn.deadline = _NEVER
        if self._log_access:
            conn.started_at = time.time()
        environ = conn.builder.build(conn.environ, request, body, content_length)
        start = conn.start
        start.status = start.headers = None
        start.headers_sent = False
        try:
            result = self.app(environ, start)
        except Exception:
            log.exception(
                "error in the application for %s %s", request.method, environ.get("RAW_URI")
            )
            self._respond_500(conn)
            return
        conn.result = result
        # The common case: a list with one bytes object, sent with its head in one call.
        if type(result) is list and len(result) == 1 and not start.headers_sent:
            self._send_whole(conn, start, result[0])
            return
        if type(result) is FileWrapper and self._try_sendfile(conn, result):
            return
        try:
            conn.iterator = iter(result)
        except Exception:
            log.exception("the application returned something that is not iterable")
            self._respond_500(conn)
            return
        conn.phase = SEND
        self._pump(conn)

    def _head(self, conn: Connection) -> bytes:
        start = conn.start
        if start.status is None or start.headers is None:
            raise RuntimeError("the application did not call start_response")
        start.headers_sent = True
        return conn.proto.response_head(start.status, start.headers)

    def _send_whole(self, conn: Connection, start: StartResponse, chunk: bytes) -> None:
        try:
            if type(chunk) is not bytes:
                raise TypeError(f"the application returned {type(chunk).__name__}, not bytes")
            if start.status is None or start.headers is None:
                raise RuntimeError("the application did not call start_response")
            start.headers_sent = True
            out = conn.proto.whole_response(start.status, start.headers, chunk)
        except (ValueError, TypeError, RuntimeError) as exc:
            log.error("bad response from the application: %s", exc)
            self._respond_500(conn)
            return
        try:
            sent = _write_fd(conn.fd, out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent == len(out):
            self._finish(conn)
            return
        conn.out = out[sent:]
        conn.phase = SEND
        self._pump(conn)

    def _pump(self, conn: Connection) -> None:
        """Send what is pending, pulling more from the app's iterable, until done or blocked."""
        proto = conn.proto
        while True:
            if conn.out:
                if not self._send_some(conn):
                    return
                continue
            if conn.file is not None:
                if not self._sendfile_some(conn):
                    return
                continue
            iterator = conn.iterator
            if iterator is None:
                self._finish(conn)
                return
            try:
                chunk = next(iterator)
            except StopIteration:
                conn.iterator = None
                try:
                    out = b"" if conn.start.headers_sent else self._head(conn)
                except (ValueError, RuntimeError) as exc:
                    log.error("bad response from the application: %s", exc)
                    self._respond_500(conn)
                    return
                conn.out = out + proto.end_response()
                continue
            except Exception:
                log.exception("error in the application's response iterable")
                conn.iterator = None
                if not conn.start.headers_sent:
                    self._respond_500(conn)
                else:
                    self._close(conn)  # half a response went out: only a close ends it honestly
                return
            if not chunk:
                continue
            if type(chunk) is not bytes:
                log.error("the application yielded %s, not bytes", type(chunk).__name__)
                if not conn.start.headers_sent:
                    self._respond_500(conn)
                else:
                    self._close(conn)
                return
            try:
                head = b"" if conn.start.headers_sent else self._head(conn)
            except (ValueError, RuntimeError) as exc:
                log.error("bad response from the application: %s", exc)
                self._respond_500(conn)
                return
            conn.out = head + proto.response_body(chunk)

    def _send_some(self, conn: Connection) -> bool:
        """Send ``conn.out``; True when all of it went, False when the socket is full."""
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return False
        if sent == len(conn.out):
            conn.out = b""
            return True
        conn.out = conn.out[sent:]
        conn.phase = SEND
        conn.deadline = time.monotonic() + self.config.send_timeout
        self._arm(conn, self._out)
        return False

    def _try_sendfile(self, conn: Connection, wrapper: FileWrapper) -> bool:
        """Send a file wrapper with os.sendfile when it is a regular file and framing allows."""
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            stat = os.fstat(fd)
            offset = filelike.tell()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        if not hasattr(os, "sendfile") or not S_ISREG(stat.st_mode):
            return False
        start = conn.start
        if start.status is None or start.headers is None:
            return False
        remaining = max(0, stat.st_size - offset)
        declared = next((v for n, v in start.headers if n.lower() == "content-length"), None)
        if declared is None:
            start.headers.append(("Content-Length", str(remaining)))
        elif declared.isdigit():
            remaining = min(remaining, int(declared))
        try:
            head = self._head(conn)
        except (ValueError, RuntimeError) as exc:
            log.error("bad response from the application: %s", exc)
            self._respond_500(conn)
            return True
        if conn.request is not None and conn.request.method == "HEAD":
            remaining = 0
        conn.out = head
        conn.file = [fd, offset, remaining, remaining]
        if remaining >= CORK_MIN and set_cork(conn.sock, True):
            conn.corked = True
        conn.iterator = None
        conn.phase = SEND
        self._pump(conn)
        return True

    def _sendfile_some(self, conn: Connection) -> bool:
        state = conn.file
        assert state is not None
        fd, offset, remaining, total = state
        while remaining > 0:
            try:
                sent = os.sendfile(conn.fd, fd, offset, min(remaining, SENDFILE_CHUNK))
            except (BlockingIOError, InterruptedError):
                state[1], state[2] = offset, remaining
                conn.deadline = time.monotonic() + self.config.send_timeout
                self._arm(conn, self._out)
                return False
            except OSError:
                self._close(conn)
                return False
            if sent == 0:  # the file shrank under us: the response cannot be completed
                self._close(conn)
                return False
            offset += sent
            remaining -= sent
        conn.file = None
        if conn.corked:
            conn.corked = False
            set_cork(conn.sock, False)  # pushes out the last partial segment
        conn.proto.count_body_sent(total)
        conn.out = conn.proto.end_response()
        return True

    def _write_callable(self, conn: Connection, data: bytes) -> None:
        """The legacy ``write()`` of start_response: sends at once, blocking this thread."""
        if type(data) is not bytes:
            raise TypeError("write() takes bytes")
        start = conn.start
        head = b"" if start.headers_sent else self._head(conn)
        self.send_blocking(conn, head + conn.proto.response_body(data))

    def _respond_500(self, conn: Connection) -> None:
        self._close_result(conn)
        conn.iterator = None
        out = conn.proto.error_response(500)
        if not out:
            self._close(conn)
            return
        conn.out = out
        conn.phase = SEND
        self._pump(conn)

    def _send_error(self, conn: Connection, error: ProtocolError) -> None:
        out = conn.proto.error_response(error)
        if not out:
            self._close(conn)
            return
        conn.out = out
        conn.phase = SEND
        conn.iterator = None
        self._pump(conn)

    def _close_result(self, conn: Connection) -> None:
        result, conn.result = conn.result, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("error in the application's close()")

    def _finish(self, conn: Connection) -> None:
        """The response is out: close the app's iterable, then keep-alive or close."""
        if type(conn.result) is list:
            conn.result = None  # the usual answer: nothing to close
        else:
            self._close_result(conn)
        proto = conn.proto
        if self._log_access and conn.request is not None:
            self._access(conn)
        if conn.body is not None:
            conn.body.close()  # a spooled temporary file is deleted here
            conn.body = None
        # An app that left a 100-continue body unread: read the rest away, or close.
        # (A request without a body is complete with its head: the property is not asked.)
        request = conn.request
        if (
            (request is None or request.has_body)
            and proto.keep_alive
            and not proto.request_complete
            and not self._discard_body(conn)
        ):
            proto.keep_alive = False
        if not proto.keep_alive or self.stopping:
            self._begin_linger(conn)
            return
        waiting = proto.start_next_cycle()
        conn.phase = HEAD
        conn.request = None
        conn.deadline = time.monotonic() + self._keep_alive
        if waiting:
            self._process(conn)  # a pipelined request, or the end, is already here
        elif conn.armed != self._in:  # level-triggered: usually still armed for input
            self._arm(conn, self._in)

    def _discard_body(self, conn: Connection) -> bool:
        proto = conn.proto
        budget = 1 << 20
        try:
            while budget > 0:
                event = proto.next_event()
                if isinstance(event, EndOfMessage) or proto.request_complete:
                    return True
                if isinstance(event, Data):
                    budget -= len(event.data)
                    continue
                if event is NEED_DATA:
                    proto.receive_data(self.recv_blocking(conn, self.config.body_timeout))
                    continue
                return False
        except (ProtocolError, OSError):
            return False
        return False

    def _access(self, conn: Connection) -> None:
        request = conn.request
        assert request is not None
        status = conn.start.status or "-"
        remote = conn.remote[0] if conn.remote else "-"
        took = time.time() - conn.started_at
        access_log.info(
            '%s "%s %s HTTP/%s" %s %.1fms',
            remote,
            request.method,
            request.target.decode("latin-1"),
            request.version,
            status.split(" ", 1)[0],
            took * 1000,
        )

    # --- closing ---------------------------------------------------------------------------

    def _begin_linger(self, conn: Connection) -> None:
        """Close our side, then read away what the client still sends for a moment, so
        its unread request bytes do not turn our close into a reset that loses the response."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.phase = LINGER
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        while True:
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                self._arm(conn, self._in)
                return
            except OSError:
                data = b""
            if not data:
                self._close(conn)
                return

    def _close(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._close_result(conn)
        if conn.registered:
            self.poller.unregister(conn.fd)
        self.conns.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass
        if self._accept_paused and len(self.conns) < self.config.max_connections:
            self._accept_paused = False
            for fd in self.listeners:
                self._rearm_listener(fd)

    def _sweep(self, now: float) -> None:
        if not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + SWEEP_INTERVAL
            for conn in list(self.conns.values()):
                if conn.deadline < now and conn.lock.acquire(blocking=False):
                    try:
                        if conn.deadline < now and not conn.closed:
                            if conn.phase == HEAD and conn.head_started:
                                self._timeout_response(conn)
                            self._close(conn)
                    finally:
                        conn.lock.release()
        finally:
            self._sweep_lock.release()

    def _timeout_response(self, conn: Connection) -> None:
        try:
            conn.sock.send(conn.proto.error_response(408, "the request head took too long"))
        except OSError:
            pass

    def _drain(self) -> None:
        """After :meth:`stop`: accept no more, close idle keep-alive connections, and go on
        serving the others until their responses are out (each under its own timeouts), for
        at most ``send_timeout`` in all. Runs on the main thread once the loops have ended;
        a helper thread may still be finishing an event of its own."""
        for fd in list(self.listeners):
            self.poller.unregister(fd)
        self.poller.unregister(self._wake_r)  # stop()'s byte would keep the poll readable
        handle = self._on_event if self.threads > 1 else self._handle_unlocked
        pending = self._pending
        conns = self.conns
        end = time.monotonic() + self.config.send_timeout
        while True:
            # Requests that have already arrived are answered (and their connections then
            # closed) before the idle ones are.
            if not pending:
                pending.extend(self.poller.poll(0.05, 64))
            while pending:
                fd, mask = pending.popleft()
                self.now = time.monotonic()
                conn = conns.get(fd)
                if conn is not None:
                    handle(conn, mask)
            self.now = now = time.monotonic()
            self._sweep(now)  # every round: a lingering close ends on time, not up to 1 s late
            if not self._close_idle() or now >= end:
                return

    def _close_idle(self) -> int:
        """Close the connections waiting for a request that has not begun; return how many
        others are left (reading a request, in the app, sending, or closing)."""
        busy = 0
        for conn in list(self.conns.values()):
            if conn.phase == HEAD and not conn.head_started and conn.lock.acquire(blocking=False):
                try:
                    if conn.phase == HEAD and not conn.head_started:
                        self._close(conn)
                        continue
                finally:
                    conn.lock.release()
            busy += 1
        return busy

    def _shutdown(self) -> None:
        for conn in list(self.conns.values()):
            with conn.lock:
                self._close(conn)
        self.poller.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- blocking helpers for write() and 100-continue bodies ------------------------------------

    def send_blocking(self, conn: Connection, data: bytes) -> None:
        """Send all of ``data`` from the current thread, waiting up to send_timeout per step."""
        view = memoryview(data)
        while view:
            try:
                sent = conn.sock.send(view)
            except (BlockingIOError, InterruptedError):
                _wait(conn.sock, write=True, timeout=self.config.send_timeout)
                continue
            view = view[sent:]

    def recv_blocking(self, conn: Connection, timeout: float | None = None) -> bytes:
        """Receive once from the current thread, waiting up to body_timeout."""
        while True:
            try:
                return conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                _wait(conn.sock, write=False, timeout=timeout or self.config.body_timeout)


def _wait(sock: socket.socket, *, write: bool, timeout: float) -> None:
    poller = select.poll()
    poller.register(sock, select.POLLOUT if write else select.POLLIN)
    if not poller.poll(timeout * 1000):
        raise TimeoutError("the client did not keep up")


def _spool(body: io.BytesIO) -> IO[bytes]:
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _finish
    spooled.write(body.getbuffer())
    return spooled


def listen(config: ServerConfig) -> list[socket.socket]:
    """Open the listening sockets of ``config`` (TCP and Unix), with clear errors."""
    from netassist.errors import explain

    sockets = []
    for bind in config.binds:
        try:
            if bind.path is not None:
                if os.path.exists(bind.path) and _is_stale_socket(bind.path):
                    os.unlink(bind.path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(bind.path)
            else:
                infos = socket.getaddrinfo(
                    bind.host, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
                family, socktype, proto, _, address = infos[0]
                sock = socket.socket(family, socktype, proto)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                if hasattr(socket, "TCP_DEFER_ACCEPT"):
                    # Wake us only when the request has arrived, not at the bare handshake.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
                sock.bind(address)
            sock.listen(config.backlog)
        except OSError as exc:
            for opened in sockets:
                opened.close()
            raise explain(exc, f"binding {bind}") from None
        sockets.append(sock)
    return sockets


def _is_stale_socket(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return True
    finally:
        probe.close()
    return False


def raise_fd_limit() -> None:
    """Lift the soft open-file limit to the hard one, for many keep-alive connections."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
