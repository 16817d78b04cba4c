"""The pre-fork master as a process, with real signals and a real load of clients.

Every load is bounded in time and count (tests/server/load.py); every process is stopped by
its PID. Times asked of the server (--timeout 2, a replacement within a second) are checked
against the master's own log, whose lines carry the time they were written.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.server.load import Load
from tests.server.raw import one_response_body

pytestmark = pytest.mark.integration

_LISTENING = r"listening on http://127\.0\.0\.1:(\d+)"
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")

VERSIONED_APP = """
import os

VERSION = {version!r}


def app(environ, start_response):
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def logged_at(line: str) -> float:
    """The wall-clock time a log line of the server was written."""
    stamp = _STAMP.match(line)
    assert stamp, line
    moment = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return moment.timestamp()


def write_app(folder: Path, version: str) -> None:
    (folder / "versioned.py").write_text(VERSIONED_APP.format(version=version))


@pytest.fixture
def versioned(netassist, tmp_path):
    """``netassist run versioned:app`` from a folder whose app the test rewrites."""

    def start(*args: str):
        write_app(tmp_path, "v1")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # a rewrite is read, not a stale .pyc
        proc = netassist(
            "run", "versioned:app", "--chdir", str(tmp_path), "-b", "127.0.0.1:0", *args, env=env
        )
        return proc, int(proc.expect_stderr(_LISTENING, timeout=20).group(1))

    start.folder = tmp_path
    return start


