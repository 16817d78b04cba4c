"""StdinReader: reads a descriptor in chunks, and stop() ends a read that waits."""

from __future__ import annotations

import os
import threading
import time

import pytest

from netassist.wire.stdin import StdinReader


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def test_reads_chunks_then_end_of_input(pipe):
    read_end, write_end = pipe
    reader = StdinReader(read_end, size=4)
    assert reader.stoppable
    os.write(write_end, b"abcdef")
    assert reader.read() == b"abcd"
    assert reader.read() == b"ef"
    os.close(write_end)
    assert reader.read() == b""
    reader.close()


def test_stop_ends_a_read_that_waits_for_input(pipe):
    reader = StdinReader(pipe[0])
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(reader.read()))
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # waiting: nothing was written
    started = time.monotonic()
    reader.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1
    assert got == [b""]
    reader.close()


def test_a_regular_file_and_a_closed_descriptor(tmp_path):
    path = tmp_path / "input"
    path.write_bytes(b"x" * 10)
    with open(path, "rb") as handle:
        reader = StdinReader(handle.fileno())
        assert reader.read() == b"x" * 10
        assert reader.read() == b""
        reader.close()
    read_end, write_end = os.pipe()
    os.close(write_end)
    reader = StdinReader(read_end)
    os.close(read_end)
    assert reader.read() == b""  # closed stdin (`<&-`) is the end of input
    reader.close()


def test_where_select_fails_reads_still_work(pipe, monkeypatch):
    """Windows' select takes sockets only: the reader then blocks in os.read."""
    import selectors

    def refuse(self, timeout=None):
        raise OSError(10038, "not a socket")

    monkeypatch.setattr(selectors.SelectSelector, "select", refuse)
    read_end, write_end = pipe
    reader = StdinReader(read_end)
    assert not reader.stoppable
    os.write(write_end, b"typed\n")
    assert reader.read() == b"typed\n"
    reader.stop()
    assert reader.read() == b""
    reader.close()
