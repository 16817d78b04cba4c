"""One small readiness interface for the worker: epoll where it exists, ``selectors`` elsewhere.

Every connection is armed one-shot (``EPOLLONESHOT``) when several threads share the poller,
so an event goes to one thread and the connection stays quiet until that thread arms it again.
One thread arms level-triggered instead (``IN_LEVEL``/``OUT_LEVEL``): a connection stays
registered across requests and costs no ``epoll_ctl`` per request.

Where ``select.epoll`` is missing (macOS, the BSDs, Windows) a ``selectors.DefaultSelector``
stands in with one-shot emulated by unregistering what a poll returns; the worker then runs
one thread. Nothing POSIX-only is read here unless epoll exists.
"""

from __future__ import annotations

import select
import selectors
import socket
from collections.abc import Callable

HAS_EPOLL = hasattr(select, "epoll")
if HAS_EPOLL:
    IN = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
    OUT = select.EPOLLOUT | select.EPOLLONESHOT
    IN_LEVEL = select.EPOLLIN | select.EPOLLRDHUP
    OUT_LEVEL = select.EPOLLOUT
else:
    IN, OUT = selectors.EVENT_READ, selectors.EVENT_WRITE
    IN_LEVEL, OUT_LEVEL = IN, OUT


class Poller:
    """epoll with one-shot or level-triggered arming, or a selectors fallback (one thread)."""

    def __init__(self) -> None:
        # The bound methods themselves, not Python methods forwarding to them: with several
        # threads modify() runs once per request, and a forwarding frame costs about as much
        # as the call it forwards.
        self.poll: Callable[[float, int], list[tuple[int, int]]]
        self.register: Callable[[int, int], object]
        self.modify: Callable[[int, int], object]
        if HAS_EPOLL:
            self._epoll = select.epoll()
            self.poll = self._epoll.poll
            self.register = self._epoll.register
            self.modify = self._epoll.modify
        else:
            self._selector = selectors.DefaultSelector()
            self.poll = self._poll_selector
            self.register = self.modify = self._arm_selector

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``; nothing happens if it is not watched."""
        try:
            if HAS_EPOLL:
                self._epoll.unregister(fd)
            else:
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

    def _poll_selector(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        ready = []
        for key, mask in self._selector.select(timeout):
            self._selector.unregister(key.fd)  # one-shot, like EPOLLONESHOT
            ready.append((key.fd, mask))
        return ready

    def close(self) -> None:
        """Release the epoll descriptor or the selector."""
        if HAS_EPOLL:
            self._epoll.close()
        else:
            self._selector.close()


class Waker:
    """A socket pair that makes a poll return from another thread or a signal handler.

    A socket pair, not ``os.pipe``: pipes cannot be polled by ``select`` on Windows.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        #: The descriptor to poll for input.
        self.fd = self._reader.fileno()

    def wake(self) -> None:
        """Make the reading end readable; safe in a signal handler."""
        try:
            self._writer.send(b"x")
        except OSError:
            pass  # full or closed: a wake-up is pending anyway, or nobody polls any more

    def close(self) -> None:
        """Close both ends."""
        self._reader.close()
        self._writer.close()
