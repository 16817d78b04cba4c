"""Two throw-away servers that show what pure Python can reach on this machine.

    python bench/floor.py PORT fixed      # answers every request head with one fixed response
    python bench/floor.py PORT prototype  # httptools + a minimal WSGI environ, as the issue's
                                          # inline prototype: no checks, no timeouts

Neither is a server anyone should run: no validation, no keep-alive rules, no limits, no
errors handled. They are rows in ``http_bench.py`` so that netassist's figures can be read
against the cost of the event loop alone (``fixed``) and of the simplest WSGI path that
parses with llhttp (``prototype``), measured in the same run.
"""

from __future__ import annotations

import select
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import hello

FIXED = (
    b"HTTP/1.1 200 OK\r\nServer: floor\r\nDate: Fri, 27 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
)


class PrototypeConnection:
    """llhttp callbacks into a minimal environ; responses collect in ``out``."""

    def __init__(self, sock: socket.socket, base: dict) -> None:
        import httptools

        self.sock = sock
        self.base = base
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        environ = self.base.copy()
        path, _, query = self.url.partition(b"?")
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["REQUEST_METHOD"] = self.parser.get_method().decode("latin-1")
        for name, value in self.headers:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            environ[key] = value.decode("latin-1")
        started: list = []
        body = hello(
            environ, lambda status, headers, exc_info=None: started.extend((status, headers))
        )
        status, headers = started
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        head = f"HTTP/1.1 {status}\r\n{lines}Date: Fri, 27 Nov 2026 10:00:00 GMT\r\n\r\n"
        self.out.append(head.encode("latin-1"))
        self.out.extend(body)
        self.url, self.headers = b"", []


def serve(port: int, mode: str) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    base = {
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    conns: dict[int, tuple[socket.socket, PrototypeConnection | None]] = {}
    while True:
        for fd, _ in poller.poll(1, 64):
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    proto = PrototypeConnection(sock, base) if mode == "prototype" else None
                    conns[sock.fileno()] = (sock, proto)
                    poller.register(sock.fileno(), select.EPOLLIN)
                continue
            sock, proto = conns[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                sock.close()
                del conns[fd]
                continue
            if proto is None:
                sock.send(FIXED * data.count(b"\r\n\r\n"))
            else:
                proto.parser.feed_data(data)
                sock.send(b"".join(proto.out))
                proto.out.clear()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "fixed")
