"""The assistant where POSIX-only names are missing (as on Windows): a UDP round trip and a
TCP exchange between processes run by tests/without_posix.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
WITHOUT_POSIX = [sys.executable, str(Path(__file__).parents[1] / "without_posix.py")]


def test_udp_round_trip_without_posix_names(spawn):
    listener = spawn([*WITHOUT_POSIX, "udp", "listen", "0", "--echo", "--count", "1"])
    port = listener.port()
    sent = subprocess.run(
        [*WITHOUT_POSIX, "udp", "send", f"127.0.0.1:{port}", "下午好", "--wait-reply", "5"],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert sent.returncode == 0, sent.stderr
    assert "下午好" in sent.stdout.decode()  # the echo came back
    code, out, err = listener.finish()
    assert code == 0, err
    assert "下午好" in out.decode()


def test_tcp_exchange_without_posix_names(spawn):
    listener = spawn([*WITHOUT_POSIX, "tcp", "listen", "0", "--echo"])
    port = listener.port()
    sent = subprocess.run(
        [*WITHOUT_POSIX, "tcp", "connect", f"127.0.0.1:{port}", "--send", "hello\n"],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == b"hello\n"
    code, out, err = listener.finish()
    assert code == 0, err
    assert out == b"hello\n"
