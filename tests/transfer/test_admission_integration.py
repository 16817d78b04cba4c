"""A flood of idle and half-sent connections never locks a real client out of
``netassist files serve``; sessions are bounded per address."""

from __future__ import annotations

import socket
import time

import pytest

from netassist.transfer import protocol
from tests.conftest import run_netassist

pytestmark = pytest.mark.integration
HELLO = protocol.encode(protocol.FrameType.HELLO, {"version": 1, "token": "s3cret"})


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server ends ``sock`` within ``seconds`` (EOF or a reset)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def answer(sock: socket.socket) -> protocol.Frame:
    reader = protocol.Reader()
    sock.settimeout(10)
    while (event := reader.next_event()) is None:
        reader.feed(sock.recv(65536))
    return event


def test_a_flood_of_idle_and_partial_handshakes_locks_nobody_out(tmp_path, netassist):
    (tmp_path / "a.txt").write_text("here")
    server = netassist("files", "serve", str(tmp_path), "-b", "127.0.0.1:0", "--token", "s3cret")
    port = server.port()
    flood = []
    try:
        for i in range(300):
            sock = connect(port)
            if i % 3 == 0:
                sock.sendall(HELLO[:5])  # a header that never ends
            flood.append(sock)
        started = time.monotonic()
        result = run_netassist("files", "ls", f"127.0.0.1:{port}", "--token", "s3cret")
        assert result.returncode == 0, result.stderr
        assert "a.txt" in result.stdout.decode()
        assert time.monotonic() - started < 10
        # Every connection of the flood is closed by the server, the last ones by the
        # handshake deadline (5 s by default), none held for minutes.
        deadline = started + 9
        assert all(closed_within(sock, max(0.01, deadline - time.monotonic())) for sock in flood)
    finally:
        for sock in flood:
            sock.close()
    again = run_netassist("files", "ls", f"127.0.0.1:{port}", "--token", "s3cret")
    assert again.returncode == 0, again.stderr


def test_sessions_are_bounded_per_address(tmp_path, netassist):
    server = netassist(
        "files",
        "serve",
        str(tmp_path),
        "-b",
        "127.0.0.1:0",
        "--token",
        "s3cret",
        "--max-clients",
        "3",
        "--max-per-address",
        "2",
    )
    port = server.port()
    held = []
    try:
        for source in ("127.0.0.1", "127.0.0.1"):
            sock = connect(port, source)
            sock.sendall(HELLO)
            assert answer(sock).type is protocol.FrameType.HELLO
            held.append(sock)
        third = connect(port)
        third.sendall(HELLO)
        busy = answer(third)
        assert busy.type is protocol.FrameType.ERROR and busy.body["code"] == "busy"
        assert "too many connections from 127.0.0.1 (2)" in busy.body["message"]
        third.close()
        other = connect(port, "127.0.0.2")  # another address of this machine's loopback
        other.sendall(HELLO)
        assert answer(other).type is protocol.FrameType.HELLO
        held.append(other)
        full = run_netassist("files", "ls", f"127.0.0.1:{port}", "--token", "s3cret")
        assert full.returncode != 0 and "too many clients (3)" in full.stderr.decode()
        held.pop(0).close()
        deadline = time.monotonic() + 10
        while True:  # until the server has seen the close and freed the place
            ok = run_netassist("files", "ls", f"127.0.0.1:{port}", "--token", "s3cret")
            if ok.returncode == 0 or time.monotonic() > deadline:
                break
        assert ok.returncode == 0, ok.stderr
    finally:
        for sock in held:
            sock.close()
