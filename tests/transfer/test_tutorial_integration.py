"""The tutorial's own download programs against netassist, and netassist against them:
``files serve --plain`` and ``files get --plain`` speak their protocol, and without
``--plain`` each side says plainly that the other is not a netassist file server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netassist.errors import ExitCode
from tests.conftest import run_netassist

pytestmark = pytest.mark.integration
TUTORIAL = [sys.executable, str(Path(__file__).with_name("tutorial_files.py"))]
CANARY = b"CANARY-never-served"


@pytest.fixture
def shared(tmp_path) -> Path:
    root = tmp_path / "shared"
    root.mkdir()
    (root / "a.txt").write_bytes(b"short name\n")
    (root / "a-longer-name.bin").write_bytes(os.urandom(300_000))
    (root / "文件.txt").write_text("中文\n")
    (root / ".hidden").write_bytes(CANARY)
    (root / "folder").mkdir()
    (tmp_path / "canary.txt").write_bytes(CANARY)
    return root


def tutorial_client(port: int, name: str, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    return subprocess.run(
        [*TUTORIAL, "client", str(port)],
        input=name.encode(),
        capture_output=True,
        cwd=folder,
        timeout=20,
    )


@contextlib.contextmanager
def tutorial_server(shared: Path) -> Iterator[int]:
    """The tutorial's server, serving one client from ``shared``: its port. It ends by
    itself after that client; it is stopped (by its PID) if it has not."""
    proc = subprocess.Popen(
        [*TUTORIAL, "server", "0"], cwd=shared, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield int(proc.stdout.readline())
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("name", ["a.txt", "a-longer-name.bin", "文件.txt"])
def test_the_tutorials_client_against_files_serve_plain(shared, tmp_path, netassist, name):
    server = netassist("files", "serve", str(shared), "-b", "127.0.0.1:0", "--plain")
    port = server.port()
    got = tutorial_client(port, name, tmp_path / "client")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "client" / name).read_bytes() == (shared / name).read_bytes()
    assert f"plain get {name}: sent" in server.expect_stderr("plain get").string


@pytest.mark.parametrize("name", [".hidden", "../canary.txt", "folder", "nope.txt"])
def test_files_serve_plain_sends_nothing_the_resolver_refuses(shared, tmp_path, netassist, name):
    server = netassist("files", "serve", str(shared), "-b", "127.0.0.1:0", "--plain")
    port = server.port()
    (tmp_path / "client" / "sub").mkdir(parents=True)
    got = tutorial_client(port, name, tmp_path / "client" / "sub")
    assert got.returncode == 0, got.stderr
    written = tmp_path / "client" / "sub" / name
    assert written.read_bytes() == b""  # the tutorial's client writes what it got: nothing
    assert "refused" in server.expect_stderr("refused").string


@pytest.mark.parametrize("name", ["a.txt", "a-longer-name.bin"])
def test_the_tutorials_client_against_files_serve_is_not_left_hanging(
    shared, tmp_path, netassist, name
):
    server = netassist("files", "serve", str(shared), "-b", "127.0.0.1:0")
    port = server.port()
    started = time.monotonic()
    got = tutorial_client(port, name, tmp_path / "client")
    assert got.returncode == 0, got.stderr
    assert time.monotonic() - started < 3  # not the handshake deadline: at once
    assert (tmp_path / "client" / name).read_bytes() == b""
    line = server.expect_stderr("refused").string
    assert "not a netassist client" in line and "files serve --plain" in line


def test_files_get_against_the_tutorials_server_says_what_it_is(shared, tmp_path):
    out = tmp_path / "out"
    with tutorial_server(shared) as port:
        result = run_netassist("files", "get", f"127.0.0.1:{port}", "a.txt", "-o", str(out))
    err = result.stderr.decode()
    assert result.returncode == ExitCode.NETWORK and err.count("\n") == 1, err
    assert "is not a netassist file server" in err and "--plain" in err
    assert "run again to resume" not in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["a.txt", "a-longer-name.bin", "文件.txt"])
def test_files_get_plain_against_the_tutorials_server(shared, tmp_path, name):
    out = tmp_path / "out"
    with tutorial_server(shared) as port:
        result = run_netassist("files", "get", f"127.0.0.1:{port}", name, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stderr
    assert (out / name).read_bytes() == (shared / name).read_bytes()
    assert "plain: not verified" in result.stderr.decode()
    assert sorted(os.listdir(out)) == [name]


def test_files_get_plain_against_files_serve_plain(shared, tmp_path, netassist):
    server = netassist("files", "serve", str(shared), "-b", "127.0.0.1:0", "--plain")
    address = f"127.0.0.1:{server.port()}"
    out = tmp_path / "out"
    result = run_netassist(
        "files",
        "get",
        address,
        "a.txt",
        "文件.txt",
        "a-longer-name.bin",
        "-o",
        str(out),
        "--plain",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    for name in ("a.txt", "文件.txt", "a-longer-name.bin"):
        assert (out / name).read_bytes() == (shared / name).read_bytes()
    for name in (".hidden", "folder", "nope.txt"):
        refused = run_netassist("files", "get", address, name, "-o", str(out), "--plain")
        err = refused.stderr.decode()
        assert refused.returncode == ExitCode.FILE and err.count("\n") == 1, err
        assert "sent nothing" in err and "nothing written" in err
        assert not (out / name).exists() and not (out / f"{name}.part").exists()
    plain_client = run_netassist("files", "ls", address)
    assert plain_client.returncode == ExitCode.NETWORK
    assert "--plain" in plain_client.stderr.decode()


@pytest.mark.parametrize(
    "args",
    [
        ["serve", ".", "--plain", "--allow-upload"],
        ["serve", ".", "--plain", "--token", "x"],
        ["get", "127.0.0.1:1", "a.txt", "--plain", "--tls"],
        ["get", "127.0.0.1:1", "a.txt", "--plain", "--token", "x"],
    ],
)
def test_plain_refuses_what_its_protocol_cannot_carry(args, tmp_path):
    result = run_netassist("files", *args, cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == ExitCode.USAGE and err.count("\n") == 1, err
    assert "--plain speaks the tutorial's protocol, which has no" in err
