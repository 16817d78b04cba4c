"""Servers stopped by Ctrl-C (SIGINT) or SIGTERM exit 0 after a clean stop, as gunicorn and
``python -m http.server`` do; the assistant's listeners end with 130 on Ctrl-C, as nc does."""

from __future__ import annotations

import signal

import pytest

pytestmark = pytest.mark.integration

SERVERS = [
    ["serve", "{dir}", "-b", "127.0.0.1:0"],
    ["files", "serve", "{dir}", "-b", "127.0.0.1:0"],
    ["run", "tests.server.apps:hello", "-b", "127.0.0.1:0"],
]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("command", SERVERS, ids=["serve", "files-serve", "run"])
def test_a_server_stopped_by_a_signal_exits_0(netassist, tmp_path, command, signum):
    proc = netassist(*(word.format(dir=tmp_path) for word in command))
    proc.expect_stderr(r"[Ll]istening (on|at)")
    proc.popen.send_signal(signum)
    code, _, err = proc.finish()
    assert code == 0, err
    assert "stopped" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["tcp", "listen", "0", "-k"], ["udp", "listen", "0"]])
def test_an_assistant_listener_ends_with_130_on_ctrl_c(netassist, command):
    proc = netassist(*command)
    proc.expect_stderr("listening on")
    proc.popen.send_signal(signal.SIGINT)
    code, _, err = proc.finish()
    assert code == 130, err
    assert "Traceback" not in err
