"""``netassist files``: every expected failure is one line with the README's exit code, and
nothing that is not a regular file is ever read as one."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from netassist.errors import ExitCode
from netassist.transfer import protocol
from netassist.transfer.server import FileServer
from tests.cli.test_failures_integration import assert_one_line_failure
from tests.conftest import run_netassist
from tests.transfer import tmpfs
from tests.transfer.peers import HostileServer

pytestmark = pytest.mark.integration


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    (root / "a.txt").write_text("from the server\n")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    return root


@pytest.fixture
def address(shared):
    server = FileServer(str(shared), "127.0.0.1", 0, allow_upload=True)
    threading.Thread(target=server.serve, daemon=True).start()
    yield server.address
    server.stop()


def ls_reply(entries):
    def reply(body):
        return protocol.encode(
            protocol.FrameType.REPLY,
            {"path": body["path"], "type": "directory", "entries": entries},
        )

    return reply


ENTRY = {"name": "x", "type": "file", "size": 1, "mtime_ns": 0}


@pytest.mark.parametrize(
    "entry",
    [
        {**ENTRY, "size": "big"},
        {**ENTRY, "size": -1},
        {**ENTRY, "mtime_ns": "yesterday"},
        {**ENTRY, "mtime_ns": 1 << 63},
        {**ENTRY, "name": None},
        {**ENTRY, "type": "pipe"},
        "x",
    ],
)
def test_ls_of_a_lying_server(entry):
    hostile = HostileServer(ls_reply([ENTRY, entry]))
    result = run_netassist("files", "ls", f"127.0.0.1:{hostile.port}")
    assert_one_line_failure(result, ExitCode.NETWORK, "broke the protocol", "listing entry")


def test_each_mistake_is_one_line_with_its_code(address, tmp_path):
    existing = tmp_path / "existing.txt"
    existing.write_text("mine")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (["get", address, "a.txt", "-o", str(existing)], ExitCode.USAGE, "not a folder"),
        (["get", address, "a.txt", "-o", "/proc/nope"], ExitCode.FILE, "/proc/nope"),
        (["serve", str(tmp_path), "--max-clients", "-5"], ExitCode.USAGE, "--max-clients"),
        (["serve", str(tmp_path), "--max-clients", "0"], ExitCode.USAGE, "--max-clients"),
        (["ls", address, "--timeout", "-1"], ExitCode.USAGE, "--timeout"),
        (["ls", address, "--timeout", "inf"], ExitCode.USAGE, "--timeout"),
        (["serve", str(tmp_path), "--handshake-timeout", "1e300"], ExitCode.USAGE, "--handshake"),
        (["put", address, str(tmp_path / "nonexist.txt")], ExitCode.FILE, "nonexist.txt"),
        (["put", address, "/dev/zero"], ExitCode.USAGE, "/dev/zero is a character device"),
        (["put", address, str(fifo)], ExitCode.USAGE, f"{fifo} is a FIFO"),
    ]
    for args, code, needle in cases:
        result = run_netassist("files", *args, timeout=20)
        assert_one_line_failure(result, code, needle)
    assert existing.read_text() == "mine"


def test_a_fifo_inside_a_folder_is_skipped_by_name_and_never_opened(address, shared, tmp_path):
    # As rsync does ("skipping non-regular file"): the rest of the folder goes, the FIFO is
    # named and the exit code says something was left behind. Opening it would hang.
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "a.txt").write_text("first")
    os.mkfifo(folder / "b-fifo")
    (folder / "c.txt").write_text("last")
    result = run_netassist("files", "put", address, str(folder), timeout=20)
    err = result.stderr.decode()
    assert result.returncode == ExitCode.FILE, err
    assert "skipped up/b-fifo: not a regular file" in err and "Traceback" not in err
    assert sorted(p.name for p in (shared / "up").iterdir()) == ["a.txt", "c.txt"]
    assert (shared / "up" / "c.txt").read_text() == "last"


def test_a_silent_server_times_out_with_the_flag_named():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        for action in (["ls"], ["get", "x", "-o", "/tmp"], ["put", "/etc/hostname"]):
            started = time.monotonic()
            result = run_netassist(
                "files", action[0], f"127.0.0.1:{port}", *action[1:], "--timeout", "0.5"
            )
            assert time.monotonic() - started < 10
            assert_one_line_failure(result, ExitCode.TIMEOUT, "0.5 s", "--timeout")


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs.small_disk(tmp_path / "disk") as disk:
        yield disk


def test_a_full_disk_during_get_is_a_file_error_and_keeps_the_part(address, small_disk):
    result = run_netassist("files", "get", address, "big.bin", "-o", str(small_disk))
    err = assert_one_line_failure(
        result, ExitCode.FILE, "no space left on device", "big.bin.part", "run again to resume"
    )
    assert "free some space" in err
    assert (small_disk / "big.bin.part").exists()
    assert not (small_disk / "big.bin").exists()
