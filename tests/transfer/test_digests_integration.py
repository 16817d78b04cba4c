"""Both digests end to end: verified downloads and uploads, resume, damage in flight, the
notice where blake3 is missing, and a folder of 10,000 files streamed (issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from netassist.errors import ExitCode
from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.client import Client, TransferError
from netassist.transfer.server import FileServer
from tests.conftest import NETASSIST, run_netassist
from tests.transfer.peers import DamagingRelay, HostileServer, files_frame, ls_dir

pytestmark = pytest.mark.integration
DIGESTS = ["blake3", "sha256"]


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    return root


@pytest.fixture
def server(shared):
    srv = FileServer(str(shared), "127.0.0.1", 0, allow_upload=True)
    threading.Thread(target=srv.serve, daemon=True).start()
    yield srv
    srv.stop()


def address(srv: FileServer) -> str:
    return srv.address


def digest_of(path, algorithm: str) -> str:
    return digests.of(algorithm, path.read_bytes())


@pytest.mark.parametrize("algorithm", DIGESTS)
def test_get_and_put_verified_and_named_in_json(server, shared, tmp_path, algorithm):
    (shared / "f.bin").write_bytes(os.urandom(9 << 20))  # hashed while sent: a trailer
    (shared / "dir").mkdir()
    (shared / "dir" / "s.txt").write_bytes(b"small\n")  # a stream of one small file
    out = tmp_path / "out"
    got = run_netassist(
        "files", "get", address(server), "f.bin", "dir", "-o", str(out), "--json",
        "--digest", algorithm,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    results = json.loads(got.stdout)
    assert len(results) == 2
    for result in results:
        assert result["algorithm"] == algorithm
        assert result["digest"] == digest_of(shared / result["remote"], algorithm)
        assert result["sha256"] == (result["digest"] if algorithm == "sha256" else None)
    label = {"blake3": "BLAKE3", "sha256": "SHA-256"}[algorithm]
    assert f"all verified ({label})" in run_netassist(
        "files", "get", address(server), "dir", "-o", str(tmp_path / "again"),
        "--digest", algorithm,
    ).stderr.decode()  # fmt: skip
    put = run_netassist(
        "files", "put", address(server), str(out / "f.bin"), "inbox", "--json",
        "--digest", algorithm,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)[0]["algorithm"] == algorithm
    assert (shared / "inbox" / "f.bin").read_bytes() == (shared / "f.bin").read_bytes()


@pytest.mark.parametrize("algorithm", DIGESTS)
def test_resume_checks_the_prefix_with_the_agreed_digest(server, shared, tmp_path, algorithm):
    data = os.urandom(3 << 20)
    (shared / "r.bin").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.bin.part").write_bytes(data[:700_000])
    with Client("127.0.0.1", server.sock.getsockname()[1], digest=algorithm) as client:
        assert client.agreed.digest == algorithm
        result = client.get("r.bin", str(out))[0]
        assert (result.resumed_from, result.received) == (700_000, len(data) - 700_000)
        assert result.digest == digests.of(algorithm, data)
        # A .part that is not a prefix of the file starts over, and still ends verified.
        (out / "r.bin.part").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:500_000])
        result = client.get("r.bin", str(out), force=True)[0]
        assert (result.resumed_from, result.received) == (0, len(data))
    assert (out / "r.bin").read_bytes() == data


@pytest.mark.parametrize("algorithm", DIGESTS)
@pytest.mark.parametrize("what", ["large file", "streamed folder"])
def test_a_byte_damaged_in_flight_is_caught(server, shared, tmp_path, algorithm, what):
    if what == "large file":
        (shared / "big.bin").write_bytes(os.urandom(9 << 20))
        remote = "big.bin"
    else:
        (shared / "box").mkdir()
        for i in range(20):
            (shared / "box" / f"{i:02}.txt").write_bytes(b"%d\n" % i * 3000)
        remote = "box"
    # Past the greeting and the announcement: a byte of some file's data.
    relay = DamagingRelay(server.sock.getsockname()[1], position=50_000)
    with (
        Client("127.0.0.1", relay.port, digest=algorithm) as client,
        pytest.raises(TransferError) as caught,
    ):
        client.get(remote, str(tmp_path / "out"))
    assert relay.damaged
    assert caught.value.exit_code == ExitCode.BAD_DATA
    assert "damaged" in str(caught.value)
    (part,) = (tmp_path / "out").rglob("*.part")  # kept, and named in the message
    assert str(part) in str(caught.value)
    assert not part.with_suffix("").exists()  # the damaged file never takes its name


def test_without_the_blake3_wheel_sha256_with_a_one_line_notice(server, shared, tmp_path):
    (shared / "a.txt").write_text("a")
    hide = "import sys; sys.modules['blake3'] = None; from netassist.cli import main; "
    command = [sys.executable, "-c", hide + "sys.exit(main(sys.argv[1:]))"]
    out = str(tmp_path / "out")
    got = subprocess.run(
        [*command, "files", "get", address(server), "a.txt", "-o", out, "--json"],
        capture_output=True,
        timeout=30,
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)[0]["algorithm"] == "sha256"
    notice = [line for line in got.stderr.decode().splitlines() if "blake3" in line]
    assert len(notice) == 1 and "SHA-256" in notice[0]
    asked = subprocess.run(
        [*command, "files", "ls", address(server), "--digest", "blake3"],
        capture_output=True,
        timeout=30,
    )
    assert asked.returncode == 2 and "not installed" in asked.stderr.decode()
    assert asked.stderr.decode().count("\n") == 1


def test_a_server_without_the_blake3_wheel_agrees_on_sha256(shared, tmp_path, spawn):
    # Today's client (with blake3) prefers BLAKE3; the server offers SHA-256 alone, says so
    # once, and the files arrive verified by SHA-256.
    (shared / "f.bin").write_bytes(os.urandom(9 << 20))
    (shared / "box").mkdir()
    (shared / "box" / "s.txt").write_bytes(b"small\n")
    hide = "import sys; sys.modules['blake3'] = None; from netassist.cli import main; "
    server = spawn(
        [sys.executable, "-c", hide + "sys.exit(main(sys.argv[1:]))", "files", "serve",
         str(shared), "--bind", "127.0.0.1:0"]
    )  # fmt: skip
    port = server.port()
    out = tmp_path / "out"
    got = run_netassist(
        "files", "get", f"127.0.0.1:{port}", "f.bin", "box", "-o", str(out), "--json"
    )
    assert got.returncode == 0, got.stderr
    assert "blake3" not in got.stderr.decode()  # the client has it: no notice there
    for result in json.loads(got.stdout):
        assert result["algorithm"] == "sha256"
        assert result["digest"] == digest_of(shared / result["remote"], "sha256")
    server.expect_stderr(r"connected \(version 2, sha256\)")
    server.stop()
    notices = [line for line in server.stderr_seen if "blake3" in line]
    while not server.stderr_lines.empty():
        line = server.stderr_lines.get()
        notices += [line] if "blake3" in line else []
    assert len(notices) == 1 and "SHA-256" in notices[0], notices


def test_ten_thousand_files_with_chinese_names_arrive_whole_and_verified(tmp_path, netassist):
    shared = tmp_path / "shared"
    expected = {}
    for i in range(10_000):
        folder = shared / "资料" / f"目录{i % 40:02}"
        if i < 40:
            folder.mkdir(parents=True)
        name = folder / f"文件 {i} 笔记.txt"
        content = f"第{i}个\n".encode() * (i % 7)
        name.write_bytes(content)
        expected[str(name.relative_to(shared))] = content
    (shared / "资料" / "空的").mkdir()
    server = netassist("files", "serve", str(shared), "--bind", "127.0.0.1:0", "--quiet")
    out = tmp_path / "out"
    got = subprocess.run(
        [*NETASSIST, "files", "get", f"127.0.0.1:{server.port()}", "资料", "-o", str(out)],
        capture_output=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert "10000 file(s)" in got.stderr.decode() and "all verified (BLAKE3)" in got.stderr.decode()
    arrived = {}
    for where, _, files in os.walk(out):
        for name in files:
            path = os.path.join(where, name)
            with open(path, "rb") as handle:
                arrived[os.path.relpath(path, out)] = handle.read()
    assert arrived == expected  # every name, every byte, no .part left
    assert (out / "资料" / "空的").is_dir()


def test_a_stream_cut_short_resumes_file_by_file(server, shared, tmp_path):
    (shared / "box").mkdir()
    (shared / "box" / "a.txt").write_bytes(b"a" * 100)
    big = os.urandom(3 << 20)
    (shared / "box" / "big.bin").write_bytes(big)

    def cut(body: dict) -> bytes:  # the small file, then half the large one, then gone
        if body["op"] == "ls":
            return ls_dir(body)
        header = {"path": "big.bin", "size": len(big), "offset": 0, "length": len(big)}
        header |= {"digest": None, "mtime_ns": 0, "mode": 0o644}
        announce = protocol.encode(protocol.FrameType.FILE, header)
        return files_frame({"a.txt": b"a" * 100}) + announce + big[: len(big) // 2]

    out = tmp_path / "out"
    hostile = HostileServer(cut, hang_up=lambda body: body["op"] == "get")
    with (
        Client("127.0.0.1", hostile.port, timeout=5) as client,
        pytest.raises(TransferError, match="run again to resume"),
    ):
        client.get("box", str(out))
    assert (out / "box" / "a.txt").read_bytes() == b"a" * 100
    held = (out / "box" / "big.bin.part").stat().st_size
    assert 0 < held <= len(big) // 2
    with Client("127.0.0.1", server.sock.getsockname()[1]) as client:
        results = {r.remote: r for r in client.get("box", str(out))}
    assert results["box/a.txt"].skipped  # there already: file by file now
    assert results["box/big.bin"].resumed_from == held
    assert (out / "box" / "big.bin").read_bytes() == big


def test_a_stream_of_long_names_splits_its_frames(server, shared, tmp_path):
    # 400 files whose paths take 3,600 bytes: their entries alone are more than one frame
    # may hold, so the server must send them in several FILES frames.
    deep = shared / "deep"
    folder = deep.joinpath(*(f"{level:02}" + "长" * 80 for level in range(15)))
    folder.mkdir(parents=True)
    for i in range(400):
        (folder / f"{i}.txt").write_bytes(b"%d" % i)
    out = tmp_path / "out"
    with Client("127.0.0.1", server.sock.getsockname()[1]) as client:
        results = client.get("deep", str(out))
    assert len(results) == 400 and not any(r.skipped for r in results)
    copy = out / folder.relative_to(shared)
    assert sorted(os.listdir(copy)) == sorted(f"{i}.txt" for i in range(400))
    assert (copy / "399.txt").read_bytes() == b"399"
    # Again into the same folder: its listing is over a frame's limit too, so the server
    # refuses it (too_large, not a dead session) and the client streams, keeping what is there.
    (copy / "7.txt").unlink()
    with Client("127.0.0.1", server.sock.getsockname()[1]) as client:
        again = client.get("deep", str(out))
    assert sum(r.skipped for r in again) == 399
    assert [r.remote.rsplit("/", 1)[1] for r in again if not r.skipped] == ["7.txt"]
    assert (copy / "7.txt").read_bytes() == b"7"


def test_a_folder_deeper_than_the_recursion_limit_arrives(server, shared, tmp_path):
    # 1,100 folders deep (a remote name of 2,210 characters): the server's walks once
    # recursed per level, and past Python's limit the session died mid-transfer.
    depth = 1_100
    deep = shared / "deep"
    deep.mkdir()
    bottom = str(deep)
    for _ in range(depth):  # not makedirs, which recurses per level
        bottom += "/a"
        os.mkdir(bottom)
    with open(bottom + "/f.txt", "wb") as handle:
        handle.write(b"at the bottom")
    (deep / "top.txt").write_bytes(b"at the top")
    out = tmp_path / "out"
    try:
        port = server.sock.getsockname()[1]
        with Client("127.0.0.1", port) as client:  # nothing there yet: a stream
            streamed = client.get("deep", str(out))
        assert sorted(r.remote for r in streamed) == [
            "deep/" + "a/" * depth + "f.txt",
            "deep/top.txt",
        ]
        with open(str(out) + bottom.removeprefix(str(shared)) + "/f.txt", "rb") as handle:
            assert handle.read() == b"at the bottom"
        (out / "deep" / "top.txt").unlink()
        with Client("127.0.0.1", port) as client:  # something there: the listing
            listed = client.get("deep", str(out))
        assert [r.remote for r in listed if not r.skipped] == ["deep/top.txt"]
        assert (out / "deep" / "top.txt").read_bytes() == b"at the top"
    finally:  # shutil.rmtree (and pytest's clean-up) recurse per level too
        subprocess.run(["rm", "-rf", str(shared / "deep"), str(out)], check=True)