def test_hup_three_times_under_load_fails_nothing_and_serves_the_new_code(versioned):
    proc, port = versioned("-w", "4")
    reloaded_at, hup_at = [], []
    with Load("/", port=port, clients=8, seconds=60) as load:
        load.wait_for(200)
        for version in ("v2", "v3", "v4"):
            write_app(versioned.folder, version)
            hup_at.append(time.monotonic())
            proc.popen.send_signal(signal.SIGHUP)
            proc.expect_stderr(r"reloaded: 4 workers", timeout=30)
            reloaded_at.append(time.monotonic())  # the old workers are gone by now
            done = len(load.results)
            load.wait_for(done + 200)
        results = load.stop()
    assert load.failures == [], load.failures[:5]
    assert len(results) >= 800
    # Between a reload's end and the next HUP, only the new code answers.
    for phase, version in enumerate(("v2", "v3", "v4")):
        start = reloaded_at[phase]
        end = hup_at[phase + 1] if phase < 2 else float("inf")
        seen = Counter(r.body.split()[0] for r in results if start < r.started and r.ended < end)
        assert set(seen) == {version.encode()}, (version, seen)
        assert seen[version.encode()] >= 150
    assert {r.body.split()[0] for r in results if r.ended < hup_at[0]} == {b"v1"}
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_term_during_50_slow_requests_lets_all_finish_then_exits_0(netassist, rendezvous):
    proc = netassist(
        "run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "2", "--threads", "50"
    )
    port = int(proc.expect_stderr(_LISTENING).group(1))
    socks = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            sock.sendall(f"GET /hold?{rendezvous.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(sock)
        for _ in range(50):
            rendezvous.arrived()  # all 50 are inside the app
        proc.popen.terminate()
        proc.expect_stderr("stopping: finishing the requests in progress")
        with pytest.raises(ConnectionRefusedError):  # no new client while they finish
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        assert proc.popen.poll() is None  # still waiting for them
        rendezvous.release()
        bodies = [one_response_body(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert bodies == [b"released"] * 50
    code, _, err = proc.finish()
    assert code == 0, err
    assert "stopped" in err


def test_kill_9_of_a_worker_under_load_is_replaced_within_a_second(netassist):
    proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "4")
    port = int(proc.expect_stderr(_LISTENING).group(1))
    with Load("/pid", port=port, clients=8, seconds=30) as load:
        load.wait_for(300)
        victim = int(load.results[-1].body)
        killed_at, killed_wall = time.monotonic(), time.time()
        os.kill(victim, signal.SIGKILL)
        proc.expect_stderr(rf"\(pid {victim}\) was killed by signal 9 \(SIGKILL\)")
        ready = proc.expect_stderr(r"worker 5 \(pid (\d+)\) ready").string
        while time.monotonic() < killed_at + 1.0:
            time.sleep(0.05)
        load.wait_for(len(load.results) + 300)
        results = load.stop()
    assert logged_at(ready) - killed_wall < 1.0, ready
    # Who held a connection on the victim: the clients whose last answer before the kill
    # came from it. Each may lose the request in flight (or the next one, on the dead
    # connection), and nobody else loses any.
    held = {}
    for r in results:
        if r.ended < killed_at and r.error is None:
            held[r.client] = int(r.body) == victim
    failed = Counter(r.client for r in load.failures)
    assert all(held.get(client) for client in failed), (failed, held)
    assert all(count == 1 for count in failed.values()), failed
    for failure in load.failures:  # its request in flight, or the first one after the kill
        later = [r for r in results if r.client == failure.client and r.error is None]
        assert not any(killed_at < r.started < failure.started for r in later)
    answered = [r for r in results if r.error is None and r.started > killed_at + 0.5]
    assert answered and victim not in {int(r.body) for r in answered}
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_a_handler_stuck_past_timeout_is_killed_and_its_request_named(netassist):
    proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "--timeout", "2")
    port = int(proc.expect_stderr(_LISTENING).group(1))
    outcome = []

    def stuck() -> None:
        try:
            requests.get(f"http://127.0.0.1:{port}/slow?30", timeout=20)
        except requests.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=stuck, daemon=True)
    client.start()
    line = proc.expect_stderr(
        r"worker 1 \(pid \d+\) killed: no heartbeat for ([\d.]+)s \(--timeout 2\); "
        r"it was running GET /slow\?30 for ([\d.]+)s",
        timeout=15,
    )
    assert 2.0 <= float(line.group(1)) < 6.0
    assert 2.0 <= float(line.group(2)) < 7.0
    proc.expect_stderr(r"worker 2 \(pid \d+\) ready")
    client.join(20)
    assert outcome  # its request died with the worker
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).text == "Hello, world!"
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_max_requests_under_load_retires_workers_and_fails_nothing(netassist):
    proc = netassist(
        "run",
        *("tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "2"),
        *("--max-requests", "100", "--max-requests-jitter", "20"),
    )
    port = int(proc.expect_stderr(_LISTENING).group(1))
    with Load("/pid", port=port, clients=6, seconds=30, limit=1500) as load:
        load.wait_for(1500, timeout=30)
        results = load.stop()
    assert load.failures == [], load.failures[:5]
    served = Counter(int(r.body) for r in results)
    retired = {}
    for _ in range(4):  # at least four retirements while the load ran
        line = proc.expect_stderr(r"\(pid (\d+)\) has served its (\d+) requests \(--max-requests")
        retired[int(line.group(1))] = int(line.group(2))
    for pid, limit in retired.items():
        assert 100 <= limit <= 120
        # It went on serving until its replacement was up (how long that takes depends on
        # the machine's load), then finished and left: the master reaped it.
        assert served[pid] >= limit
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}"):
            assert time.monotonic() < deadline, f"retired worker {pid} did not leave"
            time.sleep(0.05)
    # The third and fourth retirements are of replacements: four workers at least served.
    assert len(served) >= 4, served
    proc.popen.terminate()
    assert proc.finish()[0] == 0


# --- proxy headers ------------------------------------------------------------------------------


def _echo_over_unix(path: str, headers: dict[str, str]) -> dict:
    import json

    from tests.server.load import UnixHTTPConnection

    conn = UnixHTTPConnection(path, timeout=10)
    try:
        conn.request("GET", "/echo", headers=headers)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


SPOOFED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=198.51.100.1;proto=https",
}


