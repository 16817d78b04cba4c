"""The master: it owns the listening sockets, forks the workers and keeps them alive.

This is the only module that may fork or handle POSIX signals. Where ``fork`` exists,
:func:`run` binds every address once and starts an :class:`Arbiter`, which forks
``--workers`` processes that share those sockets (each accepts for itself; the kernel hands
every new connection to one of them). Where it does not (Windows), one process serves with
its threads, and ``--workers`` above 1 is refused by the settings.

Theory of operation
-------------------
The master sleeps in ``select`` on a pipe. Signal handlers only queue the signal (Python's
wake-up descriptor writes a byte into the pipe), and a worker that has news (booted, reached
``--max-requests``) writes a byte too; the master wakes, reads its queue and every worker's
**page**, and acts. Idle, it wakes once a second to check heartbeats: a few syscalls.

Each worker has a page of shared memory (``Page``): its heartbeat (the monotonic clock,
written once a second by the worker's loop, never per request), its state, and a line it
leaves for the master (why it could not boot; which requests it was running when it was
killed for silence). A worker whose heartbeat is older than ``--timeout`` is sent SIGABRT; its
handler reads the requests in its app calls from its threads' frames, writes them to the
page and exits, and the master logs them with the kill: a stuck worker is reported with the
request that hung, not only its pid. Two seconds later, a worker that did not leave is killed.

Handing over without refusing anyone: a worker to be replaced (reload, --max-requests) is
first marked *leaving* and keeps serving; replacements are forked; only when as many
workers as asked for are up and accepting are the leaving ones told to retire (SIGTERM with
the page's ``close_idle`` unset): they close their own copies of the listening sockets,
finish what is in flight, answer the next request of each keep-alive connection with
``Connection: close`` and leave. The listening sockets never close, so a client connecting
during the swap waits in the backlog at worst, and is never refused.

Signals: TERM and INT stop gracefully (the sockets are shut at once, so new clients are
refused; workers finish for up to ``--graceful-timeout``, then the master exits 0); a second
one, or QUIT, stops at once. HUP reads the configuration again and starts new workers with
the app imported afresh, retiring the old ones once the new are up; a new app that fails to
import leaves the old workers serving. TTIN and TTOU add and remove a worker. USR1 reopens
the log files (logrotate), in the master and every worker.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import itertools
import logging
import os
import random
import select
import signal
import socket
import ssl
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from netassist.errors import NetassistError, UsageError, explain
from netassist.server.config import Bind, ServerConfig
from netassist.server.loader import ChangeWatcher, check_app, load_app, reload_app
from netassist.server.logs import Logs
from netassist.server.worker import Worker, core_name

log = logging.getLogger("netassist.server")
_AF_UNIX = getattr(socket, "AF_UNIX", None)  # missing on Windows

BOOT_FAILED = 3  # a worker's exit code when its app could not be imported
ABORTED = 4  # a worker's exit code after SIGABRT (killed for silence)
ABORT_GRACE = 2.0  # seconds a worker sent SIGABRT has to leave before SIGKILL
QUIT_GRACE = 2.0  # seconds workers have to leave after QUIT
MAX_BACKOFF = 30.0  # the longest wait before forking again after a worker failed to boot


def run(
    app: Callable | str,
    config: ServerConfig,
    *,
    directory: str | None = None,
    reconfigure: Callable[[], ServerConfig] | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve ``app`` (a WSGI callable, or ``"module:name"`` to import in each worker) until
    TERM or INT, then return. ``reconfigure`` gives the settings again on HUP (the command
    line reads its config file and the environment again); ``on_ready`` is called with the
    listening addresses once the workers are up."""
    logs = Logs(config.error_log, config.log_level, config.access_log, config.access_log_format)
    try:
        if hasattr(os, "fork"):
            Arbiter(app, config, directory=directory, logs=logs, reconfigure=reconfigure).run(
                on_ready
            )
        else:
            _run_alone(app, config, directory, logs, on_ready)
    finally:
        logs.close()


