"""Output that cannot be written because the disk is full: stdout redirected to a full disk
(``/dev/full`` fails every write with ENOSPC, as a full file system does) or a ``--log``
file on a full tmpfs. Each used to end in "internal error ... please report it"; now it is
one line naming what could not be written, exit 11 (a local file cannot be written)."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from netassist.errors import ExitCode
from netassist.transfer.server import FileServer
from tests.conftest import NETASSIST
from tests.transfer import tmpfs

pytestmark = pytest.mark.integration


def one_sender(data: bytes) -> int:
    """A TCP peer on a free loopback port that sends ``data`` to one client and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def run_into(stdout, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NETASSIST, *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=30,
    )


def assert_full(result: subprocess.CompletedProcess, what: str) -> None:
    err = result.stderr.decode()
    lines = [line for line in err.splitlines() if not line.startswith("listening on")]
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert f"writing {what}: no space left on device" in lines[0], err
    assert result.returncode == ExitCode.FILE, err


@pytest.mark.parametrize("show", [[], ["--hex"], ["--show", "text"]])
def test_tcp_connect_into_a_full_disk(show):
    port = one_sender(b"line of data\n" * 20_000)
    with open("/dev/full", "wb") as full:
        result = run_into(full, "tcp", "connect", "127.0.0.1", str(port), *show)
    assert_full(result, "the output")


def test_udp_listen_into_a_full_disk():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open("/dev/full", "wb") as full:
        listener = subprocess.Popen(
            [*NETASSIST, "udp", "listen", str(port), "--count", "1", "--timeout", "20"],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
        )
    try:
        assert listener.stderr.readline().startswith(b"listening on")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"hello", ("127.0.0.1", port))
        _, err = listener.communicate(timeout=20)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    assert_full(subprocess.CompletedProcess([], listener.returncode, b"", err), "the output")


def test_a_log_on_a_full_disk_is_named(tmp_path):
    with tmpfs.small_disk(tmp_path / "disk", "256k") as disk:
        port = one_sender(b"x" * 400_000)  # the log holds it twice (hex and text): too much
        log = disk / "session.jsonl"
        result = run_into(
            subprocess.DEVNULL, "tcp", "connect", "127.0.0.1", str(port), "--log", str(log)
        )
        assert_full(result, f"log {log}")


@pytest.mark.parametrize("args", [["ls"], ["get", "a.txt", "--json"]])
def test_files_output_into_a_full_disk(tmp_path, args):
    (tmp_path / "a.txt").write_text("from the server\n")
    server = FileServer(str(tmp_path), "127.0.0.1", 0)
    threading.Thread(target=server.serve, daemon=True).start()
    try:
        command, *rest = args
        out = ["-o", str(tmp_path / "out")] if command == "get" else []
        with open("/dev/full", "wb") as full:
            result = run_into(full, "files", command, server.address, *rest, *out)
    finally:
        server.stop()
    assert_full(result, "the output")
