"""``netassist tcp`` as a process, against real nc, socat and many Python clients."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import free_port, need, run_netassist, wait_bound

pytestmark = pytest.mark.integration


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_one_mib_echo_round_trip_sha256(netassist, tmp_path):
    payload = os.urandom(1024 * 1024)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    listener = netassist("tcp", "listen", "0", "--echo", "--show", "raw")
    port = listener.port()
    result = run_netassist("tcp", "connect", "127.0.0.1", str(port), "--file", str(source))
    assert result.returncode == 0, result.stderr
    assert sha256(result.stdout) == sha256(payload)
    code, seen, err = listener.finish()
    assert code == 0  # without --keep-open the listener leaves with its only client
    assert sha256(seen) == sha256(payload)
    assert "connected" in err and "disconnected: closed by peer" in err


def test_connect_to_nc_listener_binary_and_half_close(spawn, tmp_path):
    nc = need("nc")
    payload = os.urandom(300_000)
    port = free_port()
    receiver = spawn([nc, "-l", "127.0.0.1", str(port)])
    wait_bound(port)
    result = run_netassist("tcp", "connect", "127.0.0.1", str(port), input=payload)
    assert result.returncode == 0, result.stderr
    code, got, _ = receiver.finish()
    assert (code, got) == (0, payload)


def test_nc_client_to_listener_text_tagged(netassist):
    nc = need("nc")
    listener = netassist("tcp", "listen", "0", "--show", "text")
    port = listener.port()
    subprocess.run(
        [nc, "-N", "127.0.0.1", str(port)],
        input="hello\n世界\x1b[2J\n".encode(),
        check=True,
        timeout=20,
    )
    code, out, _err = listener.finish()
    assert code == 0
    lines = out.decode().splitlines()
    assert lines[0].startswith("[127.0.0.1:") and lines[0].endswith("] hello")
    assert lines[1].endswith("] 世界\\x1b[2J")


def test_socat_both_ways(netassist, spawn):
    socat = need("socat")
    # socat as client into our listener
    listener = netassist("tcp", "listen", "0", "--show", "raw")
    port = listener.port()
    payload = bytes(range(256)) * 100
    subprocess.run(
        [socat, "-u", "STDIN", f"TCP:127.0.0.1:{port}"], input=payload, check=True, timeout=20
    )
    assert listener.finish()[1] == payload
    # socat as an echo server, we connect
    port = free_port()
    spawn([socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "EXEC:cat"])
    wait_bound(port)
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--send", "ping\n", "--show", "raw"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ping\n"


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_chinese_round_trip_in_encoding(netassist, encoding):
    text = "你好,世界!网络调试助手"
    listener = netassist("tcp", "listen", "0", "--echo", "--encoding", encoding, "--show", "text")
    port = listener.port()
    result = run_netassist(
        "tcp",
        "connect",
        "127.0.0.1",
        str(port),
        "--encoding",
        encoding,
        "--show",
        "text",
        input=(text + "\n").encode(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == text + "\n"
    code, out, _ = listener.finish()
    assert code == 0
    assert out.decode().rstrip().endswith("] " + text)


def test_gbk_bytes_on_the_wire(spawn):
    nc = need("nc")
    port = free_port()
    receiver = spawn([nc, "-l", "127.0.0.1", str(port)])
    wait_bound(port)
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--encoding", "gbk", "--send", "中文"
    )
    assert result.returncode == 0, result.stderr
    assert receiver.finish()[1] == "中文".encode("gbk")


def test_hex_input_and_hex_dump_output(netassist):
    listener = netassist("tcp", "listen", "0", "--echo", "--show", "raw")
    port = listener.port()
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--hex", input=b"48 65 6c 6c 6f 00 ff\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "00000000: 4865 6c6c 6f00 ff                        Hello..\n"
    assert listener.finish()[1] == b"Hello\x00\xff"


def test_crlf_and_http_style_request(netassist):
    listener = netassist("tcp", "listen", "0", "--show", "raw")
    port = listener.port()
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--crlf", input=b"GET / HTTP/1.0\n\n"
    )
    assert result.returncode == 0
    assert listener.finish()[1] == b"GET / HTTP/1.0\r\n\r\n"


def test_listener_log_and_replay_reproduce_bytes(netassist, tmp_path):
    log = tmp_path / "session.jsonl"
    first = netassist("tcp", "listen", "0", "--show", "raw")
    port = first.port()
    messages = ["hello\n", "\x01\xe9 binary\n", "中文\n"]
    args = ["tcp", "connect", "127.0.0.1", str(port), "--log", str(log)]
    for message in messages:
        args += ["--send", message]
    assert run_netassist(*args).returncode == 0
    code, original, _ = first.finish()
    assert (code, original) == (0, "".join(messages).encode())
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert next(r["event"] for r in records) == "open"
    assert {r["direction"] for r in records if r["event"] == "data"} == {"out"}

    second = netassist("tcp", "listen", "0", "--show", "raw")
    port = second.port()
    result = run_netassist("replay", str(log), "--to", "127.0.0.1", str(port), "--timing")
    assert result.returncode == 0, result.stderr
    assert "replayed 3 records" in result.stderr.decode(), log.read_text()
    assert second.finish()[:2] == (0, original)


def test_udp_replay_reproduces_datagrams(netassist, tmp_path):
    log = tmp_path / "udp.jsonl"
    sink = netassist("udp", "listen", "0", "--count", "3", "--timeout", "20")
    port = sink.port()
    assert (
        run_netassist(
            "udp", "send", "127.0.0.1", str(port), "--log", str(log), input=b"a\nbb\nccc\n"
        ).returncode
        == 0
    )
    code, out, _ = sink.finish()
    assert code == 0
    assert [line.rsplit(": ", 1)[1] for line in out.decode().splitlines()] == ["a", "bb", "ccc"]
    replayed = netassist("udp", "listen", "0", "--count", "3", "--timeout", "20", "--show", "raw")
    port = replayed.port()
    assert run_netassist("replay", str(log), "--to", "127.0.0.1", str(port)).returncode == 0
    assert replayed.finish()[:2] == (0, b"abbccc")


def test_keep_open_serves_clients_one_after_another(netassist):
    listener = netassist("tcp", "listen", "0", "--keep-open", "--show", "raw", "--timeout", "30")
    port = listener.port()
    for i in range(3):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"client{i}\n".encode())
        listener.expect_stderr(r"disconnected")
    assert listener.popen.poll() is None
    listener.popen.terminate()
    _code, out, _ = listener.finish()
    assert out == b"client0\nclient1\nclient2\n"


def test_max_clients_refuses_the_extra_one(netassist):
    listener = netassist(
        "tcp", "listen", "0", "--keep-open", "--max-clients", "1", "--echo", "--timeout", "30"
    )
    port = listener.port()
    with socket.create_connection(("127.0.0.1", port)) as first:
        listener.expect_stderr("connected")
        with socket.create_connection(("127.0.0.1", port)) as second:
            second.settimeout(5)
            assert second.recv(10) == b""  # closed at once
        listener.expect_stderr("refused: already 1 clients")
        first.sendall(b"still here\n")
        first.settimeout(10)
        assert read_line(first) == b"still here"  # the first client is still served
    listener.expect_stderr("disconnected")
    listener.popen.terminate()
    assert "] still here\n" in listener.finish()[1].decode()


def test_idle_timeout_exits_with_timeout_code(netassist):
    listener = netassist("tcp", "listen", "0", "--timeout", "30")
    port = listener.port()
    started = time.monotonic()
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--idle-timeout", "0.5", "--no-half-close"
    )
    assert time.monotonic() - started < 10
    assert result.returncode == 9
    assert result.stderr.decode().count("\n") == 1
    assert "no data to or from" in result.stderr.decode()


def test_broadcast_fifty_clients_each_message_exactly_once(netassist):
    clients_count = 50
    listener = netassist(
        "tcp", "listen", "0", "--broadcast", "--show", "raw", "-q", "--timeout", "60"
    )
    port = listener.port()
    sockets = []
    for _ in range(clients_count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(30)
        sockets.append(sock)
        # wait for the welcome so every client is in the room before anyone speaks
        assert sock.recv(4096).startswith(b"* welcome")
    received: list[list[str]] = [[] for _ in sockets]
    expected_each = clients_count - 1

    def read_all(index: int) -> None:
        buffer = b""
        while len(received[index]) < expected_each:
            chunk = sockets[index].recv(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            received[index] += [line.decode() for line in lines if line.startswith(b"[")]

    readers = [threading.Thread(target=read_all, args=(i,)) for i in range(clients_count)]
    for reader in readers:
        reader.start()
    for i, sock in enumerate(sockets):
        sock.sendall(f"message from client {i}\n".encode())
    for reader in readers:
        reader.join(60)
    for i, lines in enumerate(received):
        texts = sorted(line.split("] ", 1)[1] for line in lines)
        assert texts == sorted(
            f"message from client {j}" for j in range(clients_count) if j != i
        ), i
    for sock in sockets:
        sock.close()
    listener.popen.terminate()


def test_broadcast_escapes_control_bytes_and_renames(netassist):
    listener = netassist(
        "tcp", "listen", "0", "--broadcast", "-q", "--timeout", "30", "--show", "raw"
    )
    port = listener.port()
    alice = socket.create_connection(("127.0.0.1", port))
    bob = socket.create_connection(("127.0.0.1", port))
    for sock in (alice, bob):
        sock.settimeout(10)
    assert read_line(alice).startswith(b"* welcome")
    assert read_line(bob).startswith(b"* welcome")
    assert read_line(alice).endswith(b"joined")
    alice.sendall(b"/name alice\n")
    assert read_line(bob).endswith(b"is now alice")
    read_line(alice)
    alice.sendall(b"hi \x1b[2J there\r\n")
    assert read_line(bob) == b"[alice] hi \\x1b[2J there"
    alice.close()
    assert read_line(bob) == b"* alice left"
    bob.close()
    listener.popen.terminate()


def test_host_stdin_goes_to_every_client(netassist):
    listener = netassist(
        "tcp", "listen", "0", "--keep-open", "--timeout", "30", stdin=subprocess.PIPE
    )
    port = listener.port()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for _ in clients:
        listener.expect_stderr("connected")
    listener.popen.stdin.write(b"from the host\n")
    listener.popen.stdin.flush()
    for sock in clients:
        sock.settimeout(10)
        assert read_line(sock) == b"from the host"
        sock.close()
    listener.popen.terminate()


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.rstrip(b"\n")