def _run_alone(
    app: Callable | str,
    config: ServerConfig,
    directory: str | None,
    logs: Logs,
    on_ready: Callable[[list[str]], None] | None,
) -> None:
    """No fork (Windows): one process serves with its threads; TERM and INT stop it."""
    application = load_app(app, directory=directory) if isinstance(app, str) else app
    tls_context(config)  # a bad certificate is refused before anything is bound
    with pid_file(config.pid):
        sockets = listen(config)
        ours = _unix_socket_files(config, sockets)
        raise_fd_limit()
        tls = tls_context(config)
        worker = Worker(application, config, sockets, access=logs.access, tls=tls)
        threads = worker.threads
        if threads < config.threads:
            log.warning("--threads %d needs epoll (Linux): serving with one thread", config.threads)
        try:
            with stopped_by_signals(lambda: _stop(worker, sockets)):
                addresses = [_url(sock, "https" if tls else "http") for sock in sockets]
                core = core_name(config, tls is not None, logs.access is not None)
                for address in addresses:
                    shape = f"{threads} thread{'s' * (threads > 1)}"
                    log.info("listening on %s (%s) with the %s", address, shape, core)
                if on_ready is not None:
                    on_ready(addresses)
                worker.run()
        finally:
            for sock in sockets:
                sock.close()
            _remove_socket_files(ours)
            log.info("stopped")


@contextlib.contextmanager
def stopped_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, TERM and INT (Ctrl-C) call ``stop`` instead of killing the process,
    so a server winds down and exits 0, as gunicorn and ``http.server`` do. Only the main
    thread can take signals; elsewhere this does nothing."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop(worker: Worker, sockets: list[socket.socket]) -> None:
    shut(sockets)
    worker.stop()


