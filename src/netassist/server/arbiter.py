"""The process that owns the listening sockets and runs the worker.

Part 1 runs one worker in this process; signals stop it gracefully (TERM and INT: stop
accepting, finish what is in flight, exit). The pre-fork master (spawn, reap, respawn, HUP
reload, TTIN/TTOU) arrives with part 2: this is the only module that may fork or handle
POSIX signals.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

from netassist.errors import UsageError
from netassist.server.config import ServerConfig
from netassist.server.worker import Worker, listen, raise_fd_limit

log = logging.getLogger("netassist.server")


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
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: worker.stop())
    threads = worker.threads
    if threads < config.threads:
        log.warning("--threads %d needs epoll (Linux): serving with one thread", config.threads)
    try:
        for address in addresses:
            log.info("listening on %s (%d thread%s)", address, threads, "s" * (threads > 1))
        if on_ready is not None:
            on_ready(addresses)
        worker.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for sock in sockets:
            sock.close()
        _remove_socket_files(ours)
        log.info("stopped")


def _unix_socket_files(sockets: list[socket.socket]) -> dict[str, int]:
    """The path and inode of each Unix socket we bound."""
    files = {}
    for sock in sockets:
        path = sock.getsockname() if sock.family == socket.AF_UNIX else None
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


def _setup_access_log(config: ServerConfig) -> None:
    if config.access_log is None:
        return
    logger = logging.getLogger("netassist.access")
    if config.access_log == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(config.access_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
