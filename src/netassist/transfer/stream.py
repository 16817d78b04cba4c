"""Receiving an announced raw stream into a file and a hash, for client and server alike."""

from __future__ import annotations

import socket
from collections.abc import Callable

from netassist.transfer.protocol import Reader

BLOCK = 1 << 20


class StreamCut(Exception):
    """The peer closed the connection before the whole stream arrived."""


def receive_stream(
    sock: socket.socket,
    reader: Reader,
    out,
    hasher,
    length: int,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Copy exactly ``length`` stream bytes (first those ``reader`` already holds, then the
    socket's) into ``out`` and ``hasher``. It never reads past the stream, so the next frame
    stays on the socket. Raises StreamCut if the peer leaves early; OSError passes through."""
    received = 0
    held = reader.take_stream(length)
    if held:
        out.write(held)
        hasher.update(held)
        received = len(held)
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    while received < length:
        count = sock.recv_into(buffer, min(len(buffer), length - received))
        if not count:
            raise StreamCut
        chunk = view[:count]
        out.write(chunk)
        hasher.update(chunk)
        reader.consumed_stream(count)
        received += count
        if progress is not None:
            progress(received)
    return received
