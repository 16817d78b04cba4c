"""Protocol versions 1 and 2 talk to each other, both ways (issue 19).

The version-1 side is the real previous netassist: its modules as they were on main before
version 2 (``git archive`` of that commit), run as a process next to today's."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import need, run_netassist

pytestmark = pytest.mark.integration
OLD = "9d62ff4c520968b6d2e3cad90abdf92bda6438fc"  # main before protocol version 2
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def old_src(tmp_path_factory) -> Path:
    """The version-1 netassist's ``src`` folder, made from git history."""
    archive = subprocess.run(
        [need("git"), "-C", str(ROOT), "archive", OLD, "src/netassist"], capture_output=True
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD[:9]} (version 1) is not in this clone: {archive.stderr!r}")
    where = tmp_path_factory.mktemp("v1")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(where, filter="data")
    return where / "src"


def old(old_src: Path, *args: str) -> list[str]:
    """The command line of the version-1 netassist."""
    return [sys.executable, "-c", _RUN_OLD, str(old_src), *args]


# The old modules first on the path, whatever the editable install says.
_RUN_OLD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from netassist.cli import main; \
sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def shared(tmp_path) -> Path:
    root = tmp_path / "shared"
    (root / "文件夹" / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "文件夹" / "a.txt").write_bytes(b"a" * 1000)
    (root / "文件夹" / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    (root / "文件夹" / "empty").mkdir()
    return root


def same_tree(left: Path, right: Path) -> None:
    names = sorted(str(p.relative_to(left)) for p in left.rglob("*"))
    assert names == sorted(str(p.relative_to(right)) for p in right.rglob("*"))
    for name in names:
        if (left / name).is_file():
            assert (left / name).read_bytes() == (right / name).read_bytes(), name


def test_todays_client_against_a_version_1_server(old_src, shared, tmp_path, spawn):
    server = spawn(old(old_src, "files", "serve", str(shared), "--bind", "127.0.0.1:0"))
    address = f"127.0.0.1:{server.port()}"
    out = tmp_path / "out"
    got = run_netassist("files", "get", address, "big.bin", "文件夹", "-o", str(out), "--json")
    assert got.returncode == 0, got.stderr
    for result in json.loads(got.stdout):
        assert result["algorithm"] == "sha256"
        assert result["sha256"] == result["digest"]
        assert result["digest"] == hashlib.sha256(Path(result["local"]).read_bytes()).hexdigest()
    assert (out / "big.bin").read_bytes() == (shared / "big.bin").read_bytes()
    same_tree(shared / "文件夹", out / "文件夹")
    # BLAKE3 insisted on: a version-1 server cannot, and the client says what to do.
    refused = run_netassist("files", "ls", address, "--digest", "blake3")
    assert refused.returncode == 2
    assert "version 1" in refused.stderr.decode() and "--digest sha256" in refused.stderr.decode()


def test_a_version_1_client_against_todays_server(old_src, shared, tmp_path, netassist):
    server = netassist("files", "serve", str(shared), "--bind", "127.0.0.1:0", "--allow-upload")
    address = f"127.0.0.1:{server.port()}"
    out = tmp_path / "out"
    command = old(old_src, "files", "get", address, "big.bin", "文件夹", "-o", str(out), "--json")
    got = subprocess.run(command, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert got.returncode == 0, got.stderr
    for result in json.loads(got.stdout):
        assert result["sha256"] == hashlib.sha256(Path(result["local"]).read_bytes()).hexdigest()
    assert (out / "big.bin").read_bytes() == (shared / "big.bin").read_bytes()
    same_tree(shared / "文件夹", out / "文件夹")
    # Its uploads too: verified by SHA-256 on the server.
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(200_000))
    command = old(old_src, "files", "put", address, str(upload), "inbox")
    put = subprocess.run(command, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert put.returncode == 0, put.stderr
    assert (shared / "inbox" / "up.bin").read_bytes() == upload.read_bytes()
    server.expect_stderr(r"connected \(version 1, sha256\)")
