"""receive_stream and the background hasher, over a real socket pair."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import threading

import pytest

from netassist.transfer import protocol
from netassist.transfer.digest import POOL, THREAD_THRESHOLD, BackgroundHasher, HashRange
from netassist.transfer.stream import FileSink, StreamCut, WriteFailed, receive_stream


def test_background_hasher_hashes_blocks_in_order():
    data = [os.urandom(1000 + i) for i in range(POOL * 3)]
    hasher = hashlib.sha256()
    background = BackgroundHasher(hasher)
    for piece in data:
        block = background.block()  # waits while the whole pool is being hashed
        block[: len(piece)] = piece
        background.hash(block, len(piece))
    background.finish()
    assert hasher.hexdigest() == hashlib.sha256(b"".join(data)).hexdigest()


def _stream(payload: bytes, *, cut_after: int | None = None, tail: bytes = b""):
    """A reader that has seen the FILE frame, and the socket the stream then arrives on."""
    ours, theirs = socket.socketpair()
    frame = protocol.encode(protocol.FrameType.FILE, {"length": len(payload)})
    first = 1000  # some stream bytes arrive with the frame, as they do in practice
    reader = protocol.Reader()
    reader.feed(frame + payload[:first])
    assert isinstance(reader.next_event(), protocol.Frame)

    def send():
        end = len(payload) if cut_after is None else cut_after
        theirs.sendall(payload[first:end] + (tail if cut_after is None else b""))
        theirs.close()

    thread = threading.Thread(target=send)
    thread.start()
    return ours, reader, thread


@pytest.mark.parametrize("size", [5000, THREAD_THRESHOLD + 12345], ids=["inline", "threaded"])
def test_stream_lands_whole_and_hashed_and_stops_at_its_end(size):
    payload = os.urandom(size)
    sock, reader, thread = _stream(payload, tail=b"NEXT FRAME")
    out, hasher, seen = io.BytesIO(), hashlib.sha256(), []
    got = receive_stream(sock, reader, out, hasher, size, seen.append)
    thread.join()
    assert got == size
    assert out.getvalue() == payload
    assert hasher.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert seen[-1] == size
    assert sock.recv(100) == b"NEXT FRAME"  # nothing past the stream was read
    sock.close()


@pytest.mark.parametrize("size", [5000, THREAD_THRESHOLD + 12345], ids=["inline", "threaded"])
def test_cut_stream_raises_with_what_arrived_written_and_hashed(size):
    payload = os.urandom(size)
    cut = size - 777
    sock, reader, thread = _stream(payload, cut_after=cut)
    out, hasher = io.BytesIO(), hashlib.sha256()
    with pytest.raises(StreamCut) as cut_short:
        receive_stream(sock, reader, out, hasher, size)
    thread.join()
    assert cut_short.value.received == cut
    assert out.getvalue() == payload[:cut]
    assert hasher.hexdigest() == hashlib.sha256(payload[:cut]).hexdigest()
    sock.close()


def test_hash_range_hashes_the_range_and_leaves_the_file_position(tmp_path):
    data = os.urandom(3 * (1 << 20) + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        handle.seek(7)
        hasher = hashlib.sha256()
        assert HashRange(handle.fileno(), 100, len(data) - 200, hasher).wait() == len(data) - 200
        assert handle.tell() == 7
    assert hasher.hexdigest() == hashlib.sha256(data[100:-100]).hexdigest()


def test_hash_range_of_a_file_that_shrank_reports_fewer_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb") as handle:
        assert HashRange(handle.fileno(), 0, 5000, hashlib.sha256()).wait() == 1000


def test_file_sink_writes_every_byte(tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        FileSink(fd, str(tmp_path / "out")).write(memoryview(b"x" * 100_000)[10:])
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"x" * 99_990


def test_file_sink_on_a_full_disk_names_the_file():
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(WriteFailed) as failed:
            FileSink(fd, "the.part").write(b"data")
    finally:
        os.close(fd)
    assert failed.value.path == "the.part"
    assert failed.value.error.errno == errno.ENOSPC
