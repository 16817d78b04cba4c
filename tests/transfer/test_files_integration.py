"""``netassist files`` end to end: real sockets, real processes, hostile peers."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest

from netassist.errors import ExitCode
from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.client import Client, TransferError
from netassist.transfer.server import FileServer
from tests.conftest import run_netassist
from tests.test_paths import HOSTILE
from tests.transfer.peers import (
    HostileServer,
    file_frame,
    files_frame,
    folder_reply,
    ls_dir,
    ls_file,
    self_signed,
)

pytestmark = pytest.mark.integration
CANARY = b"CANARY-files-must-never-be-served"


def sha(path, algorithm: str = "sha256") -> str:
    digest = digests.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    (tmp_path / "canary.txt").write_bytes(CANARY)
    return root


@pytest.fixture
def server(shared):
    # Every client of these tests comes from 127.0.0.1: one address may use every slot.
    srv = FileServer(str(shared), "127.0.0.1", 0, max_clients=64, max_per_address=64)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    yield srv
    srv.stop()


def port_of(srv: FileServer) -> int:
    return int(srv.address.rsplit(":", 1)[1])


def test_one_gib_round_trip_sha256(shared, server, tmp_path):
    big = shared / "big.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as handle:
        for i in range(1024):
            handle.write(block[i:] + block[:i])
    out = tmp_path / "out"
    result = run_netassist(
        "files",
        "get",
        f"127.0.0.1:{port_of(server)}",
        "big.bin",
        "-o",
        str(out),
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["size"] == 1 << 30
    assert sha(out / "big.bin") == sha(big)
    assert os.stat(out / "big.bin").st_mtime_ns == os.stat(big).st_mtime_ns
    assert not (out / "big.bin.part").exists()


def test_folder_tree_of_a_thousand_files_with_awkward_names(shared, server, tmp_path):
    names = []
    for i in range(1000):
        folder = shared / "tree" / f"目录 {i % 10}" / f"sub #{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        name = folder / f"文件 {i} #x.txt"
        name.write_bytes(f"content {i}\n".encode() * (i % 5))
        names.append(name)
    (shared / "tree" / "空的 #folder" / "empty too").mkdir(parents=True)
    out = tmp_path / "out"
    with Client("127.0.0.1", port_of(server)) as client:
        results = client.get("tree", str(out))
    assert len(results) == 1000
    for name in names:
        copy = out / "tree" / name.relative_to(shared / "tree")
        assert copy.read_bytes() == name.read_bytes()
    assert sum(1 for r in results if r.size == 0) == 200  # empty files arrive too
    assert (out / "tree" / "空的 #folder" / "empty too").is_dir()  # and empty folders


def test_a_second_download_uses_the_cached_digests_and_verifies(shared, server, tmp_path):
    # Small files (one send with the announcement), a corked sendfile and one hashed on a
    # second thread the first time; the second time every digest comes from the cache.
    sizes = {"small.bin": 4096, "two.bin": 2 << 20, "nine.bin": 9 << 20, "empty.bin": 0}
    for name, size in sizes.items():
        (shared / "set" / name).parent.mkdir(exist_ok=True)
        (shared / "set" / name).write_bytes(os.urandom(size))
    for out in (tmp_path / "first", tmp_path / "second"):
        with Client("127.0.0.1", port_of(server)) as client:
            results = client.get("set", str(out))
        assert sorted(r.remote for r in results) == sorted(f"set/{n}" for n in sizes)
        for name in sizes:
            assert sha(out / "set" / name) == sha(shared / "set" / name)
            assert not (out / "set" / f"{name}.part").exists()
        for name in sizes:  # after the first round, every digest is known to the server
            real = os.path.realpath(shared / "set" / name)
            known = server.digests.known("blake3", real, os.stat(real))
            assert known == sha(shared / "set" / name, "blake3")


def test_existing_files_are_kept_unless_forced(shared, server, tmp_path):
    (shared / "a.txt").write_text("server")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("mine")
    with Client("127.0.0.1", port_of(server)) as client:
        assert client.get("a.txt", str(out))[0].skipped
        assert (out / "a.txt").read_text() == "mine"
        client.get("a.txt", str(out), force=True)
    assert (out / "a.txt").read_text() == "server"


def test_folder_get_into_an_existing_folder_resumes_and_keeps_what_is_there(
    shared, server, tmp_path
):
    # The folder exists already, so every name in it is looked at: a .part is resumed, a
    # file of the user's is kept, the rest arrives; times come from the server's files.
    folder = shared / "set"
    folder.mkdir()
    data = {name: os.urandom(size) for name, size in (("a", 3 << 20), ("b", 10), ("c", 5000))}
    for name, content in data.items():
        (folder / name).write_bytes(content)
        os.utime(folder / name, ns=(1_500_000_000_123_456_789,) * 2)
    out = tmp_path / "out"
    (out / "set").mkdir(parents=True)
    (out / "set" / "a.part").write_bytes(data["a"][:700_000])
    (out / "set" / "b").write_text("mine")
    with Client("127.0.0.1", port_of(server)) as client:
        results = {r.remote: r for r in client.get("set", str(out))}
    assert results["set/a"].resumed_from == 700_000
    assert results["set/a"].received == (3 << 20) - 700_000
    assert results["set/b"].skipped and (out / "set" / "b").read_text() == "mine"
    for name in ("a", "c"):
        assert (out / "set" / name).read_bytes() == data[name]
        assert os.stat(out / "set" / name).st_mtime_ns == 1_500_000_000_123_456_789
    assert sorted(os.listdir(out / "set")) == ["a", "b", "c"]


def test_a_part_file_that_is_a_link_is_never_written_through(shared, server, tmp_path):
    # Someone who can write into the target folder plants NAME.part as a link to a file of
    # the user's: the download must not truncate or fill that file.
    (shared / "a.txt").write_bytes(b"from the server\n" * 100)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt.part").symlink_to(victim)
    result = run_netassist("files", "get", f"127.0.0.1:{port_of(server)}", "a.txt", "-o", str(out))
    err = result.stderr.decode()
    # It said "too many levels of symbolic links" and exited 1 (other error).
    assert result.returncode == ExitCode.FILE, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "a.txt.part is a symbolic link" in err and "remove it and run again" in err
    assert victim.read_bytes() == b"precious"
    assert not (out / "a.txt").exists()


def test_resume_after_the_server_is_killed_halfway(shared, tmp_path, netassist):
    size = 200 << 20
    big = shared / "half.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as handle:
        for _ in range(size >> 20):
            handle.write(block)
    first = netassist("files", "serve", str(shared), "--bind", "127.0.0.1:0")
    port = first.port()
    out = tmp_path / "out"
    out.mkdir()
    client = netassist("files", "get", f"127.0.0.1:{port}", "half.bin", "-o", str(out))
    part = out / "half.bin.part"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not part.exists():
        time.sleep(0.001)
    # The slowest reader there is: stopped as soon as the data starts to arrive, so the
    # server can send no more than the socket buffers hold before it is killed.
    client.popen.send_signal(signal.SIGSTOP)
    try:
        first.popen.kill()
        first.popen.wait(10)
    finally:
        client.popen.send_signal(signal.SIGCONT)
    code, _, err = client.finish(60)
    held = part.stat().st_size
    assert code == 10, err
    assert err.strip().count("\n") == 0 and "run again to resume" in err
    assert 0 < held < size // 2
    second = netassist("files", "serve", str(shared), "--bind", "127.0.0.1:0")
    port = second.port()
    result = run_netassist(
        "files", "get", f"127.0.0.1:{port}", "half.bin", "-o", str(out), "--json", timeout=120
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)[0]
    assert info["resumed_from"] == held
    assert info["received"] == size - held
    assert sha(out / "half.bin") == sha(big)


def test_hostile_names_never_reach_the_canary(shared, server):
    (shared / "ok.txt").write_text("ok")
    with Client("127.0.0.1", port_of(server)) as client:
        for name in HOSTILE:
            with pytest.raises(TransferError) as info:
                if any("\ud800" <= char <= "\udfff" for char in name):
                    # Not UTF-8: only a JSON escape carries it, as a hostile client would.
                    body = json.dumps({"op": "get", "path": name}).encode()
                    header = protocol.HEADER.pack(
                        protocol.MAGIC, protocol.FrameType.REQUEST, 0, len(body)
                    )
                    client.sock.sendall(header + body)
                    client._frame()
                else:
                    client.request("get", name)
            assert "not_found" in str(info.value) or "bad_request" in str(info.value)
        assert client.request("get", "ok.txt").type is protocol.FrameType.FILE


def test_fifty_clients_at_once(shared, server, tmp_path):
    for i in range(5):
        (shared / f"f{i}.bin").write_bytes(os.urandom(200_000 + i))
    failures = []

    def fetch(n: int) -> None:
        try:
            with Client("127.0.0.1", port_of(server)) as client:
                for i in range(5):
                    result = client.get(f"f{i}.bin", str(tmp_path / f"c{n}"))[0]
                    assert result.digest == sha(shared / f"f{i}.bin", result.algorithm)
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []


def test_token_is_required_when_set(shared, tmp_path):
    srv = FileServer(str(shared), "127.0.0.1", 0, token="s3cret")
    threading.Thread(target=srv.serve, daemon=True).start()
    try:
        with pytest.raises(TransferError, match="auth"):
            Client("127.0.0.1", port_of(srv), token="wrong")
        with Client("127.0.0.1", port_of(srv), token="s3cret") as client:
            assert client.ls("") == []
    finally:
        srv.stop()


def _dangerous(name: str, folder: bool = False):
    """A server offering the dangerous ``name`` (a file, or a folder) inside a folder."""

    def reply(body: dict, version: int) -> bytes:
        if body["op"] == "ls":
            return ls_dir(body)
        if folder:
            return folder_reply(body, {}, [name])
        return folder_reply(body, {name: b"evil"})

    return reply


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        (
            lambda b, v: ls_file(b) if b["op"] == "ls" else file_frame("other.txt", b"x", None, v),
            "was asked for",
        ),
        (_dangerous("../evil.txt"), "dangerous name"),
        (_dangerous("/etc/evil"), "dangerous name"),
        (_dangerous("C:\\evil"), "dangerous name"),
        (_dangerous("../evil.txt", folder=True), "dangerous folder name"),
        (
            lambda b, v: (
                ls_file(b) if b["op"] == "ls" else file_frame(b["path"], b"data", "0" * 64, v)
            ),
            "damaged",
        ),
        (
            lambda b, v: (
                ls_file(b)
                if b["op"] == "ls"
                else file_frame(b["path"], b"data", None, v) + b"extra bytes"
            ),
            None,
        ),
    ],
)
def test_client_refuses_what_a_hostile_server_tries(tmp_path, reply, needle, version):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("mine")
    hostile = HostileServer(lambda body: reply(body, version), version=version)
    with Client("127.0.0.1", hostile.port, timeout=5) as client:
        assert client.agreed.version == version
        if needle is None:
            # extra bytes after the stream are not data: they are a broken next frame
            client.get("x.txt", str(out), force=True)
            with pytest.raises(TransferError, match="broke the protocol"):
                client.ls("")
            return
        with pytest.raises(TransferError, match=needle):
            client.get("x.txt" if "dangerous" not in needle else "folder", str(out), force=True)
    assert (out / "x.txt").read_text() == "mine"  # nothing of the user's touched
    assert not (tmp_path / "evil.txt").exists()
    written = {p.name for p in out.rglob("*")}
    assert written <= {"x.txt", "x.txt.part", "folder"}
    assert not any((out / "folder").rglob("*"))  # nothing came before the lie


@pytest.mark.parametrize("version", [2, 1])
def test_a_name_listed_twice_never_replaces_the_first_copy(tmp_path, version):
    # A server listing one name twice in a folder the client has just made: no existence
    # checks are made in a fresh folder, so the final rename itself must refuse.
    contents = iter([b"first", b"second"])

    def reply(body):
        if body["op"] == "ls":
            return ls_dir(body)
        if body.get("stream"):  # a FILES frame holds a name once: twice takes two frames
            first, second = files_frame({"dup.txt": b"first"}), files_frame({"dup.txt": b"second"})
            return first + second + folder_reply(body, {})
        if body["path"] == "folder":
            listing = {"files": [{"path": "dup.txt"}, {"path": "dup.txt"}], "folders": []}
            return protocol.encode(protocol.FrameType.REPLY, listing)
        return file_frame(body["path"], next(contents), None, version)

    hostile = HostileServer(reply, version=version)
    out = tmp_path / "out"
    with (
        Client("127.0.0.1", hostile.port, timeout=5) as client,
        pytest.raises(TransferError, match="exists"),
    ):
        client.get("folder", str(out))
    assert (out / "folder" / "dup.txt").read_bytes() == b"first"


@pytest.fixture
def upload_server(shared):
    srv = FileServer(str(shared), "127.0.0.1", 0, allow_upload=True)
    threading.Thread(target=srv.serve, daemon=True).start()
    yield srv
    srv.stop()


def test_put_files_and_folders_verified(upload_server, shared, tmp_path):
    local = tmp_path / "local"
    (local / "相册 #1").mkdir(parents=True)
    (local / "相册 #1" / "a.bin").write_bytes(os.urandom(300_000))
    (local / "相册 #1" / "empty").write_bytes(b"")
    single = tmp_path / "single.txt"
    single.write_text("one")
    result = run_netassist(
        "files",
        "put",
        f"127.0.0.1:{port_of(upload_server)}",
        str(local / "相册 #1"),
        str(single),
        "inbox",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3
    assert (shared / "inbox" / "相册 #1" / "a.bin").read_bytes() == (
        local / "相册 #1" / "a.bin"
    ).read_bytes()
    assert (shared / "inbox" / "相册 #1" / "empty").read_bytes() == b""
    assert (shared / "inbox" / "single.txt").read_text() == "one"
    address = f"127.0.0.1:{port_of(upload_server)}"
    again = run_netassist("files", "put", address, str(single), "inbox")  # the same bytes
    assert again.returncode == 0, again.stderr
    assert "0 file(s), 0 bytes sent" in again.stderr.decode()
    assert "1 already there" in again.stderr.decode()
    single.write_text("two")
    differs = run_netassist("files", "put", address, str(single), "inbox")
    assert differs.returncode == 11
    assert "exists on the server and differs (put --force replaces it)" in differs.stderr.decode()
    assert (shared / "inbox" / "single.txt").read_text() == "one"
    forced = run_netassist("files", "put", address, str(single), "inbox", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)[0]["received"] == 3
    assert (shared / "inbox" / "single.txt").read_text() == "two"
    folder = run_netassist("files", "put", address, str(single), "inbox/相册 #1", "--force")
    assert folder.returncode == 0  # into the folder, as a new file
    (tmp_path / "相册 #1").write_text("a file named like the folder")
    over_folder = run_netassist(
        "files", "put", address, str(tmp_path / "相册 #1"), "inbox", "--force"
    )
    assert (
        over_folder.returncode == 11 and "is a folder on the server" in over_folder.stderr.decode()
    )
    assert not [p for p in shared.rglob(".*netassist-part")]


def test_put_refused_by_a_read_only_server(server, tmp_path):
    local = tmp_path / "x.txt"
    local.write_text("x")
    with (
        Client("127.0.0.1", port_of(server)) as client,
        pytest.raises(TransferError, match="read-only"),
    ):
        client.put(str(local))


def test_put_resumes_a_partial_upload(upload_server, shared, tmp_path):
    data = os.urandom(2_000_000)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    (shared / ".big.bin.netassist-part").write_bytes(data[:700_000])
    with Client("127.0.0.1", port_of(upload_server)) as client:
        result = client.put(str(local))[0]
    assert result.resumed_from == 700_000
    assert result.received == 1_300_000
    assert (shared / "big.bin").read_bytes() == data


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "a/../../evil.txt", "%2e%2e/evil.txt", ".hidden", "C:evil", "sub/.git/x"],
)
def test_put_with_hostile_names_writes_nothing_outside(upload_server, shared, tmp_path, name):
    with (
        Client("127.0.0.1", port_of(upload_server)) as client,
        pytest.raises(TransferError, match="not_found"),
    ):
        client.request("put", name, size=1, **{client.agreed.digest_field: "0" * 64})
    assert not (tmp_path / "evil.txt").exists()
    assert not any(p.name == "evil.txt" for p in shared.rglob("*"))


def test_put_never_writes_through_a_link_planted_as_its_part_file(upload_server, shared, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (shared / ".up.txt.netassist-part").symlink_to(victim)
    local = tmp_path / "up.txt"
    local.write_bytes(b"uploaded\n" * 50)
    with (
        Client("127.0.0.1", port_of(upload_server)) as client,
        pytest.raises(TransferError, match="refused"),
    ):
        client.put(str(local))
    assert victim.read_bytes() == b"precious"
    assert not (shared / "up.txt").exists()


def test_tls_with_a_self_signed_certificate(shared, tmp_path, netassist):
    cert, key = self_signed(tmp_path)
    (shared / "secret.txt").write_text("over TLS")
    (shared / "box").mkdir()  # a folder stream over TLS: a FILES frame and a large file
    (shared / "box" / "a.txt").write_text("a")
    (shared / "box" / "big.bin").write_bytes(os.urandom(3 << 20))
    proc = netassist(
        "files",
        "serve",
        str(shared),
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    port = proc.port()
    out = tmp_path / "out"
    ok = run_netassist(
        "files", "get", f"127.0.0.1:{port}", "secret.txt", "box", "-o", str(out),
        "--tls-ca", str(cert),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (out / "secret.txt").read_text() == "over TLS"
    assert sha(out / "box" / "big.bin") == sha(shared / "box" / "big.bin")
    assert (out / "box" / "a.txt").read_text() == "a"
    untrusted = run_netassist(
        "files", "get", f"127.0.0.1:{port}", "secret.txt", "-o", str(out), "--tls", "--force"
    )
    assert untrusted.returncode == 8
    assert "not trusted" in untrusted.stderr.decode() and untrusted.stderr.decode().count("\n") == 1
    plain = run_netassist(
        "files", "get", f"127.0.0.1:{port}", "secret.txt", "-o", str(out), "--force"
    )
    assert plain.returncode != 0 and "Traceback" not in plain.stderr.decode()


def test_a_file_changed_while_it_is_sent_is_detected(shared, server):
    path = shared / "moving.bin"
    path.write_bytes(os.urandom(64 << 20))
    sock = socket.create_connection(("127.0.0.1", port_of(server)))
    reader = protocol.Reader()

    def frame() -> protocol.Frame:
        while (event := reader.next_event()) is None or isinstance(
            event, protocol.StreamData | protocol.StreamEnd
        ):
            if event is None:
                reader.feed(sock.recv(1 << 20))
        return event

    with sock:
        sock.sendall(protocol.encode(protocol.FrameType.HELLO, {"version": 1}))
        frame()
        sock.sendall(
            protocol.encode(
                protocol.FrameType.REQUEST, {"op": "get", "path": "moving.bin", "offset": 0}
            )
        )
        announced = frame()
        assert announced.type is protocol.FrameType.FILE and announced.body["sha256"] is None
        # The server cannot have sent 64 MiB into socket buffers yet: change the file now.
        reader.feed(sock.recv(1 << 20))
        with open(path, "r+b") as handle:
            handle.seek(50 << 20)
            handle.write(b"changed!")
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
        last = frame()
    assert last.type is protocol.FrameType.ERROR
    assert last.body["code"] == "changed"
