"""What ``netassist files`` says when it is interrupted or pointed at the wrong kind of
server: what became of the partial file, and which option is missing."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from netassist.errors import ExitCode
from tests.conftest import run_netassist
from tests.transfer.peers import self_signed

pytestmark = pytest.mark.integration
SIZE = 64 << 20


def wait_for(path: Path, timeout: float = 30) -> None:
    """Until ``path`` exists and holds something."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        assert time.monotonic() < deadline, f"{path} never filled"
        time.sleep(0.001)


def interrupt(proc) -> tuple[int, str]:
    """Ctrl-C in the middle: the process is stopped, sent SIGINT, and continued, so the
    interrupt lands while it transfers, however fast the machine."""
    proc.popen.send_signal(signal.SIGSTOP)
    proc.popen.send_signal(signal.SIGINT)
    proc.popen.send_signal(signal.SIGCONT)
    code, _, err = proc.finish(30)
    return code, err


@pytest.fixture
def big(tmp_path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(SIZE >> 20):
            handle.write(os.urandom(1 << 20))
    return path


def test_ctrl_c_during_get_says_the_part_is_kept_and_a_rerun_resumes(big, tmp_path, netassist):
    server = netassist("files", "serve", str(big.parent), "-b", "127.0.0.1:0", "--quiet")
    address = f"127.0.0.1:{server.port()}"
    out = tmp_path / "out"
    client = netassist("files", "get", address, "big.bin", "-o", str(out))
    wait_for(out / "big.bin.part")
    code, err = interrupt(client)
    assert code == ExitCode.INTERRUPTED, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"{out / 'big.bin.part'} keeps what arrived" in err
    assert "running the same command again resumes" in err
    held = (out / "big.bin.part").stat().st_size
    again = run_netassist("files", "get", address, "big.bin", "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["resumed_from"] == held
    assert (out / "big.bin").read_bytes() == big.read_bytes()


def test_ctrl_c_during_put_says_the_server_keeps_it_and_a_rerun_resumes(big, tmp_path, netassist):
    shared = tmp_path / "shared"
    shared.mkdir()
    server = netassist(
        "files", "serve", str(shared), "-b", "127.0.0.1:0", "--allow-upload", "--quiet"
    )
    address = f"127.0.0.1:{server.port()}"
    client = netassist("files", "put", address, str(big))
    wait_for(shared / ".big.bin.netassist-part")
    code, err = interrupt(client)
    assert code == ExitCode.INTERRUPTED, err
    assert err.strip().count("\n") == 0
    assert "the server keeps what arrived of 'big.bin'" in err
    assert "running the same command again resumes" in err
    again = run_netassist("files", "put", address, str(big), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["resumed_from"] > 0
    assert (shared / "big.bin").read_bytes() == big.read_bytes()


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def test_a_plain_client_is_told_to_use_tls(certificate, tmp_path, netassist):
    cert, key = certificate
    server = netassist(
        "files",
        "serve",
        str(tmp_path),
        "-b",
        "127.0.0.1:0",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    result = run_netassist("files", "ls", f"127.0.0.1:{server.port()}")
    err = result.stderr.decode()
    assert result.returncode == ExitCode.NETWORK and err.count("\n") == 1, err
    assert "this server speaks TLS: connect with --tls (or --tls-ca FILE)" in err
    assert "refused: it spoke without TLS" in server.expect_stderr("refused").string


def test_another_tls_server_gets_the_hint_too(certificate):
    # Not netassist: a TLS server that resets what is not a TLS handshake.
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve_one() -> None:
            conn, _ = listener.accept()
            try:
                context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()

        threading.Thread(target=serve_one, daemon=True).start()
        port = listener.getsockname()[1]
        result = run_netassist("files", "ls", f"127.0.0.1:{port}")
    err = result.stderr.decode()
    assert result.returncode == ExitCode.NETWORK and err.count("\n") == 1, err
    assert "not a netassist file server" in err and "--tls" in err


@pytest.mark.parametrize("answer", [b"", b"hello\n"], ids=["closes", "answers-in-clear"])
def test_tls_against_a_server_without_tls_says_so_plainly(certificate, answer):
    # The other way round: --tls-ca against a server that closes the handshake or answers
    # in the clear. It printed ssl's "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in
    # violation of protocol (_ssl.c:1006)".
    cert, _ = certificate
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve_one() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(answer)

        threading.Thread(target=serve_one, daemon=True).start()
        port = listener.getsockname()[1]
        result = run_netassist("files", "ls", f"127.0.0.1:{port}", "--tls-ca", str(cert))
    err = result.stderr.decode()
    assert result.returncode == ExitCode.NETWORK and err.count("\n") == 1, err
    assert "[SSL" not in err and "_ssl.c" not in err, err
    assert "does not seem to speak TLS (then leave out --tls and --tls-ca)" in err, err


def test_the_readme_shows_the_lan_server_bound_to_every_interface():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("## File transfer")
    section = readme[start : readme.index("\n## ", start)]
    assert "netassist files serve ./share -b 0.0.0.0:9090" in section
