"""``netassist files`` where the POSIX-only names are missing (as on Windows): server and
client run as processes by tests/without_posix.py (``O_NOFOLLOW``, ``O_CLOEXEC``, ``pread``,
``preadv``, ``sendfile``, descriptor ``utime``, epoll... deleted), and every transfer still
arrives verified."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
WITHOUT_POSIX = [sys.executable, str(Path(__file__).parents[1] / "without_posix.py")]


def without_posix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WITHOUT_POSIX, *args], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared"
    (root / "folder" / "sub").mkdir(parents=True)
    (root / "small.txt").write_bytes(b"small\n" * 10)
    (root / "big.bin").write_bytes(os.urandom(9 << 20))  # hashed while sent, cold
    (root / "folder" / "sub" / "x.bin").write_bytes(os.urandom(70_000))
    os.utime(root / "small.txt", ns=(1_500_000_000_000_000_000,) * 2)
    return root


def test_get_and_put_without_posix_names(shared, tmp_path, spawn):
    server = spawn(
        [*WITHOUT_POSIX, "files", "serve", str(shared), "-b", "127.0.0.1:0", "--allow-upload"]
    )
    address = f"127.0.0.1:{server.port()}"
    out = tmp_path / "out"
    out.mkdir()
    big = (shared / "big.bin").read_bytes()
    (out / "big.bin.part").write_bytes(big[:3_000_000])  # a resume
    for round_ in ("cold", "warm"):  # warm: every digest cached, the data goes by "sendfile"
        target = out if round_ == "cold" else tmp_path / "warm"
        got = without_posix(
            "files", "get", address, "small.txt", "big.bin", "folder", "-o", str(target), "--json"
        )
        assert got.returncode == 0, got.stderr
        results = {r["remote"]: r for r in json.loads(got.stdout)}
        assert set(results) == {"small.txt", "big.bin", "folder/sub/x.bin"}
        for name in ("small.txt", "big.bin", "folder/sub/x.bin"):
            assert sha(target / name) == sha(shared / name)
        assert os.stat(target / "small.txt").st_mtime_ns == 1_500_000_000_000_000_000
        # The cold round resumes from the .part that was there.
        assert results["big.bin"]["resumed_from"] == (3_000_000 if round_ == "cold" else 0)
    assert not (out / "big.bin.part").exists()

    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(2_000_000))
    (shared / ".up.bin.netassist-part").write_bytes(upload.read_bytes()[:500_000])
    sent = without_posix("files", "put", address, str(upload), "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)[0]["resumed_from"] == 500_000
    assert sha(shared / "up.bin") == sha(upload)


def test_a_part_file_that_is_a_link_is_refused_without_o_nofollow(shared, tmp_path, spawn):
    server = spawn([*WITHOUT_POSIX, "files", "serve", str(shared), "-b", "127.0.0.1:0"])
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "small.txt.part").symlink_to(victim)
    got = without_posix("files", "get", f"127.0.0.1:{server.port()}", "small.txt", "-o", str(out))
    err = got.stderr.decode()
    assert got.returncode == 11 and err.count("\n") == 1 and "small.txt.part" in err, err
    assert "is a symbolic link" in err, err
    assert victim.read_bytes() == b"precious"
    assert not (out / "small.txt").exists()
