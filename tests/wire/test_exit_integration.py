"""``tcp connect`` and ``tcp listen`` end cleanly while stdin is still open.

The thread reading stdin is then still waiting for input. Python used to abort at exit
(``Fatal Python error: _enter_buffered_busy``, exit 134) when that thread sat in a read of
``sys.stdin``'s buffered object; these cases run on a real terminal (tmux) and with a pipe
that stays open, as ``sleep 1 | netassist ...`` does.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from tests.conftest import NETASSIST

pytestmark = pytest.mark.integration

LINE = b"hello from the server\n"


class OneShotServer:
    """Accepts one client; sends it a line and closes, or holds it open until closed."""

    def __init__(self, *, hold: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.release = threading.Event()
        self.hold = hold
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.accepted.set()
            if self.hold:
                self.release.wait(60)
            else:
                conn.sendall(LINE)

    def close(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.sock.close()


def assert_clean(screen_or_err: str) -> None:
    assert "Fatal Python error" not in screen_or_err
    assert "Traceback" not in screen_or_err


def test_connect_on_a_terminal_exits_0_when_the_server_closes(terminal):
    server = OneShotServer()
    try:
        terminal.run([*NETASSIST, "tcp", "connect", "127.0.0.1", str(server.port)])
        code = terminal.wait_for(r"EXIT=(\d+)").group(1)
    finally:
        server.close()
    screen = terminal.screen()
    assert_clean(screen)
    assert LINE.decode().strip() in screen
    assert code == "0", screen


def test_connect_on_a_terminal_exits_130_on_ctrl_c(terminal):
    server = OneShotServer(hold=True)
    try:
        terminal.run([*NETASSIST, "tcp", "connect", "127.0.0.1", str(server.port), "-v"])
        assert server.accepted.wait(20)
        terminal.wait_for("connected to")
        terminal.keys("C-c")
        code = terminal.wait_for(r"EXIT=(\d+)").group(1)
    finally:
        server.close()
    screen = terminal.screen()
    assert_clean(screen)
    assert code == "130", screen


def test_listen_on_a_terminal_exits_0_when_its_client_leaves(terminal):
    terminal.run([*NETASSIST, "tcp", "listen", "0"])
    port = int(terminal.wait_for(r"listening on tcp 127\.0\.0\.1:(\d+)").group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"hi from the client\n")
    code = terminal.wait_for(r"EXIT=(\d+)").group(1)
    screen = terminal.screen()
    assert_clean(screen)
    assert "] hi from the client" in screen
    assert code == "0", screen


def test_listen_on_a_terminal_exits_130_on_ctrl_c(terminal):
    terminal.run([*NETASSIST, "tcp", "listen", "0"])
    terminal.wait_for(r"listening on tcp 127\.0\.0\.1:(\d+)")
    terminal.keys("C-c")
    code = terminal.wait_for(r"EXIT=(\d+)").group(1)
    screen = terminal.screen()
    assert_clean(screen)
    assert code == "130", screen


def run_with_open_stdin(argv: list[str], server: OneShotServer | None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with a stdin pipe held open and never written, as by ``sleep 10 |``.

    Against ``server`` for ``tcp connect``; for ``tcp listen``, be its client and send LINE.
    """
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        if server is None:
            port = int(proc.stderr.readline().decode().rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(LINE)
        code = proc.wait(20)
        return code, proc.stdout.read(), proc.stderr.read()
    finally:
        if server is not None:
            server.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdin.close()


def test_connect_with_an_open_pipe_exits_0_when_the_server_closes():
    server = OneShotServer()
    code, out, err = run_with_open_stdin(
        [*NETASSIST, "tcp", "connect", "127.0.0.1", str(server.port)], server
    )
    assert_clean(err.decode())
    assert (code, out, err) == (0, LINE, b"")


def test_listen_with_an_open_pipe_exits_0_when_its_client_leaves(netassist):
    listener = netassist("tcp", "listen", "0", stdin=subprocess.PIPE)
    port = listener.port()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"bye\n")
    code, out, err = listener.finish()
    assert_clean(err)
    assert (code, out) == (0, b"bye\n")


# Where select() refuses stdin (Windows takes sockets only), the reading thread is left
# blocked in os.read at exit; that must be as clean as the select-based stop.
_WITHOUT_SELECT_ON_STDIN = """
import selectors, sys
def refuse(self, timeout=None):
    raise OSError(10038, "not a socket")
selectors.SelectSelector.select = refuse
from netassist.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["connect", "listen"])
def test_without_select_on_stdin_an_open_pipe_still_exits_0(command):
    server = OneShotServer() if command == "connect" else None
    args = ["tcp", command, *(["127.0.0.1", str(server.port)] if server else ["0"])]
    code, out, err = run_with_open_stdin(
        [sys.executable, "-c", _WITHOUT_SELECT_ON_STDIN, *args], server
    )
    assert_clean(err.decode())
    assert (code, out) == (0, LINE), err
