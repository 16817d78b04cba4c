"""``netassist run`` as a process, driven by requests, http.client, curl and raw sockets."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from netassist.server import cores
from tests.conftest import need
from tests.server.apps import big_body
from tests.server.corpus import INVALID, VALID
from tests.server.raw import one_response_body, read_response

pytestmark = pytest.mark.integration


@pytest.fixture(params=["compiled", "pure"])
def server(request, netassist, tmp_path):
    """Start ``netassist run tests.server.apps:APP`` on a free port; return its port. Each
    test runs with each core (NETASSIST_PURE), and the listening line must name it."""
    core = request.param
    if core == "compiled" and cores.built() is None:
        pytest.skip("the compiled core is not built")

    def start(app: str = "app", *args: str) -> int:
        env = dict(os.environ, NETASSIST_TEST_CLOSE_DIR=str(tmp_path))
        env["NETASSIST_PURE"] = "1" if core == "pure" else "0"
        proc = netassist("run", f"tests.server.apps:{app}", "--bind", "127.0.0.1:0", *args, env=env)
        start.proc = proc
        line = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+) .* with the (\S+)")
        assert line.group(2) == {"compiled": "compiled", "pure": "pure-Python"}[core]
        return int(line.group(1))

    return start


def raw_exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_keep_alive_reuses_one_connection(server):
    port = server()
    with requests.Session() as session:
        ports = {
            session.get(f"http://127.0.0.1:{port}/echo").json()["remote_port"] for _ in range(20)
        }
    assert len(ports) == 1


def test_environ_is_complete_and_decoded_per_pep3333(server):
    port = server()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "GET", "/echo/%E4%B8%AD%20x?a=1&b=%2F", headers={"X-Custom": "v", "X_Spoof": "drop"}
    )
    seen = json.loads(conn.getresponse().read())
    assert seen["path_info"] == "/echo/中 x".encode().decode("latin-1")
    assert seen["query"] == "a=1&b=%2F"
    assert seen["raw_uri"] == "/echo/%E4%B8%AD%20x?a=1&b=%2F"
    assert seen["protocol"] == "HTTP/1.1"
    assert seen["remote_addr"] == "127.0.0.1"
    assert seen["scheme"] == "http"
    assert seen["multithread"] is False
    assert seen["input_terminated"] is True
    assert seen["http"]["HTTP_X_CUSTOM"] == "v"
    assert "HTTP_X_SPOOF" not in seen["http"]


def test_date_server_and_head_equals_get_minus_body(server):
    port = server()
    get = requests.get(f"http://127.0.0.1:{port}/hello")
    head = requests.head(f"http://127.0.0.1:{port}/hello")
    assert get.text == "Hello, world!"
    assert head.content == b""
    for name in ("Content-Type", "Content-Length", "Server"):
        assert head.headers[name] == get.headers[name]
    assert get.headers["Server"] == "netassist"
    assert get.headers["Date"].endswith(" GMT")


def test_chunked_response_without_content_length(server):
    port = server()
    reply = raw_exchange(port, b"GET /stream?3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n0\r\n\r\n"
    reply = raw_exchange(port, b"GET /stream?2 HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert body == b"piece 0\npiece 1\n"


def test_pipelined_requests_answered_in_order(server):
    port = server()
    requests_raw = (
        b"".join(f"GET /echo/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(10))
        + b"GET /echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(port, requests_raw)
    paths = [
        json.loads(part.split(b"\r\n\r\n", 1)[1])["path_info"] for part in _split_responses(reply)
    ]
    assert paths == [f"/echo/{i}" for i in range(10)] + ["/echo/last"]


@pytest.mark.parametrize("threads", ["1", "4"])
def test_request_pipelined_behind_a_response_the_client_is_slow_to_read(server, tmp_path, threads):
    # The first response fills the socket, so the server waits to write; the request behind
    # it must still be answered once the client reads, and after the first, not mixed in.
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(16 << 20))
    port = server("raw", "--threads", threads)  # unwrapped, so the file goes by sendfile
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            f"GET /file?{big} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        time.sleep(0.5)  # read nothing yet
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    first, second = _split_responses(b"".join(chunks))
    assert (
        hashlib.sha256(first.split(b"\r\n\r\n", 1)[1]).digest()
        == hashlib.sha256(big.read_bytes()).digest()
    )
    assert second.endswith(b"\r\n\r\nHello, world!")


def _split_responses(data: bytes) -> list[bytes]:
    """Cut a stream of Content-Length responses apart (interim 100 responses dropped)."""
    responses = []
    while data:
        if data.startswith(b"HTTP/1.1 100 "):
            data = data[data.index(b"\r\n\r\n") + 4 :]
            continue
        head_end = data.index(b"\r\n\r\n") + 4
        length = int(
            next(
                line.split(b":")[1]
                for line in data[:head_end].split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        responses.append(data[: head_end + length])
        data = data[head_end + length :]
    return responses


# OPTIONS * has no PATH_INFO the validator accepts, and HEAD has no JSON body to read back.
@pytest.mark.parametrize(
    "case", [c for c in VALID if c.name not in ("OPTIONS *", "HEAD")], ids=lambda c: c.name
)
def test_corpus_valid_over_a_real_socket(server, case):
    port = server()
    reply = raw_exchange(
        port, case.raw + b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answers = [json.loads(r.split(b"\r\n\r\n", 1)[1]) for r in _split_responses(reply)]
    closes = case.requests[-1].version == "1.0"  # HTTP/1.0 without keep-alive ends the connection
    assert len(answers) == len(case.requests) + (0 if closes else 1)
    for seen, expected in zip(answers, case.requests, strict=False):
        assert seen["method"] == expected.method
        assert seen["raw_uri"] == expected.target.decode("latin-1")
        assert seen["protocol"] == f"HTTP/{expected.version}"
        assert seen["body_sha256"] == hashlib.sha256(expected.body).hexdigest()
        for name, value in expected.headers:
            key = name.decode().upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "CONTENT_TYPE", "TRANSFER_ENCODING"):
                continue
            assert value.decode("latin-1") in seen["http"]["HTTP_" + key]


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.name)
def test_corpus_invalid_over_a_real_socket(server, case):
    port = server()
    reply = raw_exchange(port, case.raw)
    assert reply.startswith(b"HTTP/1.1 %d " % case.status), reply[:80]
    assert b"Connection: close" in reply.split(b"\r\n\r\n", 1)[0]
    # and the server is still fine for everyone else
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).text == "Hello, world!"


def test_chunked_upload_50_mib_sha256(server):
    port = server()
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()

    def body():
        for _ in range(50):
            digest.update(block)
            yield block

    reply = requests.post(f"http://127.0.0.1:{port}/read", data=body(), timeout=120)
    assert reply.status_code == 200
    assert reply.text == digest.hexdigest()


def test_content_length_upload_read_by_lines_and_blocks(server):
    port = server()
    data = b"first line\n" + os.urandom(300_000)
    reply = requests.post(f"http://127.0.0.1:{port}/read", data=data, timeout=30)
    assert reply.text == hashlib.sha256(data).hexdigest()


def test_file_wrapper_one_gib_download_sha256(server, tmp_path):
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for i in range(1024):
            piece = block[i:] + block[:i]  # every MiB different, so order matters
            handle.write(piece)
            digest.update(piece)
    port = server("raw")
    received = hashlib.sha256()
    size = 0
    with requests.get(f"http://127.0.0.1:{port}/file?{path}", stream=True, timeout=120) as reply:
        assert reply.headers["Content-Length"] == str(1 << 30)
        for chunk in reply.iter_content(1 << 20):
            received.update(chunk)
            size += len(chunk)
    assert size == 1 << 30
    assert received.hexdigest() == digest.hexdigest()


def test_large_file_response_leaves_the_connection_uncorked(server, tmp_path):
    # Files of 1 MiB or more go out with TCP_CORK; a cork left on would hold the next small
    # response for the kernel's 200 ms cork timeout.
    path = tmp_path / "odd.bin"
    data = os.urandom((1 << 20) + 12_345)  # a partial last segment
    path.write_bytes(data)
    port = server("raw")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(f"GET /file?{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert reader.readline().startswith(b"HTTP/1.1 200")
        length = None
        while (line := reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert length == len(data)
        assert reader.read(length) == data
        started = time.monotonic()
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.readline().startswith(b"HTTP/1.1 200")
        while reader.readline() != b"\r\n":
            pass
        assert reader.read(13) == b"Hello, world!"
        assert time.monotonic() - started < 0.1


def test_100_continue_with_curl(server, tmp_path):
    curl = need("curl")
    port = server()
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(200_000))
    result = subprocess.run(
        [
            curl,
            "-sv",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{payload}",
            f"http://127.0.0.1:{port}/read",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert b"HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout.decode() == hashlib.sha256(payload.read_bytes()).hexdigest()


def test_100_continue_not_sent_when_app_does_not_read(server):
    port = server()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"PUT /hello HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert b"100 Continue" not in reply


def test_app_exception_gives_500_and_worker_keeps_serving(server):
    port = server()
    reply = requests.get(f"http://127.0.0.1:{port}/fail", timeout=10)
    assert reply.status_code == 500
    assert "boom" not in reply.text and "Traceback" not in reply.text
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).status_code == 200
    server.proc.expect_stderr("RuntimeError: boom")


def test_close_is_always_called(server, tmp_path):
    port = server()
    assert requests.get(f"http://127.0.0.1:{port}/tracked?ok", timeout=10).text == "first second"
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"http://127.0.0.1:{port}/tracked?failing", timeout=10).content  # noqa: B018
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (tmp_path / "failing").exists():
        time.sleep(0.05)
    assert (tmp_path / "ok").read_text() == "closed"
    assert (tmp_path / "failing").read_text() == "closed"


def test_slow_head_times_out_without_hurting_others(server):
    port = server("app", "--header-timeout", "1")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).status_code == 200
    started = time.monotonic()
    reply = slow.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5
    slow.close()


def test_idle_keep_alive_connection_is_closed(server):
    port = server("app", "--keep-alive", "1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert 0.5 < time.monotonic() - started < 5


def test_body_over_limit_gets_413(server):
    port = server("app", "--max-body", "1000")
    reply = requests.post(f"http://127.0.0.1:{port}/echo", data=b"x" * 2000, timeout=10)
    assert reply.status_code == 413


def test_unix_socket_bind(netassist, tmp_path):
    path = tmp_path / "app.sock"
    proc = netassist("run", "tests.server.apps:app", "--bind", f"unix:{path}")
    proc.expect_stderr("listening on unix:")
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(str(path))
    conn.request("GET", "/hello")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.close()
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    assert not path.exists()  # the socket file goes with the server


def test_unix_socket_file_bound_by_another_is_left_alone(netassist, tmp_path):
    path = tmp_path / "app.sock"
    proc = netassist("run", "tests.server.apps:app", "--bind", f"unix:{path}")
    proc.expect_stderr("listening on unix:")
    path.unlink()
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))  # someone else's socket at the same path now
        proc.popen.terminate()
        assert proc.finish()[0] == 0
        assert path.exists()


def _send_hold(port: int, rendezvous) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /hold?{rendezvous.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def test_threads_serve_apps_that_block_concurrently(server, rendezvous):
    # Four apps inside at once, each waiting for the test: with fewer threads serving side
    # by side the fourth never arrives (and accept times out).
    port = server("app", "--threads", "4")
    socks = [_send_hold(port, rendezvous) for _ in range(4)]
    try:
        names = {rendezvous.arrived() for _ in range(4)}
        assert len(names) == 4
        rendezvous.release()
        assert [one_response_body(sock) for sock in socks] == [b"released"] * 4
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(f"http://127.0.0.1:{port}/echo", timeout=10).json()["multithread"] is True


def test_threads_answer_many_quick_requests_on_four_connections(server):
    """Four connections with a request in flight each, 1,000 answers. (How the threads take
    turns meanwhile is counted in test_turns.py with a fake poller: a count of thread changes
    here would depend on how loaded the machine is.)"""
    port = server("app", "--threads", "4")
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    names = []
    try:
        for _ in range(250):
            for sock in socks:  # four requests in flight at once, one per connection
                sock.sendall(b"GET /thread HTTP/1.1\r\nHost: x\r\n\r\n")
            names += [one_response_body(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert len(names) == 1000
    assert all(name.startswith(b"netassist-worker") or name == b"MainThread" for name in names)


def test_threads_answer_quick_requests_while_one_app_blocks(server, rendezvous):
    port = server("app", "--threads", "4")
    with _send_hold(port, rendezvous) as held:
        rendezvous.arrived()  # the app now blocks the thread that had the turn
        with socket.create_connection(("127.0.0.1", port), timeout=10) as quick:
            for _ in range(20):  # queued behind the held app, these would time out
                assert hello_on(quick).startswith(b"HTTP/1.1 200 OK\r\n")
        rendezvous.release()
        assert one_response_body(held) == b"released"


def test_threads_serve_others_while_a_100_continue_body_is_slow(server):
    """An app reading a 100-continue body waits for the client inside the app call: the
    turn must pass on then too, or every other connection waits for that client."""
    port = server("app", "--threads", "4")
    body = b"first line\n" + b"x" * 1000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as uploader:
        uploader.sendall(
            b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert uploader.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as quick:
            # The body is sent only after these: answered by a turn that never passed on,
            # they would wait for it, and time out.
            for _ in range(20):
                assert hello_on(quick).startswith(b"HTTP/1.1 200 OK\r\n")
        uploader.sendall(body)
        assert one_response_body(uploader) == hashlib.sha256(body).hexdigest().encode()


def test_sigterm_stops_gracefully(server):
    port = server()
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).ok
    server.proc.popen.terminate()
    code, _, err = server.proc.finish()
    assert code == 0
    assert "stopped" in err


@pytest.mark.parametrize("threads", ["1", "4"])
def test_sigterm_lets_a_response_in_flight_finish_and_closes_idle_connections(
    server, tmp_path, threads
):
    # Before, the loop stopped serving at SIGTERM: a download in progress stalled until
    # --send-timeout and was then cut short.
    path = tmp_path / "big.bin"
    data = os.urandom(32 << 20)
    path.write_bytes(data)
    port = server("raw", "--threads", threads, "--send-timeout", "5")
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert hello_on(idle).startswith(b"HTTP/1.1 200 OK")  # now an idle keep-alive connection
    loader = socket.socket()
    loader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # keep most of it unsent
    loader.settimeout(10)
    loader.connect(("127.0.0.1", port))
    with idle, loader:
        reader = loader.makefile("rb")
        loader.sendall(f"GET /file?{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert reader.readline().startswith(b"HTTP/1.1 200")
        while reader.readline() != b"\r\n":
            pass
        received = hashlib.sha256(reader.read(1 << 20))
        server.proc.popen.terminate()
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed at once, not after the download
        assert time.monotonic() - started < 2
        received.update(reader.read(len(data) - (1 << 20)))
        assert received.digest() == hashlib.sha256(data).digest()
        assert reader.read(1) == b""  # and then closed
        reader.close()
    code, _, err = server.proc.finish()
    assert code == 0
    assert "stopped" in err


@pytest.mark.parametrize("threads", ["1", "4"])
def test_after_sigterm_a_new_client_is_refused_while_requests_finish(server, rendezvous, threads):
    # Before, the listening sockets stayed open until the worker returned: a client that
    # connected meanwhile was taken into the backlog and left hanging (with one thread some
    # were even served).
    port = server("app", "--threads", threads)
    with _send_hold(port, rendezvous) as held:
        rendezvous.arrived()  # a request in flight keeps the server winding down
        server.proc.popen.terminate()
        refused = False
        for _ in range(500):  # until the signal is handled (bounded: 10 s)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
            except (ConnectionRefusedError, ConnectionResetError):  # told at once, not left
                refused = True
                break
            time.sleep(0.02)
        assert refused  # while the held request still runs
        rendezvous.release()
        assert one_response_body(held) == b"released"
    code, _, err = server.proc.finish()
    assert code == 0
    assert "stopped" in err


def test_absolute_form_target_names_the_host(server):
    port = server()
    reply = raw_exchange(
        port,
        b"GET http://other.test:8080/echo?q HTTP/1.1\r\nHost: example.com\r\n"
        b"Connection: close\r\n\r\n",
    )
    seen = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert seen["http"]["HTTP_HOST"] == "other.test:8080"
    assert (seen["server_name"], seen["server_port"]) == ("other.test", "8080")
    assert (seen["path_info"], seen["query"]) == ("/echo", "q")
    reply = raw_exchange(port, b"GET https://[::1]/echo HTTP/1.0\r\n\r\n")
    seen = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert seen["http"]["HTTP_HOST"] == "[::1]"
    assert (seen["server_name"], seen["server_port"]) == ("[::1]", "443")


def test_write_callable_sends_at_once_then_the_iterable(server):
    port = server()
    reply = raw_exchange(port, b"GET /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    assert body == b"8\r\nwritten \r\n7\r\ntwice, \r\nd\r\nthen returned\r\n0\r\n\r\n"


def test_write_callable_refuses_what_is_not_bytes(server):
    # Half a response is out when the app fails: the connection is closed, never given a
    # second head, and the worker serves on.
    port = server("raw")
    reply = raw_exchange(port, b"GET /write?not-bytes HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert reply.endswith(b"8\r\nwritten \r\n")
    server.proc.expect_stderr("TypeError: write\\(\\) takes bytes")
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).text == "Hello, world!"


def test_script_name_mounts_the_app(server):
    port = server("app", "--script-name", "/mount")
    inside = requests.get(f"http://127.0.0.1:{port}/mount/echo/x?y=1", timeout=10).json()
    assert (inside["script_name"], inside["path_info"], inside["query"]) == (
        "/mount",
        "/echo/x",
        "y=1",
    )
    root = requests.get(f"http://127.0.0.1:{port}/mount", timeout=10).json()
    assert (root["script_name"], root["path_info"]) == ("/mount", "")
    # A path outside the mount point, or only sharing its first letters, is not inside it.
    for path in ("/other", "/mountain"):
        outside = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10).json()
        assert (outside["script_name"], outside["path_info"]) == ("", path)


def hello_on(sock: socket.socket) -> bytes:
    """One keep-alive request for /hello on an open connection; the whole response."""
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_busy_poll_answers_then_sleeps_when_idle(server):
    port = server("app", "--busy-poll", "2000")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(200):
            assert hello_on(sock).startswith(b"HTTP/1.1 200 OK\r\n")
    pid = server.proc.popen.pid
    time.sleep(0.2)
    before = _cpu_seconds(pid)
    time.sleep(1.5)
    # A worker that kept spinning would use the whole 1.5 s; one that sleeps, a tick or two.
    assert _cpu_seconds(pid) - before < 0.3


def test_busy_poll_with_threads_is_refused_in_one_line():
    from tests.conftest import run_netassist

    result = run_netassist("run", "tests.server.apps:app", "--busy-poll", "50", "--threads", "4")
    assert result.returncode != 0
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "busy-poll needs --threads 1" in err


def test_bad_app_spec_is_one_line(tmp_path):
    from tests.conftest import run_netassist

    result = run_netassist("run", "no_such_module_xyz:app")
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1
    assert "cannot import 'no_such_module_xyz'" in result.stderr.decode()


def test_threads_never_lose_a_keep_alive_request(server):
    """Regression: with several threads, a request arriving while the previous one's thread
    was still re-arming the connection was dropped (a one-shot event lost), stalling it."""
    port = server("app", "--threads", "4")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.monotonic()
        for _ in range(500):
            hello_on(sock)
        assert time.monotonic() - started < 10  # a lost event costs a second or more each


WITHOUT_EPOLL = (
    "import select, sys; del select.epoll; from netassist.cli import main; "
    "sys.argv[0] = 'netassist'; sys.exit(main())"
)


def test_server_without_epoll_keeps_connections_alive_integration(spawn, tmp_path):
    # Where select has no epoll (macOS, the BSDs) the worker falls back to selectors with
    # one-shot arming emulated by unregistering what a poll returns: arming again must
    # register it anew. Before that, the first keep-alive re-arm raised KeyError and the
    # worker died.
    args = ["run", "tests.server.apps:app", "--bind", "127.0.0.1:0", "--threads", "4"]
    proc = spawn([sys.executable, "-c", WITHOUT_EPOLL, *args])
    proc.expect_stderr(r"--threads 4 needs epoll \(Linux\): serving with one thread")
    port = int(proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+) \(1 thread\)").group(1))
    path = tmp_path / "two.bin"
    data = os.urandom(2 << 20)
    path.write_bytes(data)
    upload = os.urandom(300_000)
    with requests.Session() as first, requests.Session() as second:
        ports = set()
        for session in (first, second, first, second):
            reply = session.get(f"http://127.0.0.1:{port}/echo", timeout=10)
            ports.add(reply.json()["remote_port"])
        assert len(ports) == 2  # two connections, each reused
        reply = first.post(f"http://127.0.0.1:{port}/read", data=upload, timeout=10)
        assert reply.text == hashlib.sha256(upload).hexdigest()
        reply = second.get(f"http://127.0.0.1:{port}/file?{path}", timeout=10)
        assert hashlib.sha256(reply.content).digest() == hashlib.sha256(data).digest()
        reply = first.get(f"http://127.0.0.1:{port}/stream?20000", timeout=10)
        assert reply.content.count(b"\n") == 20000
    assert proc.popen.poll() is None


# --- holding back: the responses of a poll's batch written together ----------------------------


def test_held_responses_reach_every_client_whole_and_in_order(server):
    """Forty connections with a request each in flight, round after round, so that the
    server frames many answers per poll and writes them at its end; bodies of every
    size: small ones copied after the head, big ones written from the app's own bytes (4 MB
    into a client that reads late, so most of it goes out after the first write), chunked
    ones; and clients that hang up before their answer. Every byte arrives, in order."""
    port = server("raw")
    targets = ["/hello", "/big?3000", "/big?60000", "/big?60000-chunked", "/big?5000-chunked"]
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(40)]
        streams = [sock.makefile("rb") for sock in socks]
        for round_number in range(15):
            sent = [targets[(i + round_number) % len(targets)] for i in range(len(socks))]
            for sock, target in zip(socks, sent, strict=True):
                sock.sendall(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            for _ in range(3):  # clients that hang up with their request unanswered
                with socket.create_connection(("127.0.0.1", port), timeout=10) as gone:
                    gone.sendall(b"GET /big?60000 HTTP/1.1\r\nHost: h\r\n\r\n")
            for stream, target in zip(streams, sent, strict=True):
                status, body = read_response(stream)
                assert status == b"HTTP/1.1 200 OK\r\n"
                if target == "/hello":
                    assert body == b"Hello, world!"
                else:
                    assert body == big_body(int(target.split("?")[1].split("-")[0])), target
        late = socks[0]
        late.sendall(b"GET /big?4000000 HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.3)  # the server's first write fills the socket; the rest waits for us
        assert read_response(streams[0]) == (b"HTTP/1.1 200 OK\r\n", big_body(4_000_000))
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")  # and it goes on serving
        assert read_response(streams[0]) == (b"HTTP/1.1 200 OK\r\n", b"Hello, world!")
    finally:
        for sock in socks:
            sock.close()


def test_after_a_slow_app_a_held_response_does_not_wait_for_the_next(server, rendezvous):
    """On one thread, a response framed before a slow app would wait for that app to return.
    Neither core can know an app is slow before it runs; after one took the cork window or
    longer, what is held goes out before the next app is called. Here the first app blocks until
    the test releases it; meanwhile a /slow request and a second blocking one arrive, so the
    /slow answer is framed just before the second blocking app runs: it must arrive while
    that app still blocks (without the rule the test times out)."""
    port = server("raw")  # answers of one bytes object: each core holds those
    hold = f"GET /hold?{rendezvous.port} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as first,
        socket.create_connection(("127.0.0.1", port), timeout=10) as quick,
        socket.create_connection(("127.0.0.1", port), timeout=10) as second,
        socket.create_connection(("127.0.0.1", port), timeout=10) as last,
    ):
        for sock in (first, quick, second, last):  # accepted and idle: one event each
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
            assert one_response_body(sock) == b"Hello, world!"
        first.sendall(hold)
        rendezvous.arrived()  # the only thread is in the first app now
        quick.sendall(b"GET /slow?0.05 HTTP/1.1\r\nHost: h\r\n\r\n")
        second.sendall(hold)
        # The batch's last event has held responses written before it: one more, so
        # that the second blocking app is not the last.
        last.sendall(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.2)  # the three requests wait in the kernel for the thread
        rendezvous.release()
        assert one_response_body(first) == b"released"
        rendezvous.arrived()  # the second app blocks the thread now
        assert one_response_body(quick) == b"slow"
        rendezvous.release()
        assert one_response_body(second) == b"released"
        assert one_response_body(last) == b"Hello, world!"
