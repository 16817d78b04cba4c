"""A lossy UDP relay on loopback for chat tests and benchmarks: it stands between peers, and
drops, duplicates and reorders what passes.

Each peer ``i`` is told the relay's address ``proxy(j, i)`` for each other peer ``j``. A
datagram that arrives there comes from ``i`` (the relay learns ``i``'s real address from it)
and goes on to ``j`` from ``proxy(i, j)``, so ``j`` sees ``i`` at one address that always
leads back through the relay. Every loop is bounded: the relay stops when told, or after
``lifetime`` seconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import threading
import time


class LossyRelay:
    """A relay between ``count`` peers; see the module docstring."""

    def __init__(
        self,
        count: int,
        *,
        drop: float = 0.2,
        duplicate: float = 0.05,
        delay: float = 0.02,
        seed: int | None = None,
        lifetime: float = 600.0,
    ) -> None:
        self.count = count
        self.drop, self.duplicate, self.delay = drop, duplicate, delay
        self.random = random.Random(seed)
        self.lifetime = lifetime
        self.sockets: dict[tuple[int, int], socket.socket] = {}
        for j in range(count):
            for i in range(count):
                if i != j:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.bind(("127.0.0.1", 0))
                    sock.setblocking(False)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                    self.sockets[j, i] = sock
        self.real: dict[int, tuple[str, int]] = {}
        self.passed = self.dropped = self.duplicated = 0
        self._queue: list[tuple[float, int, socket.socket, bytes, int]] = []
        self._order = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def proxy(self, j: int, i: int) -> str:
        """The address at which peer ``i`` reaches peer ``j``."""
        return f"127.0.0.1:{self.sockets[j, i].getsockname()[1]}"

    def peers_of(self, i: int) -> list[str]:
        """``--peer`` arguments for peer ``i``: every other peer, through the relay."""
        args = []
        for j in range(self.count):
            if j != i:
                args += ["--peer", self.proxy(j, i)]
        return args

    def forget(self, i: int) -> None:
        """Peer ``i`` restarts: learn its address again."""
        self.real.pop(i, None)

    def _run(self) -> None:
        started = time.monotonic()
        with selectors.DefaultSelector() as selector:
            for (j, i), sock in self.sockets.items():
                selector.register(sock, selectors.EVENT_READ, (j, i))
            while not self._stop.is_set() and time.monotonic() - started < self.lifetime:
                wait = 0.05
                if self._queue:
                    wait = max(0.0, min(wait, self._queue[0][0] - time.monotonic()))
                for key, _ in selector.select(wait):
                    j, i = key.data
                    for _ in range(64):
                        try:
                            data, source = key.fileobj.recvfrom(65536)
                        except BlockingIOError:
                            break
                        self.real[i] = source
                        self._pass(data, i, j)
                now = time.monotonic()
                while self._queue and self._queue[0][0] <= now:
                    _, _, sock, data, target = heapq.heappop(self._queue)
                    if target in self.real:
                        try:
                            sock.sendto(data, self.real[target])
                        except OSError:
                            pass

    def _pass(self, data: bytes, source: int, target: int) -> None:
        copies = 2 if self.random.random() < self.duplicate else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            if self.random.random() < self.drop:
                self.dropped += 1
                continue
            self.passed += 1
            when = time.monotonic() + self.random.random() * self.delay
            heapq.heappush(
                self._queue,
                (when, next(self._order), self.sockets[source, target], data, target),
            )

    def close(self) -> None:
        """Stop the relay and close its sockets."""
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets.values():
            sock.close()
