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


def read_response(stream) -> tuple[bytes, bytes]:
    """Read one response off a connection's file (``sock.makefile("rb")``): its status line
    and its body, by Content-Length or chunked."""
    status = stream.readline()
    assert status, "connection closed"
    length, chunked = None, False
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            chunked = value.strip().lower() == b"chunked"
    if not chunked:
        return status, stream.read(length)
    body = bytearray()
    while size := int(stream.readline().split(b";")[0], 16):
        body += stream.read(size)
        assert stream.read(2) == b"\r\n"
    assert stream.readline() == b"\r\n"
    return status, bytes(body)