def test_proxy_headers_from_trusted_and_untrusted_peers(netassist, tmp_path):
    unix = str(tmp_path / "app.sock")
    # The default: 127.0.0.1 is believed, a peer on the unix: socket is not.
    proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-b", f"unix:{unix}")
    port = int(proc.expect_stderr(_LISTENING).group(1))
    proc.expect_stderr(r"add --forwarded-allow-ips unix to believe a proxy there")
    url = f"http://127.0.0.1:{port}/echo"
    seen = requests.get(url, headers=SPOOFED, timeout=10).json()
    assert (seen["remote_addr"], seen["scheme"]) == ("203.0.113.7", "https")
    assert seen["http"]["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # kept for the app
    chain = {"X-Forwarded-For": "1.2.3.4, 198.51.100.9, 127.0.0.1"}
    seen = requests.get(url, headers=chain, timeout=10).json()
    assert seen["remote_addr"] == "198.51.100.9"  # the rightmost hop not ours
    only_forwarded = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}
    seen = requests.get(url, headers=only_forwarded, timeout=10).json()
    assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == (
        "2001:db8::1",
        "4711",
        "https",
    )
    seen = _echo_over_unix(unix, SPOOFED)
    assert (seen["remote_addr"], seen["scheme"]) == ("", "http")
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED"} & set(
        seen["http"]
    )
    proc.popen.terminate()
    assert proc.finish()[0] == 0

    # Another list: the unix: socket's peers are believed, 127.0.0.1 is not any more.
    unix2 = str(tmp_path / "app2.sock")
    proc = netassist(
        "run",
        *("tests.server.apps:app", "-b", "127.0.0.1:0", "-b", f"unix:{unix2}"),
        *("--forwarded-allow-ips", "10.0.0.0/8,unix"),
    )
    port = int(proc.expect_stderr(_LISTENING).group(1))
    seen = requests.get(f"http://127.0.0.1:{port}/echo", headers=SPOOFED, timeout=10).json()
    assert (seen["remote_addr"], seen["scheme"]) == ("127.0.0.1", "http")
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED"} & set(
        seen["http"]
    )
    spoof_by_underscore = {"X_Forwarded_For": "203.0.113.99"}
    seen = requests.get(f"http://127.0.0.1:{port}/echo", headers=spoof_by_underscore).json()
    assert seen["remote_addr"] == "127.0.0.1" and "HTTP_X_FORWARDED_FOR" not in seen["http"]
    seen = _echo_over_unix(unix2, SPOOFED)
    assert (seen["remote_addr"], seen["scheme"]) == ("203.0.113.7", "https")
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_ipv4_and_ipv6_binds_shared_by_the_workers(netassist):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    proc = netassist(
        "run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-b", "[::1]:0", "-w", "2"
    )
    v4 = int(proc.expect_stderr(_LISTENING).group(1))
    v6 = int(proc.expect_stderr(r"listening on http://\[::1\]:(\d+) \(2 workers").group(1))
    seen = requests.get(f"http://[::1]:{v6}/echo", headers=SPOOFED, timeout=10).json()
    # ::1 is not in the default --forwarded-allow-ips (127.0.0.1): its proxy headers go.
    assert (seen["remote_addr"], seen["scheme"], seen["server_port"]) == ("::1", "http", str(v6))
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED"} & set(
        seen["http"]
    )
    assert requests.get(f"http://127.0.0.1:{v4}/echo", timeout=10).json()["remote_addr"] == (
        "127.0.0.1"
    )
    assert len(_pids(v6, 2, "[::1]")) == 2  # both workers accept on both sockets
    assert len(_pids(v4, 2)) == 2
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_nginx_in_front_over_a_unix_socket_passes_the_client_on(netassist, spawn, tmp_path):
    from tests.conftest import need, start_nginx

    need("nginx")  # before the server starts: skipped where it is missing
    sock = tmp_path / "app.sock"
    proc = netassist(
        "run",
        *("tests.server.apps:app", "-b", f"unix:{sock}", "-w", "2"),
        *("--forwarded-allow-ips", "unix", "--umask", "007"),
    )
    proc.expect_stderr(r"listening on unix:")
    assert sock.stat().st_mode & 0o777 == 0o770
    port = start_nginx(spawn, tmp_path, [f"unix:{sock}"])
    base = f"http://127.0.0.1:{port}"
    with requests.Session() as session:
        seen = session.get(base + "/echo/a?b=1", timeout=10).json()
        assert seen["http"]["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
        assert (seen["remote_addr"], seen["scheme"]) == ("127.0.0.1", "http")
        assert seen["path_info"] == "/echo/a" and seen["query"] == "b=1"
        # A client's own X-Forwarded-For is kept in the chain, but it cannot set REMOTE_ADDR:
        # the rightmost hop, the one nginx saw, is the client.
        seen = session.get(
            base + "/echo", headers={"X-Forwarded-For": "198.51.100.23"}, timeout=10
        ).json()
        assert seen["http"]["HTTP_X_FORWARDED_FOR"] == "198.51.100.23, 127.0.0.1"
        assert seen["remote_addr"] == "127.0.0.1"
        body = os.urandom(300_000)
        reply = session.post(base + "/read", data=body, timeout=10)
        import hashlib

        assert reply.text == hashlib.sha256(body).hexdigest()
    proc.popen.terminate()
    assert proc.finish()[0] == 0


# --- operations ----------------------------------------------------------------------------------


def test_tls_with_a_self_signed_certificate(netassist, tmp_path):
    import hashlib
    import subprocess

    from tests.conftest import need, run_netassist

    openssl = need("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # through TLS a file is read, not sendfile'd
    proc = netassist(
        "run",
        *("tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "2"),
        *("--certfile", str(cert), "--keyfile", str(key)),
    )
    port = int(proc.expect_stderr(r"listening on https://127\.0\.0\.1:(\d+)").group(1))
    base = f"https://127.0.0.1:{port}"
    with requests.Session() as session:
        seen = session.get(base + "/echo", verify=str(cert), timeout=10).json()
        assert seen["scheme"] == "https"
        reply = session.get(f"{base}/file?{big}", verify=str(cert), timeout=20)
        assert hashlib.sha256(reply.content).digest() == hashlib.sha256(big.read_bytes()).digest()
        upload = os.urandom(1 << 20)
        reply = session.post(base + "/read", data=upload, verify=str(cert), timeout=20)
        assert reply.text == hashlib.sha256(upload).hexdigest()
        ports = {
            session.get(base + "/echo", verify=str(cert)).json()["remote_port"] for _ in range(5)
        }
        assert len(ports) == 1  # keep-alive through TLS
    # Plain HTTP at the TLS port is told so in plain HTTP, and the server serves on.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := plain.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"this port speaks HTTPS: use https://\n")
    assert requests.get(base + "/hello", verify=str(cert), timeout=10).text == "Hello, world!"
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    # A key that is not the certificate's: one line, before anything is bound.
    other = tmp_path / "other.pem"
    subprocess.run([openssl, "genrsa", "-out", str(other), "2048"], check=True, capture_output=True)
    result = run_netassist(
        "run", "tests.server.apps:app", "--certfile", str(cert), "--keyfile", str(other)
    )
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"netassist: cannot serve TLS with {cert} and")
    assert result.stderr.decode().count("\n") == 1


def test_pid_file_and_an_address_in_use_are_refused_clearly(netassist, tmp_path):
    import subprocess

    from tests.conftest import run_netassist

    pid = tmp_path / "netassist.pid"
    proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "--pid", str(pid))
    port = int(proc.expect_stderr(_LISTENING).group(1))
    assert pid.read_text() == f"{proc.popen.pid}\n"
    second = run_netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "--pid", str(pid))
    assert second.returncode == 1
    assert second.stderr.decode() == (
        f"netassist: {pid} names a running netassist (pid {proc.popen.pid}): "
        "stop it first, or give another --pid\n"
    )
    third = run_netassist("run", "tests.server.apps:app", "-b", f"127.0.0.1:{port}")
    assert third.returncode == 7
    assert third.stderr.decode() == (
        f"netassist: binding 127.0.0.1:{port}: address already in use "
        "(another program holds this port; pick another or stop it)\n"
    )
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    assert not pid.exists()
    # A stale file whose pid now belongs to another program is not a reason to refuse.
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid.write_text(f"{other.pid}\n")
        proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0", "--pid", str(pid))
        proc.expect_stderr(_LISTENING)
        assert pid.read_text() == f"{proc.popen.pid}\n"
    finally:
        other.kill()
        other.wait()


