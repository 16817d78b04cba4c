"""The process that owns the listening sockets and runs the worker.

It binds every address (``listen``), lifts the open-file limit, and runs one worker in this
process; TERM and INT stop it gracefully (stop accepting at once, finish what is in flight,
exit). There is no pre-fork master yet: ``--workers`` above 1 is refused. This is the only
module that may fork or handle POSIX signals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

from netassist.errors import UsageError, explain
from netassist.server.config import ServerConfig
from netassist.server.worker import Worker

log = logging.getLogger("netassist.server")
_AF_UNIX = getattr(socket, "AF_UNIX", None)  # missing on Windows


def run(
    app: Callable, config: ServerConfig, *, on_ready: Callable[[list[str]], None] | None = None
) -> None:
    """Bind, serve ``app`` until TERM or INT, then return."""
    if config.workers > 1:
        raise UsageError(
            "--workers above 1 arrives with the pre-fork master; use --threads for now"
        )
    sockets = listen(config)
    ours = _unix_socket_files(sockets)
    raise_fd_limit()
    _setup_access_log(config)
    addresses = [_url(sock) for sock in sockets]
    worker = Worker(app, config, sockets)
    threads = worker.threads
    if threads < config.threads:
        log.warning("--threads %d needs epoll (Linux): serving with one thread", config.threads)
    try:
        with stopped_by_signals(lambda: _stop(worker, sockets)):
            for address in addresses:
                log.info("listening on %s (%d thread%s)", address, threads, "s" * (threads > 1))
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


def _unix_socket_files(sockets: list[socket.socket]) -> dict[str, int]:
    """The path and inode of each Unix socket we bound."""
    files = {}
    for sock in sockets:
        path = sock.getsockname() if sock.family == _AF_UNIX else None
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


def _url(sock) -> str:
    name = sock.getsockname()
    if isinstance(name, str):
        return f"unix:{name}"
    host, port = name[0], name[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _QuietFailures(logging.StreamHandler):
    """An access-log handler whose failed writes (a full disk) are one warning line, said
    again only after the log could be written in between, instead of logging's own
    "--- Logging error ---" and a traceback for every request. The server keeps serving."""

    failing = False  # the last write failed, and that was said
    failed_now = False  # the write in progress failed
    error: BaseException = OSError("write failed")

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record``; say once when the log stops (or starts again) taking lines."""
        self.failed_now = False
        super().emit(record)  # a failure lands in handleError
        if self.failed_now and not self.failing:
            why = explain(self.error, f"writing the access log {self.name}")
            log.warning("%s; requests are not logged until it can be written", why)
        elif self.failing and not self.failed_now:
            log.warning("access log %s is written again", self.name)
        self.failing = self.failed_now

    def handleError(self, record: logging.LogRecord) -> None:
        """Note the failure (the line is lost) instead of printing a traceback."""
        self.failed_now = True
        self.error = sys.exc_info()[1] or self.error


class _AccessLogFile(_QuietFailures, logging.FileHandler):
    """The access log in a file (``--access-log FILE``)."""


def _setup_access_log(config: ServerConfig) -> None:
    if config.access_log is None:
        return
    logger = logging.getLogger("netassist.access")
    if config.access_log == "-":
        handler: logging.Handler = _QuietFailures(sys.stderr)
    else:
        handler = _AccessLogFile(config.access_log, encoding="utf-8")
    handler.set_name("stderr" if config.access_log == "-" else config.access_log)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def listen(config: ServerConfig) -> list[socket.socket]:
    """Open the listening sockets of ``config`` (TCP and Unix), with clear errors."""
    sockets = []
    for bind in config.binds:
        try:
            if bind.path is not None:
                if _AF_UNIX is None:
                    raise UsageError(f"{bind}: this system has no Unix sockets; bind HOST:PORT")
                if os.path.exists(bind.path) and _is_stale_socket(bind.path):
                    os.unlink(bind.path)
                sock = socket.socket(_AF_UNIX, socket.SOCK_STREAM)
                sock.bind(bind.path)
            else:
                infos = socket.getaddrinfo(
                    bind.host, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
                family, socktype, proto, _, address = infos[0]
                sock = socket.socket(family, socktype, proto)
                if os.name == "posix":  # on Windows SO_REUSEADDR lets another bind the port too
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                if hasattr(socket, "TCP_DEFER_ACCEPT"):
                    # Wake us only when the request has arrived, not at the bare handshake.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
                sock.bind(address)
            sock.listen(config.backlog)
        except (OSError, UsageError) as exc:
            for opened in sockets:
                opened.close()
            raise explain(exc, f"binding {bind}") from None
        sockets.append(sock)
    return sockets


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
