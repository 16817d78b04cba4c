"""``tcp listen`` with several clients possible (``-k``, ``--broadcast``) writes tagged lines
into a pipe too, and a line that arrives in pieces is shown once."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def wait_logged(log: Path, count: int, timeout: float = 10.0) -> None:
    """Wait until the listener has logged ``count`` data records (it has read them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            records = [json.loads(line) for line in log.read_text().splitlines() if line]
            if sum(r["event"] == "data" and r["direction"] == "in" for r in records) >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"the listener did not read {count} pieces")


def connect(port: int) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, client_port = sock.getsockname()
    return sock, f"[{host}:{client_port}]"


@pytest.mark.parametrize("mode", ["-k", "--broadcast"])
def test_pieces_of_lines_from_two_clients_come_out_tagged_and_whole(netassist, tmp_path, mode):
    log = tmp_path / "log.jsonl"
    listener = netassist("tcp", "listen", "0", mode, "--log", str(log), "--timeout", "60")
    port = listener.port()
    alice, alice_tag = connect(port)
    bob, bob_tag = connect(port)
    listener.expect_stderr("connected")
    listener.expect_stderr("connected")
    read = 0
    for sock, piece in [(alice, b"hel"), (bob, b"wor"), (alice, b"lo\n"), (bob, b"ld\n")]:
        sock.sendall(piece)
        read += 1
        wait_logged(log, read)
    alice.sendall("尾巴 without a newline".encode())  # a last line with no end
    wait_logged(log, read + 1)
    alice.close()
    bob.close()
    listener.expect_stderr("disconnected")
    listener.expect_stderr("disconnected")
    listener.popen.terminate()
    _code, out, err = listener.finish()
    lines = out.decode().splitlines()
    assert lines == [
        f"{alice_tag} hello",
        f"{bob_tag} world",
        f"{alice_tag} 尾巴 without a newline",
    ], err


def test_an_unfinished_line_shows_once_the_client_pauses(netassist):
    listener = netassist("tcp", "listen", "0", "-k", "--timeout", "60")
    port = listener.port()
    client, tag = connect(port)
    client.sendall(b"login: ")
    deadline = time.monotonic() + 10
    while f"{tag} login: \n".encode() not in listener.stdout_so_far():
        assert time.monotonic() < deadline, listener.stdout_so_far()
        time.sleep(0.05)
    assert client.fileno() >= 0  # shown while the client is still connected
    client.sendall(b"alice\n")
    client.close()
    listener.expect_stderr("disconnected")
    listener.popen.terminate()
    assert listener.finish()[1].decode().splitlines() == [f"{tag} login: ", f"{tag} alice"]


def test_a_line_with_no_end_is_shown_in_bounded_pieces(netassist):
    listener = netassist("tcp", "listen", "0", "-k", "--timeout", "60")
    port = listener.port()
    client, tag = connect(port)
    client.sendall(b"x" * 300_000)
    client.close()
    listener.expect_stderr("disconnected")
    listener.popen.terminate()
    lines = listener.finish()[1].decode().splitlines()
    assert all(line.startswith(f"{tag} ") for line in lines)
    assert max(len(line) for line in lines) <= len(tag) + 1 + 256 * 1024
    assert "".join(line[len(tag) + 1 :] for line in lines) == "x" * 300_000


def test_one_client_into_a_pipe_stays_raw_like_nc(netassist):
    listener = netassist("tcp", "listen", "0")
    port = listener.port()
    payload = bytes(range(256)) * 4
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(payload)
    code, out, _err = listener.finish()
    assert (code, out) == (0, payload)