def test_ttin_adds_a_worker_and_ttou_retires_one(netassist):
    proc = netassist("run", "tests.server.apps:app", "-b", "127.0.0.1:0")
    port = int(proc.expect_stderr(_LISTENING).group(1))
    first = requests.get(f"http://127.0.0.1:{port}/pid", timeout=10).text
    proc.popen.send_signal(signal.SIGTTIN)
    proc.expect_stderr("TTIN: 2 workers")
    second = proc.expect_stderr(r"worker 2 \(pid (\d+)\) ready").group(1)
    pids = set()
    for _ in range(200):  # new connections land on either (bounded)
        pids.add(requests.get(f"http://127.0.0.1:{port}/pid", timeout=10).text)
        if len(pids) == 2:
            break
    assert pids == {first, second}
    proc.popen.send_signal(signal.SIGTTOU)
    proc.expect_stderr("TTOU: 1 workers")
    proc.expect_stderr(rf"worker 1 \(pid {first}\) retiring: one worker fewer")
    proc.expect_stderr(rf"worker 1 \(pid {first}\) finished|pid {first}", timeout=10)
    replies = {requests.get(f"http://127.0.0.1:{port}/pid", timeout=10).text for _ in range(20)}
    assert replies == {second}
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_quit_exits_at_once_and_warning_level_hides_info(netassist, rendezvous):
    from tests.conftest import free_port

    port = free_port()
    proc = netassist(
        "run", "tests.server.apps:app", "-b", f"127.0.0.1:{port}", "--log-level", "warning"
    )
    for _ in range(200):  # no "listening" line at this level: wait for the port (bounded)
        try:
            held = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    with held:
        held.sendall(f"GET /hold?{rendezvous.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        rendezvous.arrived()
        started = time.monotonic()
        proc.popen.send_signal(signal.SIGQUIT)
        code, _, err = proc.finish(timeout=10)
        assert time.monotonic() - started < 3  # not waiting for the held request
        assert held.recv(4096) == b""  # cut off, not answered
    assert code == 0
    assert " INFO " not in err and "Traceback" not in err


def test_usr1_reopens_the_logs_after_they_are_moved(netassist, tmp_path):
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    proc = netassist(
        "run",
        *("tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "2", "--access-log", str(access)),
        *("--access-log-format", '%h "%r" %>s %b %D %{X-Test}i %{Content-Type}o %P'),
        *("--error-log", str(errors)),
    )
    for _ in range(200):  # the error log, not stderr, says where it listens (bounded)
        found = re.search(_LISTENING, errors.read_text() if errors.exists() else "")
        if found:
            break
        time.sleep(0.05)
    port = int(found.group(1))
    assert requests.get(f"http://127.0.0.1:{port}/hello", headers={"X-Test": "one"}).ok
    for _ in range(200):  # the line is written once the answer is out: wait for it (bounded)
        line = access.read_text() if access.exists() else ""
        if line.endswith("\n"):
            break
        time.sleep(0.02)
    assert re.fullmatch(
        r'127\.0\.0\.1 "GET /hello HTTP/1\.1" 200 13 \d+ one text/plain \d+\n', line
    )
    access.rename(tmp_path / "access.log.1")
    errors.rename(tmp_path / "error.log.1")
    proc.popen.send_signal(signal.SIGUSR1)
    pids = set()
    for _ in range(200):  # until both workers have written to the new file (bounded)
        requests.get(f"http://127.0.0.1:{port}/pid", timeout=10)
        if access.exists():
            pids = {row.rsplit(" ", 1)[1] for row in access.read_text().splitlines()}
        if len(pids) == 2:
            break
        time.sleep(0.02)
    assert len(pids) == 2
    assert "USR1: log files reopened" in errors.read_text()
    old = (tmp_path / "access.log.1").read_text().splitlines()
    assert old[0] == line.rstrip("\n") and all(row.startswith("127.0.0.1 ") for row in old)
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    assert "stopped" in errors.read_text()


def test_an_inherited_socket_fd(netassist):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with listener:
        proc = netassist(
            "run",
            *("tests.server.apps:app", "-b", f"fd://{listener.fileno()}", "-w", "2"),
            pass_fds=[listener.fileno()],
        )
        proc.expect_stderr(rf"listening on http://127\.0\.0\.1:{port} ")
    # Only the server holds it now.
    assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=10).text == "Hello, world!"
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_a_reload_that_cannot_import_keeps_the_old_workers(versioned):
    proc, port = versioned("-w", "2")
    (versioned.folder / "versioned.py").write_text("def app(:\n")
    proc.popen.send_signal(signal.SIGHUP)
    proc.expect_stderr(
        r"reload failed, the previous workers go on serving: importing 'versioned' failed: "
        r"invalid syntax \(versioned\.py, line 1\)"
    )
    bodies = {requests.get(f"http://127.0.0.1:{port}/", timeout=10).text[:2] for _ in range(10)}
    assert bodies == {"v1"}
    write_app(versioned.folder, "v2")
    proc.popen.send_signal(signal.SIGHUP)
    proc.expect_stderr("reloaded: 2 workers")
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.startswith("v2 ")
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_reload_for_development_follows_the_app_s_files(versioned):
    proc, port = versioned("--reload")
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.startswith("v1 ")
    write_app(versioned.folder, "v2")
    proc.expect_stderr(r"versioned\.py changed: reloading \(--reload\)")
    proc.expect_stderr("reloaded: 1 workers")
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.startswith("v2 ")
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_an_app_that_fails_to_import_is_one_line_and_no_server(tmp_path):
    from tests.conftest import run_netassist

    (tmp_path / "broken.py").write_text("import os\n\nRATIO = 1 / 0\n")
    result = run_netassist("run", "broken:app", "--chdir", str(tmp_path), "-b", "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "netassist: loading 'broken:app' failed: ZeroDivisionError: division by zero "
        "(broken.py, line 3)\n"
    )


def test_hup_reads_the_config_file_again(netassist, tmp_path):
    config = tmp_path / "netassist.toml"
    config.write_text('bind = "127.0.0.1:0"\nworkers = 1\n')
    proc = netassist("run", "tests.server.apps:app", "--config", str(config))
    port = int(proc.expect_stderr(_LISTENING + r" \(1 thread\)").group(1))
    config.write_text('bind = "127.0.0.1:0"\nworkers = "many"\n')
    proc.popen.send_signal(signal.SIGHUP)
    proc.expect_stderr(r"reload refused, nothing changed: .*workers: 'many' is not a whole number")
    config.write_text('bind = "127.0.0.1:0"\nworkers = 3\n')
    proc.popen.send_signal(signal.SIGHUP)
    proc.expect_stderr("reloaded: 3 workers")
    pids = set()
    for _ in range(300):  # new connections land on all three (bounded)
        pids.add(requests.get(f"http://127.0.0.1:{port}/pid", timeout=10).text)
        if len(pids) == 3:
            break
    assert len(pids) == 3
    # A worker stopped by someone else's TERM finishes and is replaced.
    os.kill(int(pids.pop()), signal.SIGTERM)
    proc.expect_stderr(r"left by itself: replacing it")
    proc.expect_stderr(r"worker 5 \(pid \d+\) ready")
    proc.popen.terminate()
    assert proc.finish()[0] == 0


# --- how many workers, where the app is imported, how a worker leaves ---------------------------

MARKED_APP = """
import os

VERSION = {version!r}
with open(os.path.join(os.path.dirname(__file__), "imports.txt"), "a") as marks:
    marks.write(f"{{os.getpid()}}\\n")  # who imported this module


def app(environ, start_response):
    if environ["PATH_INFO"] == "/exit":
        os._exit(int(environ["QUERY_STRING"]))
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.fixture
def marked(netassist, tmp_path):
    """``netassist run marked:app``: an app that notes in imports.txt each process that
    imports it, answers its version and pid, and at /exit?N leaves with code N."""

    def start(*args: str):
        (tmp_path / "marked.py").write_text(MARKED_APP.format(version="v1"))
        (tmp_path / "imports.txt").unlink(missing_ok=True)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = netassist(
            "run", "marked:app", "--chdir", str(tmp_path), "-b", "127.0.0.1:0", *args, env=env
        )
        return proc, int(proc.expect_stderr(_LISTENING, timeout=20).group(1))

    def importers() -> list[int]:
        return [int(pid) for pid in (tmp_path / "imports.txt").read_text().split()]

    start.importers = importers
    start.folder = tmp_path
    return start


def _pids(port: int, expected: int, host: str = "127.0.0.1") -> set[str]:
    """The workers that answer new connections, asked until ``expected`` differ (bounded)."""
    pids = set()
    for _ in range(400):
        with requests.get(f"http://{host}:{port}/pid", timeout=10) as reply:
            pids.add(reply.text.split()[-1])
        if len(pids) >= expected:
            break
    return pids


def test_workers_auto_is_one_per_usable_core(netassist, spawn):
    from tests.conftest import NETASSIST, need

    cores = len(os.sched_getaffinity(0))
    proc = netassist(
        "run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "auto", "--access-log", "-"
    )
    line = proc.expect_stderr(_LISTENING + r" \((?:(\d+) workers, )?1 thread")
    port = int(line.group(1))
    assert int(line.group(2) or 1) == cores
    pids = _pids(port, cores)
    assert len(pids) == cores and str(proc.popen.pid) not in pids
    # --access-log - writes the combined format, as nginx and Apache do, to stderr.
    access = proc.expect_stderr(r"^127\.0\.0\.1 - - \[.*\] \"GET /pid HTTP/1\.1\" 200 \d+ ")
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /pid HTTP/1\.1" '
        r'200 \d+ "-" "python-requests/[\d.]+"',
        access.string,
    )
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    if cores < 2:
        return
    # The cores this process may use, not the machine's: under `taskset -c 0`, one worker.
    pinned = spawn(
        [
            *(need("taskset"), "-c", "0", *NETASSIST, "run", "tests.server.apps:app"),
            *("-b", "127.0.0.1:0", "-w", "auto"),
        ]
    )
    port = int(pinned.expect_stderr(_LISTENING + r" \(1 thread\)").group(1))
    assert len(_pids(port, 2)) == 1
    pinned.popen.terminate()
    assert pinned.finish()[0] == 0


def test_preload_imports_the_app_once_in_the_master_and_again_on_hup(marked):
    proc, port = marked("-w", "2", "--preload")
    master = proc.popen.pid
    assert marked.importers() == [master]
    pids = _pids(port, 2)
    assert len(pids) == 2 and str(master) not in pids
    (marked.folder / "marked.py").write_text(MARKED_APP.format(version="v2"))
    proc.popen.send_signal(signal.SIGHUP)
    proc.expect_stderr("reloaded: 2 workers", timeout=20)
    assert marked.importers() == [master, master]  # imported afresh, by the master again
    replies = {requests.get(f"http://127.0.0.1:{port}/", timeout=10).text[:3] for _ in range(10)}
    assert replies == {"v2 "}
    proc.popen.terminate()
    assert proc.finish()[0] == 0
    # Without --preload, each worker imports the app itself and the master never does.
    proc, port = marked("-w", "2")
    pids = _pids(port, 2)
    assert sorted(marked.importers()) == sorted(int(pid) for pid in pids)
    assert proc.popen.pid not in marked.importers()
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_a_worker_that_exits_is_replaced_and_its_exit_code_logged(marked):
    proc, port = marked()
    first = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.split()[1]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/exit?3", timeout=10)
    proc.expect_stderr(rf"worker 1 \(pid {first}\) exited with code 3$")
    second = proc.expect_stderr(r"worker 2 \(pid (\d+)\) ready").group(1)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == f"v1 {second}"
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def test_term_waits_for_a_stuck_request_only_up_to_graceful_timeout(netassist, rendezvous):
    proc = netassist(
        "run", "tests.server.apps:app", "-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "2"
    )
    port = int(proc.expect_stderr(_LISTENING).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as held:
        held.sendall(f"GET /hold?{rendezvous.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        rendezvous.arrived()  # inside the app, which is never released
        started = time.monotonic()
        proc.popen.terminate()
        code, _, err = proc.finish(timeout=20)
        took = time.monotonic() - started
        try:
            assert held.recv(4096) == b""  # cut off, never answered
        except ConnectionResetError:
            pass
    assert code == 0, err
    assert 2.0 <= took < 8.0, took
    assert re.search(r"worker \d \(pid \d+\) did not finish within --graceful-timeout", err)
    assert "stopped" in err and "Traceback" not in err


def test_a_unix_path_that_is_a_plain_file_is_refused_and_left_alone(tmp_path):
    from tests.conftest import run_netassist

    notes = tmp_path / "notes 10:30.md"
    notes.write_text("not a socket\n")
    result = run_netassist("run", "tests.server.apps:app", "-b", f"unix:{notes}")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"netassist: unix:{notes} is a file that is not a socket: left alone; bind another path\n"
    )
    assert notes.read_text() == "not a socket\n"