def shut(sockets: list[socket.socket]) -> None:
    """Stop listening at once: a client connecting from now on is refused instead of taken
    into the backlog and left waiting while the server winds down. This acts on the sockets
    themselves, which every forked worker shares, so only their owner may call it, when the
    whole server stops (a worker leaving alone just closes its descriptors)."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not every system can shut a listening socket; it is closed soon after


# --- the pre-fork master --------------------------------------------------------------------------


class Page:
    """A page of memory shared by the master and one worker (forked with it).

    The worker writes its heartbeat and state, and a report before it leaves; the master
    writes ``close_idle`` before it sends SIGTERM (the whole server stops, rather than one
    worker retiring). Single aligned words, each written by one side only.
    """

    SIZE = 4096
    _BEAT, _STATE, _CLOSE_IDLE, _HANDLED, _REPORT_LENGTH, _REPORT = 0, 8, 12, 16, 24, 28
    BOOTING, READY, AT_LIMIT, BOOT_FAILED = range(4)

    def __init__(self) -> None:
        import mmap

        self._map = mmap.mmap(-1, self.SIZE)  # anonymous and shared: the child sees it

    def _get(self, fmt: str, offset: int) -> int | float:
        return struct.unpack_from(fmt, self._map, offset)[0]

    @property
    def beat(self) -> float:
        """The worker's last heartbeat, on the monotonic clock (shared by all processes)."""
        return self._get("d", self._BEAT)

    @beat.setter
    def beat(self, now: float) -> None:
        struct.pack_into("d", self._map, self._BEAT, now)

    @property
    def state(self) -> int:
        """BOOTING, READY, AT_LIMIT (reached --max-requests) or BOOT_FAILED."""
        return int(self._get("i", self._STATE))

    @state.setter
    def state(self, value: int) -> None:
        struct.pack_into("i", self._map, self._STATE, value)

    @property
    def close_idle(self) -> bool:
        """Set by the master when the whole server stops: idle connections close at once."""
        return bool(self._get("i", self._CLOSE_IDLE))

    @close_idle.setter
    def close_idle(self, value: bool) -> None:
        struct.pack_into("i", self._map, self._CLOSE_IDLE, int(value))

    @property
    def handled(self) -> int:
        """Requests the worker has passed to the app (with --max-requests; else 0)."""
        return int(self._get("q", self._HANDLED))

    @handled.setter
    def handled(self, value: int) -> None:
        struct.pack_into("q", self._map, self._HANDLED, value)

    @property
    def report(self) -> str:
        """The line the worker left: a boot error, or the requests it was stuck on."""
        length = int(self._get("I", self._REPORT_LENGTH))
        return bytes(self._map[self._REPORT : self._REPORT + length]).decode("utf-8", "replace")

    @report.setter
    def report(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[: self.SIZE - self._REPORT]
        self._map[self._REPORT : self._REPORT + len(data)] = data
        struct.pack_into("I", self._map, self._REPORT_LENGTH, len(data))

    def close(self) -> None:
        """Unmap (the master, once the worker is reaped)."""
        self._map.close()


@dataclass(eq=False)
class Child:
    """The master's record of one worker process."""

    pid: int
    number: int  # counts up from 1 over the master's life: "worker 7"
    generation: int  # bumped by each reload
    page: Page
    born: float
    limit: int = 0  # its --max-requests count, with the jitter drawn
    ready: bool = False
    leaving: bool = False  # to be replaced: retired once its replacements are up
    retiring: bool = False  # told to finish and leave (SIGTERM sent)
    retired_at: float = 0.0  # when SIGTERM was sent
    aborted_at: float = 0.0  # when SIGABRT was sent for silence
    silent_for: float = 0.0
    killed: bool = False  # SIGKILL sent

    def name(self) -> str:
        return f"worker {self.number} (pid {self.pid})"


@dataclass
class _Stopping:
    graceful: bool
    deadline: float
    fatal: str | None = None  # a boot error to report once everything is down


@dataclass
class Arbiter:
    """The pre-fork master (see the module docstring)."""

    app: Callable | str
    config: ServerConfig
    directory: str | None = None
    logs: Logs | None = None
    reconfigure: Callable[[], ServerConfig] | None = None
    children: dict[int, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target = self.config.workers
        self.generation = 1
        self.started = False
        self.reloading = False
        self.reload_pending = False
        self.stopping: _Stopping | None = None
        self.sockets: list[socket.socket] = []
        self._signals: list[int] = []
        self._numbers = itertools.count(1)
        self._backoff = 0.0
        self._spawn_after = 0.0
        self._previous: tuple[ServerConfig, Callable | None, ssl.SSLContext | None] | None = None
        self._loaded: Callable | None = None if isinstance(self.app, str) else self.app
        self._ours: dict[str, int] = {}
        self.tls: ssl.SSLContext | None = None
        self._wake_r = self._wake_w = -1

    # --- the master's life ---------------------------------------------------------------------

    def run(self, on_ready: Callable[[list[str]], None] | None = None) -> None:
        """Bind, fork, supervise until stopped; raise NetassistError when no worker could
        start (the app's import failed: the first worker's error, in one line)."""
        config = self.config
        if isinstance(self.app, str):
            check_app(self.app, directory=self.directory)
        self.tls = tls_context(config)
        with pid_file(config.pid):
            self.sockets = listen(config)
            try:
                self._ours = _unix_socket_files(config, self.sockets)
                raise_fd_limit()
                if _threads(config) < config.threads:
                    log.warning(
                        "--threads %d needs epoll (Linux): serving with one thread", config.threads
                    )
                self._note_untrusted_unix(config)
                if config.preload and isinstance(self.app, str):
                    self._loaded = load_app(self.app, directory=self.directory)
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
                with self._signal_handlers():
                    self._supervise(on_ready)
            finally:
                for sock in self.sockets:
                    sock.close()
                _remove_socket_files(self._ours)
                for fd in (self._wake_r, self._wake_w):
                    if fd >= 0:
                        os.close(fd)
        fatal = self.stopping.fatal if self.stopping else None
        if fatal is not None:
            raise NetassistError(fatal)
        log.info("stopped")

    def _supervise(self, on_ready: Callable[[list[str]], None] | None) -> None:
        while True:
            self._dispatch_signals()
            self._reap()
            now = time.monotonic()
            if self.stopping is not None:
                if not self.children:
                    return
                if now >= self.stopping.deadline:
                    self._kill_all("did not finish within --graceful-timeout")
            else:
                self._read_pages(now)
                self._manage(now)
                if not self.started and self.stopping is None and self._all_up():
                    self.started = True
                    self._announce(on_ready)
                if self.started and self.reload_pending and not self.reloading:
                    self.reload_pending = False  # a HUP that came while busy
                    self._reload()
            self._sleep(0.25 if self.stopping is not None else 1.0)

    def _announce(self, on_ready: Callable[[list[str]], None] | None) -> None:
        workers, threads = self.target, _threads(self.config)
        shape = f"{threads} thread{'s' * (threads > 1)}"
        if workers > 1:
            shape = f"{workers} workers, {shape} each"
        addresses = [_url(sock, "https" if self.tls else "http") for sock in self.sockets]
        access = self.logs is not None and self.logs.access is not None
        core = core_name(self.config, self.tls is not None, access)
        for address in addresses:
            log.info("listening on %s (%s) with the %s", address, shape, core)
        if on_ready is not None:
            on_ready(addresses)

    def _note_untrusted_unix(self, config: ServerConfig) -> None:
        from netassist.server.forwarded import TrustedPeers

        peers = TrustedPeers(config.forwarded_allow_ips)
        if any(b.path for b in config.binds) and not (peers.unix or peers.everyone):
            log.info(
                "proxy headers from peers on a unix: socket are removed; add "
                "--forwarded-allow-ips unix to believe a proxy there (nginx)"
            )

    def _sleep(self, timeout: float) -> None:
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    # --- signals -------------------------------------------------------------------------------

    _HANDLED = (
        "SIGHUP",
        "SIGTERM",
        "SIGINT",
        "SIGQUIT",
        "SIGTTIN",
        "SIGTTOU",
        "SIGUSR1",
        "SIGCHLD",
    )

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        previous = {}
        numbers = [getattr(signal, name) for name in self._HANDLED if hasattr(signal, name)]
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            for signum in numbers:
                previous[signum] = signal.signal(signum, self._queue_signal)
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(old_wakeup)

    def _queue_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _dispatch_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                graceful = self.stopping is None  # a second one: at once
                self._stop(graceful=graceful)
            elif signum == signal.SIGQUIT:
                self._stop(graceful=False)
            elif self.stopping is not None:
                continue
            elif signum == signal.SIGHUP:
                if self.reloading or not self.started:
                    self.reload_pending = True
                else:
                    self._reload()
            elif signum == signal.SIGTTIN:
                self.target += 1
                log.info("TTIN: %d workers", self.target)
            elif signum == signal.SIGTTOU:
                if self.target > 1:
                    self.target -= 1
                    log.info("TTOU: %d workers", self.target)
            elif signum == signal.SIGUSR1:
                if self.logs is not None:
                    self.logs.reopen()
                log.info("USR1: log files reopened")
                for child in self.children.values():
                    _signal(child.pid, signal.SIGUSR1)

    def _stop(self, *, graceful: bool, fatal: str | None = None) -> None:
        now = time.monotonic()
        shut(self.sockets)  # first: once the line below is out, new clients are refused
        if graceful:
            log.info(
                "stopping: finishing the requests in progress (up to %gs)",
                self.config.graceful_timeout,
            )
            # Slightly after the workers' own bound, so they can leave by themselves.
            self.stopping = _Stopping(True, now + self.config.graceful_timeout + 1.0, fatal)
        else:
            if fatal is None and (self.stopping is None or self.stopping.graceful):
                log.info("stopping now")
            keep = self.stopping.fatal if self.stopping else None
            self.stopping = _Stopping(False, now + QUIT_GRACE, fatal or keep)
        for child in self.children.values():
            child.retiring = True
            if graceful:
                child.page.close_idle = True
                _signal(child.pid, signal.SIGTERM)
            else:
                _signal(child.pid, signal.SIGQUIT)

    def _kill_all(self, why: str) -> None:
        for child in self.children.values():
            if not child.killed:
                log.warning("%s %s: killing it", child.name(), why)
                child.killed = True
                _signal(child.pid, signal.SIGKILL)
        assert self.stopping is not None
        self.stopping.deadline = float("inf")

    # --- workers -------------------------------------------------------------------------------

    def _all_up(self) -> bool:
        staying = [c for c in self.children.values() if not (c.leaving or c.retiring)]
        return len(staying) >= self.target and all(c.ready for c in staying)

    def _manage(self, now: float) -> None:
        staying = [c for c in self.children.values() if not (c.leaving or c.retiring)]
        missing = self.target - len(staying)
        if missing > 0 and now >= self._spawn_after:
            for _ in range(missing):
                self._spawn()
        elif missing < 0:
            for child in sorted(staying, key=lambda c: c.number)[:-missing]:
                self._retire(child, "one worker fewer (TTOU)")
        if self._all_up():
            for child in list(self.children.values()):
                if child.leaving and not child.retiring:
                    self._retire(child, "replaced")

    def _retire(self, child: Child, why: str) -> None:
        log.info("%s retiring: %s", child.name(), why)
        child.retiring = True
        child.retired_at = time.monotonic()
        _signal(child.pid, signal.SIGTERM)

    def _spawn(self) -> None:
        config = self.config
        page = Page()
        page.beat = time.monotonic()
        number = next(self._numbers)
        limit = 0
        if config.max_requests:
            limit = random.randint(
                config.max_requests, config.max_requests + config.max_requests_jitter
            )
        if self._loaded is not None:
            gc.freeze()  # keeps the preloaded app's objects out of the children's collections
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self._worker_main(page, number, limit)
            except BaseException:
                with contextlib.suppress(BaseException):
                    log.exception("worker %d failed", number)
            finally:
                os._exit(code)
        self.children[pid] = Child(pid, number, self.generation, page, time.monotonic(), limit)
        log.debug("worker %d (pid %d) forked", number, pid)

    def _read_pages(self, now: float) -> None:
        timeout = self.config.timeout
        for child in list(self.children.values()):
            page = child.page
            state = page.state
            if not child.ready and state in (Page.READY, Page.AT_LIMIT):
                child.ready = True
                self._backoff = 0.0
                log.info("%s ready", child.name())
            if state == Page.AT_LIMIT and not child.leaving and not child.retiring:
                log.info(
                    "%s has served its %d requests (--max-requests): replacing it",
                    child.name(),
                    child.limit,
                )
                child.leaving = True
            if child.aborted_at:
                if not child.killed and now - child.aborted_at > ABORT_GRACE:
                    child.killed = True
                    _signal(child.pid, signal.SIGKILL)
            elif (
                child.retired_at
                and not child.killed
                and now - child.retired_at > self.config.graceful_timeout + ABORT_GRACE
            ):
                log.warning("%s did not finish within --graceful-timeout: killing it", child.name())
                child.killed = True
                _signal(child.pid, signal.SIGKILL)
            elif timeout and now - page.beat > timeout:
                child.aborted_at = now
                child.silent_for = now - page.beat
                _signal(child.pid, signal.SIGABRT)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self._reaped(child, status)
            child.page.close()
        if self.reloading and not any(
            c.generation < self.generation for c in self.children.values()
        ):
            self.reloading = False
            self._previous = None
            log.info("reloaded: %d workers serving the new configuration and code", self.target)

    def _reaped(self, child: Child, status: int) -> None:
        page = child.page
        code = os.waitstatus_to_exitcode(status)
        if child.aborted_at:
            stuck = page.report if code == ABORTED else ""
            log.error(
                "%s killed: no heartbeat for %.1fs (--timeout %g); %s",
                child.name(),
                child.silent_for,
                self.config.timeout,
                stuck or "it did not say which request it was running",
            )
        elif page.state == Page.BOOT_FAILED:  # not the code alone: an app may exit with 3
            self._boot_failed(child, page.report or "its app could not be loaded")
        elif child.retiring and not child.killed:
            log.debug("%s finished", child.name())  # as asked (a signal, if before its handlers)
        elif code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            level = logging.WARNING if child.killed else logging.ERROR
            log.log(level, "%s was killed by signal %d (%s)", child.name(), -code, name)
        elif code == 0:  # someone else's TERM: it finished its requests and left
            log.info("%s left by itself: replacing it", child.name())
        else:
            log.error("%s exited with code %d", child.name(), code)

    def _boot_failed(self, child: Child, report: str) -> None:
        if not self.started and self.stopping is None:
            # Nothing serves yet: the app cannot start, say why once and stop.
            self._stop(graceful=False, fatal=report)
            return
        if self.reloading and child.generation == self.generation:
            log.error("reload failed, the previous workers go on serving: %s", report)
            self._abort_reload()
            return
        self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
        self._spawn_after = time.monotonic() + self._backoff
        log.error(
            "%s could not start (trying again in %gs): %s", child.name(), self._backoff, report
        )

    # --- reload (HUP) --------------------------------------------------------------------------

    def _reload(self) -> None:
        log.info("HUP: reloading the configuration and the app")
        try:
            config = self.reconfigure() if self.reconfigure is not None else self.config
        except NetassistError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            return
        loaded = self._loaded
        if isinstance(self.app, str) and config.preload:
            try:
                loaded = reload_app(self.app, directory=self.directory)
            except NetassistError as exc:
                log.error("reload failed, the previous workers go on serving: %s", exc)
                return
        try:
            tls = tls_context(config)  # renewed certificates are read again
            self._rebind(config)
        except NetassistError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            return
        if self.logs is not None:
            self.logs.configure(
                config.error_log, config.log_level, config.access_log, config.access_log_format
            )
        self._previous = (self.config, self._loaded, self.tls)
        self.config, self._loaded, self.tls = config, loaded, tls
        self.target = config.workers
        self.generation += 1
        self.reloading = True
        for child in self.children.values():
            if not child.retiring:
                child.leaving = True

    def _abort_reload(self) -> None:
        for child in list(self.children.values()):
            if child.generation == self.generation and not child.retiring:
                child.retiring = True
                _signal(child.pid, signal.SIGQUIT)
            elif child.leaving and not child.retiring:
                child.leaving = False
                child.generation = self.generation  # kept: they serve on
        if self._previous is not None:
            self.config, self._loaded, self.tls = self._previous
            self.target = self.config.workers
            self._previous = None
        self.reloading = False

    def _rebind(self, config: ServerConfig) -> None:
        """Listen on the addresses of a new configuration: kept ones stay open (their
        backlogs too), new ones are bound, dropped ones close once their workers leave."""
        if config.binds == self.config.binds:
            return
        current = dict(zip(self.config.binds, self.sockets, strict=True))
        new = [b for b in config.binds if b not in current]
        opened = listen(replace_binds(config, tuple(new))) if new else []
        fresh = iter(opened)
        sockets = [current[b] if b in current else next(fresh) for b in config.binds]
        for bind, sock in current.items():
            if bind not in config.binds:
                log.info("no longer listening on %s", bind)
                sock.close()  # the old workers keep their own descriptors until they leave
        for sock in opened:
            log.info("listening on %s too", _url(sock, "https" if config.certfile else "http"))
        self.sockets = sockets
        self._ours.update(_unix_socket_files(config, sockets))

    # --- inside a worker -----------------------------------------------------------------------

    def _worker_main(self, page: Page, number: int, limit: int) -> int:
        """The child's life after fork; returns its exit code (never returns into the CLI)."""
        master = os.getppid()
        state: dict[str, object] = {"worker": None, "stop": False, "reopen": False}
        config = self.config

        def on_term(signum: int, frame: object) -> None:
            state["stop"] = True
            worker = state["worker"]
            if isinstance(worker, Worker):
                worker.stop(retire=not page.close_idle)

        def on_quit(signum: int, frame: object) -> None:
            os._exit(0)

        def on_usr1(signum: int, frame: object) -> None:
            state["reopen"] = True
            worker = state["worker"]
            if isinstance(worker, Worker):
                worker.tick_soon()

        def on_abort(signum: int, frame: object) -> None:
            worker = state["worker"]
            running = worker.requests_in_app() if isinstance(worker, Worker) else []
            page.report = describe_stuck(running, time.monotonic())
            os._exit(ABORTED)

        # Ours at once: until now the master's handlers (which only queue) were inherited,
        # so no signal finds a default action (QUIT's would dump core) in between.
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGQUIT, on_quit)
        signal.signal(signal.SIGUSR1, on_usr1)
        signal.signal(signal.SIGABRT, on_abort)
        # Ctrl-C reaches the whole process group: the master decides what it means.
        for name in ("SIGINT", "SIGHUP", "SIGTTIN", "SIGTTOU"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        try:
            app = self._loaded or load_app(self.app, directory=self.directory)  # type: ignore[arg-type]
        except BaseException as exc:  # whatever the import raised is the report
            page.report = _boot_error(self.app, exc)
            page.state = Page.BOOT_FAILED
            self._notify()
            return BOOT_FAILED
        logs = self.logs
        access = logs.access if logs else None
        worker = Worker(app, config, self.sockets, access=access, tls=self.tls)
        state["worker"] = worker

        def tick(now: float) -> None:
            page.beat = now
            if limit:
                page.handled = worker.handled
            if state["reopen"]:
                state["reopen"] = False
                if logs is not None:
                    logs.reopen()
            if os.getppid() != master:  # the master is gone: nobody would replace us
                worker.stop()

        def on_limit() -> None:
            page.handled = worker.handled
            page.state = Page.AT_LIMIT
            self._notify()

        if config.reload:
            watcher = ChangeWatcher(self.directory)
            plain_tick = tick

            def tick(now: float) -> None:
                plain_tick(now)
                changed = watcher.changed()
                if changed is not None:
                    log.info("%s changed: reloading (--reload)", changed)
                    _signal(master, signal.SIGHUP)

        worker.on_tick = tick
        if limit:
            worker.retire_after(limit, on_limit)
        if state["stop"]:
            return 0
        # What the app and netassist made at start-up lives as long as the worker: out of the
        # collector's sight, a full collection walks only what requests made. No collection
        # first: it would hold the worker's readiness back (tens of ms for a big app, the
        # listening line waiting on the slowest of the workers) to free a little garbage.
        gc.freeze()
        page.state = Page.READY
        self._notify()
        worker.run()
        return 0

    def _notify(self) -> None:
        """Wake the master (from a worker): something is new on a page."""
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # the pipe is full: the master is awake anyway


def tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS context of ``--certfile``/``--keyfile`` (None without them), refused in one
    line when the files cannot be read or do not make a certificate and its key."""
    if not config.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except ssl.SSLError as exc:
        raise NetassistError(
            f"cannot serve TLS with {config.certfile}"
            f"{' and ' + config.keyfile if config.keyfile else ''}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise explain(exc, f"reading {exc.filename or config.certfile}") from None
    return context


def _threads(config: ServerConfig) -> int:
    """The threads a worker will run: several need epoll."""
    from netassist.server.poller import HAS_EPOLL

    return config.threads if HAS_EPOLL else 1


def _boot_error(app: object, exc: BaseException) -> str:
    """One line for an app that could not be loaded, with where it failed."""
    if isinstance(exc, NetassistError):
        return str(exc)
    import traceback

    where = traceback.extract_tb(exc.__traceback__)
    place = f" ({os.path.basename(where[-1].filename)}, line {where[-1].lineno})" if where else ""
    return f"loading {app!r} failed: {type(exc).__name__}: {exc}{place}"


def describe_stuck(running: list[tuple[str, str, float | None]], now: float) -> str:
    """How a worker killed for silence says what it was doing."""
    if not running:
        return "no request was in the app (the worker itself was stuck)"
    parts = []
    for method, target, started in running:
        took = f" for {now - started:.1f}s" if started is not None else ""
        parts.append(f"{method} {target}{took}")
    return "it was running " + ", ".join(parts)


def replace_binds(config: ServerConfig, binds: tuple[Bind, ...]) -> ServerConfig:
    """``config`` with other bind addresses (already validated)."""
    from dataclasses import replace

    return replace(config, binds=binds)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already gone: reaped on the next round


# --- the pid file ---------------------------------------------------------------------------------


@contextlib.contextmanager
def pid_file(path: str | None) -> Iterator[None]:
    """Write our pid to ``path`` while inside (refusing a file that names a live master),
    and remove it afterwards if it is still ours."""
    if path is None:
        yield
        return
    other = _live_pid(path)
    if other is not None:
        raise NetassistError(
            f"{path} names a running netassist (pid {other}): stop it first, or give another --pid"
        )
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise explain(exc, f"writing the pid file {path}") from None
    try:
        yield
    finally:
        if _read_pid(path) == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(path)


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _live_pid(path: str) -> int | None:
    """The pid in ``path`` if it is a running netassist other than us."""
    pid = _read_pid(path)
    if pid is None or pid == os.getpid() or os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read()
    except OSError:
        return pid  # no /proc here: alive is all we know
    return pid if b"netassist" in command else None  # a stale file whose pid was reused


# --- listening sockets ----------------------------------------------------------------------------


def _unix_socket_files(config: ServerConfig, sockets: list[socket.socket]) -> dict[str, int]:
    """The path and inode of each Unix socket we bound (not those inherited as fd://N)."""
    files = {}
    for bind, sock in zip(config.binds, sockets, strict=True):
        if bind.fd is not None or sock.family != _AF_UNIX:
            continue
        path = sock.getsockname()
        if isinstance(path, str) and path[:1] not in ("", "\0"):  # abstract ones have no file
            try:
                files[path] = os.stat(path).st_ino
            except OSError:
                pass
    return files


def _remove_socket_files(files: dict[str, int]) -> None:
    # Only the file we made: another server may have bound the same path since.
    for path, inode in files.items():
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except OSError:
            pass


def _url(sock: socket.socket, scheme: str = "http") -> str:
    name = sock.getsockname()
    if isinstance(name, str):
        return f"unix:{name}"
    host, port = name[0], name[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def listen(config: ServerConfig) -> list[socket.socket]:
    """Open the listening sockets of ``config`` (TCP, Unix, inherited), with clear errors."""
    sockets = []
    for bind in config.binds:
        try:
            if bind.fd is not None:
                sock = _inherited(bind.fd, config.backlog)
            elif bind.path is not None:
                sock = _unix(bind.path, config.umask)
                sock.listen(config.backlog)
            else:
                sock = _tcp(bind)
                sock.listen(config.backlog)
        except (OSError, UsageError) as exc:
            for opened in sockets:
                opened.close()
            raise explain(exc, f"binding {bind}") from None
        sockets.append(sock)
    return sockets


def _tcp(bind: Bind) -> socket.socket:
    infos = socket.getaddrinfo(
        bind.host, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if os.name == "posix":  # on Windows SO_REUSEADDR lets another bind the port too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            # Wake us only when the request has arrived, not at the bare handshake.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _unix(path: str, umask: int | None) -> socket.socket:
    if _AF_UNIX is None:
        raise UsageError(f"unix:{path}: this system has no Unix sockets; bind HOST:PORT")
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            # Never removed to make room: `-b unix:notes.txt` must not cost anyone a file.
            raise UsageError(
                f"unix:{path} is a file that is not a socket: left alone; bind another path"
            )
        if _is_stale_socket(path):
            os.unlink(path)
    sock = socket.socket(_AF_UNIX, socket.SOCK_STREAM)
    # The socket file's mode is 0777 less the umask: who may connect (nginx's group...).
    previous = os.umask(umask) if umask is not None else None
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    finally:
        if previous is not None:
            os.umask(previous)
    return sock


def _inherited(fd: int, backlog: int) -> socket.socket:
    """A listening socket handed down as a descriptor (systemd's socket activation)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.EBADF):
            raise UsageError(f"descriptor {fd} is not an open socket") from None
        raise
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise UsageError(f"descriptor {fd} is not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_ACCEPTCONN", 30)):
        sock.listen(backlog)
    return sock


def _is_stale_socket(path: str) -> bool:
    probe = socket.socket(_AF_UNIX, socket.SOCK_STREAM)
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
