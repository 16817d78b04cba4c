"""``netassist serve`` and ``netassist run`` where POSIX-only names are missing, as on Windows.

Each server runs in a subprocess (tests/without_posix.py) that deletes those names before
netassist is imported, so every fallback is the one that runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

WITHOUT_POSIX = [sys.executable, str(Path(__file__).parents[1] / "without_posix.py")]


def _start(spawn, *args: str):
    proc = spawn([*WITHOUT_POSIX, *args], env={**os.environ, "NETASSIST_SAY_SELECTOR": "1"})
    assert proc.expect_stderr(r"selector: (\w+)").group(1) == "SelectSelector"
    return proc


def test_serve_answers_without_posix_only_names(spawn, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "small.txt").write_text("hello\n")
    big = os.urandom(300_000)  # above the size sent with the head: goes by file_wrapper
    (root / "big.bin").write_bytes(big)
    (root / "中文.txt").write_text("中文内容\n")
    proc = _start(spawn, "serve", str(root), "--bind", "127.0.0.1:0", "--threads", "2")
    proc.expect_stderr(r"--threads 2 needs epoll \(Linux\): serving with one thread")
    port = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+) \(1 thread\)").group(1)
    base = f"http://127.0.0.1:{port}"
    with requests.Session() as session:
        assert session.get(base + "/small.txt", timeout=10).content == b"hello\n"
        reply = session.get(base + "/big.bin", timeout=10)
        assert hashlib.sha256(reply.content).digest() == hashlib.sha256(big).digest()
        ranged = session.get(base + "/big.bin", headers={"Range": "bytes=1000-99999"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == big[1000:100000]
        assert session.head(base + "/big.bin", timeout=10).headers["Content-Length"] == "300000"
        assert "中文.txt" in session.get(base + "/", timeout=10).text
        ports = {session.get(base + "/small.txt", stream=True, timeout=10).raw._connection}
        assert len(ports) == 1
    proc.popen.terminate()
    code, _, err = proc.finish()
    assert code == 0, err
    assert "Traceback" not in err


def test_run_serves_bodies_streams_and_stops_without_posix_only_names(spawn):
    args = ["run", "tests.server.apps:app", "--bind", "127.0.0.1:0"]
    proc = _start(spawn, *args)
    port = int(proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
    base = f"http://127.0.0.1:{port}"
    upload = os.urandom(2 << 20)  # spooled to a temporary file
    with requests.Session() as session:
        reply = session.post(base + "/read", data=upload, timeout=20)
        assert reply.text == hashlib.sha256(upload).hexdigest()
        pieces = iter([upload[:1000], upload[1000:]])
        reply = session.post(base + "/read", data=pieces, timeout=20)  # chunked
        assert reply.text == hashlib.sha256(upload).hexdigest()
        reply = session.post(
            base + "/read", data=upload, headers={"Expect": "100-continue"}, timeout=20
        )
        assert reply.text == hashlib.sha256(upload).hexdigest()  # a live wsgi.input
        assert session.get(base + "/stream?5000", timeout=20).content.count(b"\n") == 5000
        assert session.get(base + "/write", timeout=10).text == "written twice, then returned"
    proc.popen.terminate()
    code, _, err = proc.finish()
    assert code == 0, err
    assert "Traceback" not in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_unix_socket_bind_without_unix_sockets_is_one_clear_line(spawn, tmp_path):
    proc = _start(spawn, "run", "tests.server.apps:app", "--bind", f"unix:{tmp_path / 's'}")
    code, _, err = proc.finish()
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("netassist:")]
    assert len(lines) == 1 and "this system has no Unix sockets" in lines[0], err
    assert "Traceback" not in err


def test_run_without_fork_refuses_workers_and_serves_in_one_process(spawn):
    refused = subprocess_run([*WITHOUT_POSIX, "run", "tests.server.apps:app", "--workers", "2"])
    assert refused.returncode == 2
    assert refused.stderr.decode() == (
        "netassist: --workers above 1 needs fork, which this system lacks; use --threads\n"
    )
    proc = _start(spawn, "run", "tests.server.apps:app", "--bind", "127.0.0.1:0", "-w", "auto")
    port = int(proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+) \(1 thread\)").group(1))
    pids = {requests.get(f"http://127.0.0.1:{port}/pid", timeout=10).text for _ in range(5)}
    assert pids == {str(proc.popen.pid)}  # served by the process itself: no master, no fork
    proc.popen.terminate()
    code, _, err = proc.finish()
    assert code == 0, err


def subprocess_run(args: list[str]):
    import subprocess

    return subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
