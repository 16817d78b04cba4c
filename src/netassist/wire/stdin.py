"""Reading what the user types or pipes in, on a thread that can be told to stop.

The assistant reads stdin on a thread while the socket is served on another. That thread
reads the file descriptor itself, never ``sys.stdin``'s buffered object: a daemon thread
left blocked inside a buffered read holds that object's lock, and Python aborts at exit
(``Fatal Python error: _enter_buffered_busy``) when it tries to close it.

Where ``select`` works on the descriptor (POSIX: terminals, pipes, files), a read waits on it
together with a wake-up socket, so :meth:`StdinReader.stop` ends a waiting read at once and
the thread finishes. Where it does not (Windows, whose ``select`` takes only sockets), the
read blocks in ``os.read``; :meth:`~StdinReader.stop` then only marks the reader stopped, and
the daemon thread left in ``os.read`` holds no lock Python needs at exit.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading

from netassist.wire.sockets import CHUNK


class StdinReader:
    """Reads a file descriptor (stdin by default) in chunks; stoppable from another thread."""

    def __init__(self, fd: int = 0, size: int = CHUNK) -> None:
        self.fd = fd
        self.size = size
        self._stopped = threading.Event()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        wake_r, wake_w = socket.socketpair()
        # select(), not the default selector: epoll refuses regular files and kqueue
        # terminals on macOS, while select takes both.
        selector = selectors.SelectSelector()
        try:
            selector.register(fd, selectors.EVENT_READ)
            selector.register(wake_r, selectors.EVENT_READ)
            selector.select(0)  # Windows: select() on anything but a socket fails here
        except (OSError, ValueError):
            selector.close()
            wake_r.close()
            wake_w.close()
            return
        wake_w.setblocking(False)
        self._selector, self._wake_r, self._wake_w = selector, wake_r, wake_w

    @property
    def stoppable(self) -> bool:
        """Whether :meth:`stop` can end a read that is waiting (not where select fails)."""
        return self._selector is not None

    def read(self) -> bytes:
        """The next chunk of input; ``b""`` at its end, when the descriptor is closed, or once
        :meth:`stop` was called."""
        while not self._stopped.is_set():
            try:
                if self._selector is not None:
                    ready = {key.fd for key, _ in self._selector.select()}
                    if self._stopped.is_set() or self.fd not in ready:
                        continue
                data = os.read(self.fd, self.size)
            except BlockingIOError:  # a descriptor someone else made non-blocking
                if self._selector is None:
                    self._stopped.wait(0.05)
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF:  # stdin closed (`<&-`): nothing to read
                    return b""
                raise
            return b"" if self._stopped.is_set() else data
        return b""

    def stop(self) -> None:
        """Make :meth:`read` return ``b""``; safe from any thread, and more than once."""
        self._stopped.set()
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    def close(self) -> None:
        """Stop, and release the wake-up sockets (not the descriptor, which is not ours)."""
        self.stop()
        if self._selector is not None:
            self._selector.close()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
