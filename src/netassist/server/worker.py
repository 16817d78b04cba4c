"""One worker process: accept connections, read requests, run the WSGI app, write responses.

Design
------
Every socket is non-blocking and registered in one poller (``poller.py``). With one thread
this is a plain event loop that calls the app inline, connections armed level-triggered.
With ``--threads N`` connections are armed one-shot and the threads take turns polling and
serving (``turns.py``): the thread that gets an event owns that connection until it re-arms
it, so no connection is ever touched by two threads at once and no request is handed from
thread to thread.

What a thread may wait for is bounded: a request head or body that has not fully arrived
goes back to the poller (a slow client holds no thread), bodies are buffered before the app
is called (spooled to a temporary file when large), and a response that does not fit into
the socket is resumed when the socket is writable, where it stopped. Deadlines (head,
keep-alive idle, body progress, send progress) are swept once a second; only the offending
connection is closed.

The exception is ``Expect: 100-continue``: the app is called at once with a live
``wsgi.input`` (``wsgi.LiveInput``) that sends ``100 Continue`` on first read and then reads
the socket from the app's thread.

More than one thread needs epoll (Linux). Elsewhere the same loop runs on ``selectors`` with
one thread, reads and writes through the socket methods, and sends files by reading them;
``tests/server/test_portability_integration.py`` runs it with the POSIX-only names deleted.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from itertools import chain
from stat import S_ISREG
from typing import Any

from netassist.corking import CORK_MIN, set_cork
from netassist.server import cores, forwarded
from netassist.server.config import ServerConfig
from netassist.server.logs import AccessLog, Entry
from netassist.server.poller import HAS_EPOLL, IN, IN_LEVEL, OUT, OUT_LEVEL, Poller, Waker
from netassist.server.protocol import (
    CLOSED,
    NEED_DATA,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
    ServerConnection,
)
from netassist.server.turns import Turns
from netassist.server.wsgi import (
    EMPTY_INPUT,
    EnvironBuilder,
    FileWrapper,
    LiveInput,
    StartResponse,
    WSGIApp,
    spool,
)

log = logging.getLogger("netassist.server")

RECV_SIZE = 64 * 1024  # below the allocator's mmap threshold: a bigger recv costs a mmap per call
LINGER_SECONDS = 2.0
_NEVER = float("inf")  # the deadline of a connection whose app is running
# Bytes per sendfile call. 2 MiB (nginx's sendfile_max_chunk) moved a 1 GiB file to curl
# about 10% faster here than one call for everything (medians of 9 runs each: 2.06 against
# 1.87 GB/s, bench/README.md).
SENDFILE_CHUNK = 2 << 20
SWEEP_INTERVAL = 1.0
#: The longest a whole response is held back for its poll's batch to end (either core, one
#: thread): long enough to gather a few answers of a real app (a Flask route takes about
#: 0.1 ms), short enough that no client notices (bench/README.md, issue 20: holding back).
CORK_WINDOW = 0.0005
# Connections taken per wake-up of the listener. A worker alone takes a burst at once; one of
# several takes one, so a burst of new clients (wrk's 50 at its start) spreads over the workers
# instead of landing on whichever woke first.
ACCEPT_ALONE, ACCEPT_SHARED = 64, 1
_AF_UNIX = getattr(socket, "AF_UNIX", None)  # missing on Windows
# os.read/os.write skip the socket methods' argument parsing; Windows sockets need the methods.
_read: Callable[[Any, int], bytes] = os.read if HAS_EPOLL else socket.socket.recv
_write: Callable[[Any, bytes], int] = os.write if HAS_EPOLL else socket.socket.send
_HAS_SENDFILE = hasattr(os, "sendfile")
# start_response: compiled with the compiled core (the same rules: tests/server/test_wsgi.py).
_StartResponse = cores.speedups.StartResponse if cores.speedups is not None else StartResponse
# Files whose read() runs to the end of the file, so sendfile from tell() sends what
# iterating them would.
_PLAIN_FILES = (io.BufferedReader, io.FileIO)

# What a connection is doing; the deadline that applies follows from it. (Not the parser's
# states: those are about the request's bytes, these about the connection's work.)
READ_HEAD, READ_BODY, IN_APP, WRITE, LINGER, HANDSHAKE = range(6)


def core_name(config: ServerConfig, tls: bool, access: bool) -> str:
    """Which core a worker of ``config`` serves with, for the listening line."""
    if cores.speedups is None:
        return cores.PURE + (" (NETASSIST_PURE is set)" if cores.forced_pure() else "")
    if not HAS_EPOLL or tls or access:
        return f"{cores.PURE} (the compiled one serves plain HTTP on epoll without an access log)"
    return cores.COMPILED


def _tls_read(sock: ssl.SSLSocket, size: int) -> bytes:
    """``_read`` of a TLS worker: what OpenSSL has decrypted, all of it (a record read
    only in part would wait for an event that never comes)."""
    try:
        data = sock.recv(size)
        while sock.pending():
            data += sock.recv(sock.pending())
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError from None
    return data


def _tls_write(sock: ssl.SSLSocket, data: bytes) -> int:
    """``_write`` of a TLS worker."""
    try:
        return sock.send(data)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError from None


def _serve_tls() -> None:
    """Make this process's reads and writes go through TLS. A process serves either TLS or
    plain HTTP (--certfile applies to every bind), and the hot path reads these two module
    names: choosing per worker or per connection cost 300 or more instructions a request."""
    global _read, _write
    _read, _write = _tls_read, _tls_write  # type: ignore[assignment]


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
        "io",
        "iterator",
        "lock",
        "out",
        "phase",
        "proto",
        "registered",
        "remote",
        "request",
        "result",
        "seen",
        "sent",
        "sock",
        "start",
        "started_at",
    )

    def __init__(
        self, sock: socket.socket, remote: Any, proto: ServerConnection, builder: EnvironBuilder
    ):
        self.sock = sock
        self.fd = sock.fileno()
        self.io = self.fd if HAS_EPOLL else sock  # what _read and _write take
        self.remote = remote if isinstance(remote, tuple) else None
        self.proto = proto
        self.builder = builder
        self.environ = builder.connection_base(self.remote)
        self.armed = 0  # the level-triggered mask this connection is registered with
        # One start_response per connection, reset per request: building one costs more.
        self.start = _StartResponse(None)
        self.lock = threading.Lock()
        self.closed = False
        self.corked = False
        self.registered = False
        self.phase = READ_HEAD
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
        # For the access log only: the environ the app saw and the body bytes it produced.
        self.seen: dict | None = None
        self.sent = 0


class _Held:
    """The whole responses the pure core holds back during one poll's batch (Worker._serve)."""

    __slots__ = ("answers", "app_started", "since")

    def __init__(self) -> None:
        self.answers: list[tuple[Connection, bytes]] = []
        self.since = 0.0  # when the first of them was held
        self.app_started = 0.0  # when the last app was called


