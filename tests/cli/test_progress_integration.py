"""Progress bars appear on a terminal (tmux gives the command a real one) and not in pipes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from netassist.transfer.server import FileServer
from tests.conftest import need, run_netassist

pytestmark = pytest.mark.integration


@pytest.fixture
def files_server(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "big.bin").write_bytes(os.urandom(20_000_000))
    srv = FileServer(str(shared), "127.0.0.1", 0, allow_upload=True)
    threading.Thread(target=srv.serve, daemon=True).start()
    yield int(srv.address.rsplit(":", 1)[1])
    srv.stop()


@pytest.mark.parametrize("action", ["get", "put"])
def test_bars_on_a_terminal(files_server, tmp_path, action):
    tmux = need("tmux")
    session = f"netassist-test-{os.getpid()}"
    netassist = f"{sys.executable} -m netassist files {action} 127.0.0.1:{files_server}"
    if action == "get":
        transfer = f"{netassist} big.bin -o {tmp_path / 'out'}"
        summary = "all verified"
    else:
        (tmp_path / "upload.bin").write_bytes(os.urandom(20_000_000))
        transfer = f"{netassist} {tmp_path / 'upload.bin'} uploads"
        summary = "verified by the server"
    command = f"{transfer}; sleep 30"  # the pane stays to be read
    subprocess.run(
        [tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "20", command],
        check=True,
        cwd=os.getcwd(),
    )
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and summary not in screen:
            time.sleep(0.2)
            screen = subprocess.run(
                [tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)
    assert "total: 100%" in screen
    assert "19.1M/19.1M" in screen
    assert "1 file(s), 20,000,000 bytes" in screen


def test_no_bars_into_a_pipe(files_server, tmp_path):
    result = run_netassist(
        "files", "get", f"127.0.0.1:{files_server}", "big.bin", "-o", str(tmp_path / "out")
    )
    assert result.returncode == 0
    assert result.stderr.decode().count("\n") == 1  # the summary line only
