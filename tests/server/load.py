"""A bounded load of concurrent HTTP clients, for the master's tests.

Each client is a thread with its own keep-alive connection (http.client, as a browser or a
proxy keeps one), sending GET requests one after another until the load is stopped, its
time runs out or its count is reached. A request that fails is recorded with its error, and
the client goes on with a new connection, as a real one would. A response that says
``Connection: close`` is not a failure: the next request opens a new connection.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    """One request: when it was sent and answered (monotonic), and what came back."""

    started: float
    ended: float
    status: int | None
    body: bytes
    error: str | None
    client: int


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class Load:
    """``clients`` threads requesting ``path`` at ``port`` (or on the Unix socket ``unix``)
    for at most ``seconds`` and ``limit`` requests in all."""

    def __init__(
        self,
        path: str,
        *,
        port: int | None = None,
        unix: str | None = None,
        clients: int = 8,
        seconds: float = 30.0,
        limit: int = 200_000,
        timeout: float = 20.0,
    ) -> None:
        self.path = path
        self.port = port
        self.unix = unix
        self.timeout = timeout
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._left = limit
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[Result]:
        """Stop every client (each finishes the request in hand); the results so far."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.results

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` requests have been answered (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.results) < count:
            assert time.monotonic() < deadline, f"only {len(self.results)} answers"
            time.sleep(0.02)

    @property
    def failures(self) -> list[Result]:
        """The requests that got no good answer."""
        return [r for r in self.results if r.error is not None or r.status != 200]

    def _connection(self) -> http.client.HTTPConnection:
        if self.unix is not None:
            return UnixHTTPConnection(self.unix, self.timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def _client(self, number: int) -> None:
        conn = self._connection()
        while not self._stop.is_set() and time.monotonic() < self._deadline and self._take():
            started = time.monotonic()
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
                result = Result(started, time.monotonic(), response.status, body, None, number)
            except (OSError, http.client.HTTPException) as exc:
                result = Result(started, time.monotonic(), None, b"", repr(exc), number)
                conn.close()
                conn = self._connection()
            with self._lock:
                self.results.append(result)
        conn.close()
