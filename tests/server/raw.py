"""Reading an HTTP response off a raw socket, for tests that hold connections themselves."""

from __future__ import annotations

import re
import socket


def one_response_body(sock: socket.socket) -> bytes:
    """Read one Content-Length response from ``sock``; its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        body += chunk
    return body
