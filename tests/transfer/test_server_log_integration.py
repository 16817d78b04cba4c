"""``netassist files serve`` says on stderr who connected, what went each way and what it
refused, one line each (``--quiet``: none); a full disk during an upload is told to the
uploader, and both sides say what became of the partial file."""

from __future__ import annotations

import os
import time

import pytest

from netassist.errors import ExitCode
from tests.conftest import run_netassist
from tests.transfer import tmpfs

pytestmark = pytest.mark.integration


def lines_until(server, needle: str, timeout: float = 10) -> list[str]:
    """The server's stderr lines up to the first holding ``needle``."""
    seen = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        line = server.expect_stderr(".", left).string
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"no line with {needle!r} in {seen!r}")


def test_one_line_per_connection_transfer_and_refusal(tmp_path, netassist):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.txt").write_bytes(b"a" * 1234)
    up = tmp_path / "up.bin"
    up.write_bytes(os.urandom(5000))
    server = netassist(
        "files", "serve", str(shared), "-b", "127.0.0.1:0", "--token", "s3cret", "--allow-upload"
    )
    address = f"127.0.0.1:{server.port()}"
    token = ("--token", "s3cret")
    assert run_netassist("files", "get", address, "a.txt", "-o", str(tmp_path / "o"), *token)
    lines = lines_until(server, "get a.txt")
    assert "connected" in lines[0] and "sent 1,234 bytes" in lines[-1]
    assert run_netassist("files", "put", address, str(up), "in", *token).returncode == 0
    assert "received 5,000 bytes" in lines_until(server, "put in/up.bin")[-1]
    run_netassist("files", "ls", address, "--token", "wrong")
    assert "refused: wrong or missing token" in lines_until(server, "refused")[-1]
    assert run_netassist("files", "ls", address, "nope.txt", *token).returncode == ExitCode.FILE
    line = lines_until(server, "refused")[-1]
    assert "ls nope.txt refused: no such file or folder" in line
    assert "(does not exist)" in line  # the reason is for the log only
    hostile = run_netassist("files", "ls", address, "x\x1b[2J", *token)
    assert hostile.returncode == ExitCode.FILE
    line = lines_until(server, "refused")[-1]
    assert "ls x\\x1b[2J refused" in line and "\x1b" not in line  # shown escaped


def test_a_listing_says_in_the_log_what_it_left_out(tmp_path, netassist):
    # The client was told how many entries were left out and why; the one serving saw only
    # "get docs: a folder of 1 files and 0 folders".
    docs = tmp_path / "shared" / "docs"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text("a")
    (docs / ".env").write_text("secret")
    with open(os.path.join(os.fsencode(docs), "文件.txt".encode("gbk")), "wb") as handle:
        handle.write(b"gbk-named")
    server = netassist("files", "serve", str(tmp_path / "shared"), "-b", "127.0.0.1:0")
    address = f"127.0.0.1:{server.port()}"
    run_netassist("files", "get", address, "docs", "-o", str(tmp_path / "o"))
    line = lines_until(server, "get docs:")[-1]
    assert "streamed 1 files and 0 folders" in line  # a folder stream (protocol version 2)
    assert "; left out 1 hidden, 1 refused by name" in line
    assert "not UTF-8" in line


def test_quiet_says_nothing_per_transfer(tmp_path, netassist):
    (tmp_path / "a.txt").write_text("a")
    server = netassist("files", "serve", str(tmp_path), "-b", "127.0.0.1:0", "--quiet")
    address = f"127.0.0.1:{server.port()}"
    assert (
        run_netassist("files", "get", address, "a.txt", "-o", str(tmp_path / "o")).returncode == 0
    )
    run_netassist("files", "get", address, "nope", "-o", str(tmp_path / "o"))
    server.stop()
    assert server.finish()[2].strip() == ""


def test_a_full_disk_during_an_upload_is_told_and_the_part_removed(tmp_path, netassist):
    with tmpfs.small_disk(tmp_path / "disk") as disk:
        server = netassist("files", "serve", str(disk), "-b", "127.0.0.1:0", "--allow-upload")
        address = f"127.0.0.1:{server.port()}"
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(40 << 20))  # steps of 8 MiB: stopped after the first
        started = time.monotonic()
        result = run_netassist("files", "put", address, str(big))
        err = result.stderr.decode()
        assert result.returncode == ExitCode.ERROR, err
        assert err.count("\n") == 1
        assert "could not store big.bin: no space left on device" in err
        assert "the partial upload was removed" in err and "(no_space)" in err
        assert time.monotonic() - started < 10
        line = lines_until(server, "no space left")[-1]
        assert "WARNING" in line and "removed the partial upload" in line
        assert os.listdir(disk) == []
        (tmp_path / "small.txt").write_text("fits")
        ok = run_netassist("files", "put", address, str(tmp_path / "small.txt"))
        assert ok.returncode == 0, ok.stderr
        server.stop()