class Worker:
    """Serves ``app`` on already-listening ``sockets`` until :meth:`stop`."""

    def __init__(
        self,
        app: WSGIApp,
        config: ServerConfig,
        sockets: list[socket.socket],
        *,
        access: AccessLog | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.threads = config.threads if HAS_EPOLL else 1
        self.poller = Poller()
        # fd -> (socket, the environ builder of its connections, and of those from a proxy
        # that --forwarded-allow-ips believes)
        self.listeners: dict[int, tuple[socket.socket, EnvironBuilder, EnvironBuilder]] = {}
        self.conns: dict[int, Connection] = {}
        self.stopping = False
        # Whether a response ends its connection because the worker stops (TERM of the
        # whole server), rather than the connection being kept until its next request, which
        # is then answered with "Connection: close" (a worker retiring while others serve).
        self._closing = False
        #: --max-requests: the count after which on_limit is called (0: never).
        self.max_requests = 0
        self.handled = 0
        #: Called once when max_requests is reached (the arbiter starts a replacement).
        self.on_limit: Callable[[], None] | None = None
        #: Called about once a second from the loop, with the monotonic time (heartbeat).
        self.on_tick: Callable[[float], None] | None = None
        self._accept_batch = ACCEPT_ALONE if config.workers == 1 else ACCEPT_SHARED
        self.peers = forwarded.TrustedPeers(config.forwarded_allow_ips)
        self._accept_paused = False
        self._sweep_lock = threading.Lock()
        self._next_sweep = 0.0
        self._waker = Waker()
        self.poller.register(self._waker.fd, IN_LEVEL)
        self.access = access
        self._log_access = access is not None
        self._tls = tls
        if tls is not None:
            _serve_tls()
        self._keep_alive = config.keep_alive
        self._level = HAS_EPOLL and self.threads == 1
        self._in, self._out = (IN_LEVEL, OUT_LEVEL) if self._level else (IN, OUT)
        #: --threads N: how they take turns on the poller (turns.py).
        self.turns = Turns(
            self.poller.poll, self._on_event, self._sweep, poll_timeout=SWEEP_INTERVAL
        )
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
                url_scheme="http" if tls is None else "https",
                multithread=self.threads > 1,
                multiprocess=multiprocess,
                script_name=config.script_name,
            )
            self.listeners[sock.fileno()] = (sock, builder, builder.trusting(self.peers))
            self.poller.register(sock.fileno(), IN)
        #: The compiled core, serving the common requests in place of _read, or None.
        self._core: Any = None
        #: Whole responses of the pure core waiting for the poll's batch to end; None when
        #: they are written at once (see _serve). One attribute for all of it: an instance
        #: of more than 30 attributes loses CPython's shared-key dict, and every self.x of
        #: the hot path gets slower (1,600 instructions a request).
        self._held: _Held | None = None
        if core_name(config, tls is not None, access is not None) == cores.COMPILED:
            limits = config.limits
            self._core = self._read = cores.speedups.Core(  # type: ignore[union-attr]
                self,
                app,
                (
                    limits.max_request_line,
                    limits.max_header_bytes,
                    limits.max_header_field,
                    limits.max_header_count,
                ),
                config.server_name,
                config.keep_alive,
                EMPTY_INPUT,
                Request,
                FileWrapper,
                self._in,
                partial(Worker._read, self),
            )

    # --- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop`; returns after in-flight requests finished."""
        helpers = [
            threading.Thread(target=self.turns.loop, name=f"netassist-worker-{i}", daemon=True)
            for i in range(1, self.threads)
        ]
        if helpers:
            helpers.append(
                threading.Thread(target=self.turns.watch, name="netassist-turns", daemon=True)
            )
        for thread in helpers:
            thread.start()
        try:
            self._loop()
            self._finish_in_flight()
        finally:
            for thread in helpers:
                thread.join(self.config.graceful_timeout)
            self._shutdown()

    def stop(self, *, retire: bool = False) -> None:
        """Stop accepting and leave :meth:`run` once busy connections finish, within
        ``graceful_timeout``; thread- and signal-safe. The listening sockets are closed (this
        process's descriptors only) as soon as the loops have ended; refusing new clients at
        once is their owner's call (``arbiter.shut``), since every process shares them.

        The whole server stopping closes idle keep-alive connections at once. A worker that
        ``retire``s while others go on serving (reload, --max-requests, TTOU) keeps each
        connection until its next request, answers that with ``Connection: close``, and lets
        idle ones run out their keep-alive time: a client never finds a connection closed
        under a request it has just sent."""
        self._closing = not retire
        self.stopping = True
        self.turns.stop()
        self._waker.wake()

    def tick_soon(self) -> None:
        """Run the once-a-second work (and :attr:`on_tick`) now; signal-safe."""
        self._next_sweep = 0.0
        self.turns._next_tick = 0.0
        self._waker.wake()

    def requests_in_app(self) -> list[tuple[str, str, float | None]]:
        """The requests whose app calls are running now: ``(method, target, started)``,
        ``started`` on the monotonic clock when known. Read from the threads' frames, so it
        costs the hot path nothing, and works from a signal handler while an app is stuck:
        the arbiter names the request of a worker it kills for silence."""
        found = []
        for frame in sys._current_frames().values():
            conn, started = None, None
            while frame is not None:
                code = frame.f_code
                if code is _CALL_APP and conn is None:
                    conn = frame.f_locals.get("conn")
                elif code is _SERVE and started is None:
                    started = frame.f_locals.get("now")  # the poll this request came in
                elif code is _SERVE_TURN and started is None:
                    busy = frame.f_locals.get("busy")  # the event's own start
                    started = busy[0] if busy else None
                frame = frame.f_back
            request = getattr(conn, "request", None)
            if request is not None:
                found.append((request.method, request.target.decode("latin-1"), started))
        if self._core is not None:  # the compiled core's app calls have no frame of ours
            found += [
                (method, target, started) for _, method, target, started, _ in self._core.running
            ]
        return found

    def _loop(self) -> None:
        if self.threads > 1:
            self.turns.loop()
        else:
            poll = self.poller.poll
            if self.config.busy_poll:
                poll = partial(_poll_busy, poll, self.config.busy_poll / 1e6)
            self._serve(poll)

    def _serve(self, poll: Any) -> None:
        """Poll and dispatch events on the only thread until stopping.

        The whole responses framed during one poll's batch (by the compiled core, or by
        _send_whole) are written together when the batch ends (or after CORK_WINDOW): the
        client then wakes once for the batch, not once per response, which on a busy server
        costs more than the app. What is held goes out before the batch's last event too:
        written only at its very end, the next requests of those clients would come just too
        late for the next poll."""
        listeners = self.listeners
        conns = self.conns
        read = self._read
        core = self._core
        last = None
        if core is not None:
            core.cork = CORK_WINDOW
            flush = core.flush
            held = None
        else:
            flush = self._flush_held
            held = _Held()
        try:
            while not self.stopping:
                try:
                    events = poll(SWEEP_INTERVAL, 64)
                except InterruptedError:
                    continue
                now = time.monotonic()
                if len(events) > 1:
                    last = events[-1]
                    self._held = held  # the pure core holds in a batch of several only
                for event in events:
                    if event is last:
                        flush()
                    conn = conns.get(event[0])
                    if conn is not None:
                        # _handle_unlocked, inlined: a call frame per request costs more.
                        try:
                            if conn.phase <= READ_BODY:
                                read(conn)  # the hot path: a request (or more of its body)
                            elif not conn.closed:
                                self._handle(conn)
                        except Exception:  # a bug of ours costs one connection, not the worker
                            log.exception("internal error serving %s", conn.remote)
                            self._close(conn)
                    elif event[0] in listeners:
                        self._accept(event[0])
                if last is not None or core is not None:
                    flush()
                    last = self._held = None
                if now >= self._next_sweep:
                    self._sweep(now)
        finally:
            # What runs after the loop (_finish_in_flight) writes at once.
            if core is not None:
                core.cork = 0.0
            flush()
            self._held = None

    def _flush_held(self) -> None:
        """Write the whole responses _send_whole held back (the pure core's corking)."""
        held = self._held
        if held is None or not held.answers:
            return
        self._held = None  # what a write starts (a pipelined request's answer) goes at once
        try:
            for conn, out in held.answers:
                if conn.closed:
                    continue  # closed meanwhile: its descriptor may be another's by now
                conn.out = out  # _pump sends it, then finishes the request as _send_whole would
                conn.phase = WRITE
                try:
                    self._pump(conn)
                except Exception as exc:
                    self._flush_failed(conn, exc)
        finally:
            held.answers.clear()
            self._held = held

    def _flush_failed(self, conn: Connection, exc: BaseException) -> None:
        """A response held back (by either core) could not be written or finished: as the
        loop does for any error of ours, it costs that connection only."""
        log.error("internal error serving %s", conn.remote, exc_info=exc)
        self._close(conn)

    # --- accepting ----------------------------------------------------------------------------

    def _accept(self, fd: int) -> None:
        if self.stopping:
            return  # the listener is shut: accept() would only fail
        sock, builder, trusting = self.listeners[fd]
        config = self.config
        deadline = time.monotonic() + config.header_timeout
        trusts = self.peers.trusts
        for _ in range(self._accept_batch):
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
            if client.family != _AF_UNIX:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            chosen = trusting if trusts(remote if isinstance(remote, tuple) else None) else builder
            if self._tls is not None:
                self._accept_tls(client, remote, chosen, deadline)
                continue
            conn = Connection(
                client, remote, ServerConnection(config.limits, config.server_name), chosen
            )
            conn.deadline = deadline
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

    def _accept_tls(
        self, client: socket.socket, remote: Any, builder: EnvironBuilder, deadline: float
    ) -> None:
        """A TLS connection: its handshake goes on in the loop, under header_timeout."""
        assert self._tls is not None
        try:
            wrapped = self._tls.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            client.close()
            return
        config = self.config
        conn = Connection(
            wrapped, remote, ServerConnection(config.limits, config.server_name), builder
        )
        conn.io = wrapped  # read and written through TLS (_tls_read, _tls_write)
        conn.deadline = deadline
        conn.start.write = partial(self._write_callable, conn)
        conn.phase = HANDSHAKE
        self.conns[conn.fd] = conn
        with conn.lock:
            self._handshake(conn)

    def _handshake(self, conn: Connection) -> None:
        try:
            conn.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._arm(conn, self._in)
            return
        except ssl.SSLWantWriteError:
            self._arm(conn, self._out)
            return
        except ssl.SSLError as exc:
            if exc.reason == "HTTP_REQUEST":  # plain HTTP: say so in plain HTTP, as nginx does
                answer = conn.proto.error_response(400, "this port speaks HTTPS: use https://")
                try:
                    socket.socket.send(conn.sock, answer)  # beside TLS, not through it
                except OSError:
                    pass
                self._begin_linger(conn)
            else:
                self._close(conn)
            return
        except (OSError, ValueError):  # a reset, a closed socket
            self._close(conn)
            return
        conn.phase = READ_HEAD
        if self.threads > 1:
            self._arm(conn, self._in)
        else:
            self._read(conn)  # the request often came with the handshake's last flight

    def _rearm_listener(self, fd: int) -> None:
        if not self.stopping:
            try:
                self.poller.modify(fd, IN)
            except (OSError, ValueError):
                pass

    # --- events ---------------------------------------------------------------------------------

    def _on_event(self, fd: int) -> None:
        """An event with several threads, in its turn (one thread: :meth:`_serve`)."""
        conn = self.conns.get(fd)
        if conn is None:
            if fd in self.listeners:
                self._accept(fd)
            return
        # Wait, do not skip: the holder is the thread that just re-armed this connection (and
        # is about to let go) or the sweeper; skipping would lose a one-shot event for good.
        conn.lock.acquire()
        try:
            self._handle(conn)
        finally:
            conn.lock.release()

    def _handle_unlocked(self, conn: Connection) -> None:
        try:
            if conn.phase <= READ_BODY:
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
            phase = conn.phase
            if phase <= READ_BODY:
                self._read(conn)  # the usual event, first
            elif phase == WRITE:
                self._pump(conn)
            elif phase == LINGER:
                self._linger(conn)
            elif phase == HANDSHAKE:
                self._handshake(conn)
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
            data = _read(conn.io, RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            self._arm(conn, self._in)
            return
        except OSError:
            self._close(conn)
            return
        if conn.phase == READ_HEAD and data:
            try:
                request = conn.proto.receive_head(data)
            except ProtocolError as error:
                self._error_response(conn, error)
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
            live = LiveInput(
                conn.proto, partial(self.send_blocking, conn), partial(self.recv_blocking, conn)
            )
            self._call_app(conn, live, request.content_length)
            return True
        conn.phase = READ_BODY
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
                self._error_response(conn, error)
                return
            if event is NEED_DATA:
                now = time.monotonic()
                if conn.phase == READ_BODY:
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
                    conn.body = spool(body)
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
        conn.phase = IN_APP
        conn.deadline = _NEVER
        environ = conn.builder.build(conn.environ, request, body, content_length)
        if self._log_access:
            conn.started_at = time.time()
            conn.seen = environ
            conn.sent = 0
        start = conn.start
        start.status = start.headers = None
        start.headers_sent = False
        held = self._held
        if held is not None:
            held.app_started = time.monotonic()
        try:
            result = self.app(environ, start)
        except Exception as exc:
            self._app_failed(conn, exc)
            return
        conn.result = result
        # The common case: a list with one bytes object, sent with its head in one call.
        if type(result) is list and len(result) == 1 and not start.headers_sent:
            self._send_whole(conn, start, result[0])
            return
        self._answer(conn, result)

    def _app_failed(self, conn: Connection, exc: BaseException) -> None:
        """The app raised ``exc``: log it and answer 500 (or close, once a head went out)."""
        request = conn.request
        assert request is not None
        target = request.target.decode("latin-1")
        log.error("error in the application for %s %s", request.method, target, exc_info=exc)
        self._error_response(conn, 500)

    def _answer(self, conn: Connection, result: Any) -> None:
        """Send what the app returned (the compiled core hands its unusual answers here)."""
        conn.result = result
        start = conn.start
        if type(result) is list and len(result) == 1 and not start.headers_sent:
            self._send_whole(conn, start, result[0])
            return
        if type(result) is FileWrapper and self._try_sendfile(conn, result):
            return
        try:
            conn.iterator = iter(result)
        except Exception:
            log.exception("the application returned something that is not iterable")
            self._error_response(conn, 500)
            return
        conn.phase = WRITE
        self._pump(conn)

    def _resume(
        self, conn: Connection, result: Any, taken: list, rest: Any, error: Exception | None
    ) -> None:
        """Go on with an iterable answer the compiled core began: ``taken`` is what it took
        from ``rest`` (the iterator of ``result``), ``error`` what that raised, if it did; they
        are sent as if :meth:`_pump` had taken them itself."""
        conn.result = result
        conn.iterator = chain(taken, rest if error is None else _raising(error))
        conn.phase = WRITE
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
            self._bad_response(conn, exc)
            return
        held = self._held
        if held is not None:
            now = time.monotonic()
            if not held.answers:
                held.since = now
            held.answers.append((conn, out))
            # After an app as slow as the window, nothing waits for the next one.
            if now - held.since >= CORK_WINDOW or now - held.app_started >= CORK_WINDOW:
                self._flush_held()
            return
        try:
            sent = _write(conn.io, out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent == len(out):
            self._finish(conn)
            return
        conn.out = out[sent:]
        conn.phase = WRITE
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
                chunk = None  # the end: the head (if not yet out) and the last bytes
            except Exception:
                log.exception("error in the application's response iterable")
                self._error_response(conn, 500)  # or a close, once half a response went out
                return
            else:
                if not chunk:
                    continue
                if type(chunk) is not bytes:
                    self._bad_response(conn, f"it yielded {type(chunk).__name__}, not bytes")
                    return
            try:
                head = b"" if conn.start.headers_sent else self._head(conn)
            except (ValueError, RuntimeError) as exc:
                self._bad_response(conn, exc)
                return
            if chunk is not None:
                conn.sent += len(chunk)
            conn.out = head + (
                proto.end_response() if chunk is None else proto.response_body(chunk)
            )

    def _send_some(self, conn: Connection) -> bool:
        """Send ``conn.out``; True when all of it went, False when the socket is full."""
        try:
            sent = _write(conn.io, conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return False
        if sent == len(conn.out):
            conn.out = b""
            return True
        conn.out = conn.out[sent:]
        conn.phase = WRITE
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
        if not _HAS_SENDFILE or not S_ISREG(stat.st_mode) or self._tls is not None:
            return False  # (through TLS, the file is read and encrypted: iterated)
        start = conn.start
        if start.status is None or start.headers is None:
            return False
        remaining = max(0, stat.st_size - offset)
        declared = next((v for n, v in start.headers if n.lower() == "content-length"), None)
        if declared is None:
            if type(filelike) not in _PLAIN_FILES:
                return False  # its read() may stop before the file ends: iterate it
            start.headers.append(("Content-Length", str(remaining)))
        elif declared.isdigit():
            remaining = min(remaining, int(declared))
        try:
            head = self._head(conn)
        except (ValueError, RuntimeError) as exc:
            self._bad_response(conn, exc)
            return True
        if conn.request is not None and conn.request.method == "HEAD":
            remaining = 0
        conn.out = head
        conn.file = [fd, offset, remaining, remaining]
        if remaining >= CORK_MIN and set_cork(conn.sock, True):
            conn.corked = True
        conn.iterator = None
        conn.phase = WRITE
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
        conn.sent += total
        conn.out = conn.proto.end_response()
        return True

    def _write_callable(self, conn: Connection, data: bytes) -> None:
        """The legacy ``write()`` of start_response: sends at once, blocking this thread."""
        if type(data) is not bytes:
            raise TypeError("write() takes bytes")
        if conn.request is None and self._core is not None:
            self._core.adopt(conn)  # the compiled core's request: the Python path takes it
        start = conn.start
        head = b"" if start.headers_sent else self._head(conn)
        self.send_blocking(conn, head + conn.proto.response_body(data))

    def _error_response(self, conn: Connection, error: ProtocolError | int) -> None:
        """Answer ``error`` (a protocol error, or 500 for an app that failed) and close; once
        a response has begun, closing is the only honest end."""
        self._close_result(conn)
        conn.iterator = None
        out = conn.proto.error_response(error)
        if not out:
            self._close(conn)
            return
        conn.out = out
        conn.phase = WRITE
        self._pump(conn)

    def _bad_response(self, conn: Connection, problem: object) -> None:
        """The app answered something that cannot be sent: say what, answer 500."""
        log.error("bad response from the application: %s", problem)
        self._error_response(conn, 500)

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
        if self._log_access and conn.request is not None:
            self._access(conn)
        if type(conn.result) is list:
            conn.result = None  # the usual answer: nothing to close
        else:
            self._close_result(conn)
        proto = conn.proto
        if conn.body is not None:
            conn.body.close()  # a spooled temporary file is deleted here
            conn.body = None
        # An app that left a 100-continue body unread: read the rest away, or close.
        request = conn.request
        if (
            (request is None or request.has_body)
            and proto.keep_alive
            and not proto.request_complete
            and not self._discard_body(conn)
        ):
            proto.keep_alive = False
        if not proto.keep_alive or self._closing:
            self._begin_linger(conn)
            return
        waiting = proto.start_next_cycle()
        conn.phase = READ_HEAD
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
        assert request is not None and self.access is not None
        start = conn.start
        result = conn.result
        if type(result) is list:  # sent whole, not counted on the way
            conn.sent = sum(len(chunk) for chunk in result if type(chunk) is bytes)
        self.access.log(
            Entry(
                method=request.method,
                target=request.target.decode("latin-1"),
                version=request.version,
                status=start.status or "500",
                sent=conn.sent,
                started=conn.started_at,
                took=time.time() - conn.started_at,
                request_headers=request.headers,
                response_headers=start.headers,
                environ=conn.seen,
            )
        )
        conn.seen = None

    # --- closing ---------------------------------------------------------------------------

    def _begin_linger(self, conn: Connection) -> None:
        """Close our side, then read away what the client still sends for a moment, so
        its unread request bytes do not turn our close into a reset that loses the response."""
        if self._tls is not None:
            try:
                conn.sock.unwrap()  # type: ignore[attr-defined]  # sends close_notify
            except (OSError, ValueError):
                pass  # the peer's close_notify is not here yet; ours has gone
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
            if self.on_tick is not None:
                self.on_tick(now)
            for conn in list(self.conns.values()):
                if conn.deadline < now and conn.lock.acquire(blocking=False):
                    try:
                        if conn.deadline < now and not conn.closed:
                            if conn.phase == READ_HEAD and conn.head_started:
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

    def _finish_in_flight(self) -> None:
        """After :meth:`stop`: close the listening sockets and the idle keep-alive
        connections, and go on serving the others until their responses are out (each under
        its own timeouts), for at most ``graceful_timeout`` in all. Runs on the main thread
        once the loops have ended; a helper thread may still be finishing an event of its own.
        A retiring worker keeps its keep-alive connections until their next request, which
        it answers with ``Connection: close`` (see :meth:`stop`)."""
        self.__dict__.pop("_read", None)  # each request now decides how its connection ends
        for fd, (sock, *_) in self.listeners.items():
            self.poller.unregister(fd)
            sock.close()
        self.poller.unregister(self._waker.fd)  # stop()'s byte would keep the poll readable
        if not self._closing:
            # From now on every request is the last of its connection. An instance attribute,
            # so the hot path's own _on_request stays as it is while the worker serves.
            self._on_request = self._on_last_request  # type: ignore[method-assign]
            for conn in list(self.conns.values()):
                if conn.phase in (READ_BODY, IN_APP):
                    conn.proto.keep_alive = False  # its head is not out yet: it says close
        several = self.threads > 1
        pending = self.turns.pending
        conns = self.conns
        end = time.monotonic() + self.config.graceful_timeout
        while True:
            # Requests that have already arrived are answered (and their connections then
            # closed) before the idle ones are.
            if not pending:
                pending.extend(self.poller.poll(0.05, 64))
            while pending:
                fd, _ = pending.popleft()
                if several:
                    self._on_event(fd)
                elif (conn := conns.get(fd)) is not None:
                    self._handle_unlocked(conn)
            now = time.monotonic()
            self._sweep(now)  # every round: a lingering close ends on time, not up to 1 s late
            busy = self._close_idle() if self._closing else len(conns)
            if not busy or now >= end:
                return

    def _on_last_request(self, conn: Connection, request: Request) -> bool:
        """:meth:`_on_request` of a retiring worker: the answer closes the connection."""
        request.keep_alive = False
        conn.proto.keep_alive = False
        return Worker._on_request(self, conn, request)

    def _call_app_counted(self, conn: Connection, body: Any, content_length: int | None) -> None:
        """:meth:`_call_app` with --max-requests: counts, and says when the count is reached."""
        self._count_request()
        Worker._call_app(self, conn, body, content_length)

    def _count_request(self) -> None:
        self.handled += 1
        if self.handled == self.max_requests and self.on_limit is not None:
            self.on_limit()

    def retire_after(self, count: int, on_limit: Callable[[], None]) -> None:
        """Call ``on_limit`` once ``count`` requests have reached the app (--max-requests)."""
        self.max_requests = count
        self.on_limit = on_limit
        # An instance attribute, so a worker without a limit counts nothing.
        self._call_app = self._call_app_counted  # type: ignore[method-assign]
        if self._core is not None:
            self._core.count = self._count_request

    def _close_idle(self) -> int:
        """Close the connections waiting for a request that has not begun; return how many
        others are left (reading a request, in the app, sending, or closing)."""
        busy = 0
        for conn in list(self.conns.values()):
            if (
                conn.phase == READ_HEAD
                and not conn.head_started
                and conn.lock.acquire(blocking=False)
            ):
                try:
                    if conn.phase == READ_HEAD and not conn.head_started:
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
        self._waker.close()

    # --- blocking helpers for write() and 100-continue bodies ------------------------------------

    def send_blocking(self, conn: Connection, data: bytes) -> None:
        """Send all of ``data`` from the current thread, waiting up to send_timeout per step."""
        sock = conn.sock
        sock.settimeout(self.config.send_timeout)  # each send waits for room, up to this
        try:
            view = memoryview(data)
            while view:
                view = view[sock.send(view) :]
        except TimeoutError:
            raise TimeoutError("the client did not keep up") from None
        finally:
            sock.setblocking(False)

    def recv_blocking(self, conn: Connection, timeout: float | None = None) -> bytes:
        """Receive once from the current thread, waiting up to ``timeout`` (body_timeout)."""
        sock = conn.sock
        sock.settimeout(timeout or self.config.body_timeout)
        try:
            return sock.recv(RECV_SIZE)
        except TimeoutError:
            raise TimeoutError("the client did not keep up") from None
        finally:
            sock.setblocking(False)


def _raising(error: Exception) -> Iterator[bytes]:
    """An iterator that raises ``error`` when asked for its first item."""
    raise error
    yield b""  # a generator: the error comes at next(), where _pump expects it


def _poll_busy(poll: Any, window: float, timeout: float, maxevents: int) -> list[tuple[int, int]]:
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


# The frames requests_in_app() looks for.
_CALL_APP = Worker._call_app.__code__
_SERVE = Worker._serve.__code__
_SERVE_TURN = Turns._serve_turn.__code__
