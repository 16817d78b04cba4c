"""Shared fixtures: run ``netassist`` as a real process and talk to it over loopback.

Every process a test starts is stopped by its PID at the end of the test, never by name.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

NETASSIST = [sys.executable, "-m", "netassist"]
ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (?:tcp|udp) (?:\[([^\]]+)\]|([^\s:]+)):(\d+)")


def need(tool: str) -> str:
    """The path of an outside tool, or skip the test (CI installs them all)."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    return path


class Proc:
    """A started process whose stderr is read line by line on a thread."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        stdin: int | None = subprocess.DEVNULL,
        env=None,
        pass_fds: Sequence[int] = (),
    ):
        self.args = list(args)
        self.popen = subprocess.Popen(
            self.args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=pass_fds,
        )
        self.stderr_lines: queue.Queue[str] = queue.Queue()
        self.stderr_seen: list[str] = []
        # Both pipes are drained as the process writes, so it never blocks on a full pipe.
        self._stdout = bytearray()
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        while chunk := self.popen.stdout.read1(1 << 20):
            self._stdout += chunk

    def stdout_so_far(self) -> bytes:
        """What the process has written to stdout until now."""
        return bytes(self._stdout)

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for raw in self.popen.stderr:
            self.stderr_lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def expect_stderr(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait for a stderr line matching ``pattern`` and return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for line in self.stderr_seen:
            if match := regex.search(line):
                self.stderr_seen.remove(line)
                return match
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.stderr_lines.get(timeout=remaining)
            except queue.Empty:
                break
            if match := regex.search(line):
                return match
            self.stderr_seen.append(line)
        raise AssertionError(f"no stderr line matching {pattern!r}; saw {self.stderr_seen!r}")

    def port(self) -> int:
        """The port from the ``listening on ...`` line."""
        return int(self.expect_stderr(_LISTENING.pattern).group(3))

    def finish(self, timeout: float = 20.0) -> tuple[int, bytes, str]:
        """Wait for the process to exit; return (code, stdout, all stderr)."""
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        out = bytes(self._stdout)
        rest = []
        while not self.stderr_lines.empty():
            rest.append(self.stderr_lines.get())
        return code, out, "\n".join(self.stderr_seen + rest)

    def stop(self) -> None:
        """Terminate (then kill) this process by PID if it still runs."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator:
    """Start processes for a test; all of them are stopped by PID afterwards."""
    started: list[Proc] = []

    def start(args: Sequence[str], **kwargs) -> Proc:
        proc = Proc(args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def netassist(spawn):
    """Start ``netassist ARGS...`` as a process."""

    def start(*args: str, **kwargs) -> Proc:
        return spawn([*NETASSIST, *args], **kwargs)

    return start


def run_netassist(*args: str, input: bytes | None = None, timeout: float = 30.0, cwd=None):
    """Run ``netassist ARGS...`` to completion; return the CompletedProcess."""
    return subprocess.run(
        [*NETASSIST, *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago (for peers like nc that cannot report theirs)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_bound(port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
    """Wait until a peer that prints nothing (nc, socat) has bound ``port``, without touching it.

    A probe connection would use up the one client ``nc -l`` serves, so this reads the
    kernel's socket tables instead: a TCP socket in LISTEN state, or any bound UDP socket.
    """
    deadline = time.monotonic() + timeout
    suffix = f":{port:04X}"
    while time.monotonic() < deadline:
        for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
            if not os.path.exists(table):
                continue
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(suffix) and (proto == "udp" or fields[3] == "0A"):
                    return
        time.sleep(0.05)
    raise AssertionError(f"nothing bound to {proto} port {port}")


class MakeForeground:
    """``make TARGET ARGS...`` in the project's folder as a user types it, in the
    foreground; in its own process group, so make and the server it starts are stopped
    together, by group id. Skips where make or the project's .venv is missing."""

    def __init__(self, target: str, *args: str, env: dict[str, str]) -> None:
        need("make")
        if not (ROOT / ".venv" / "bin" / "netassist").exists():
            pytest.skip(f"make {target} needs the project's .venv (make test makes it)")
        self.popen = subprocess.Popen(
            ["make", "--no-print-directory", target, *args],
            cwd=ROOT,
            env={k: v for k, v in env.items() if not k.startswith("MAKE")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Read as it comes, so that a test can wait for a line before it stops the server.
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.popen.stdout.read1(65536):
            self._output += chunk

    def output(self) -> str:
        """What make and its server printed so far."""
        return self._output.decode(errors="replace")

    def expect(self, text: str, seconds: float = 30.0) -> None:
        """Wait until ``text`` was printed (a line printed once every worker is up, say)."""
        deadline = time.monotonic() + seconds
        while text not in self.output():
            assert self.popen.poll() is None or text in self.output(), self.output()
            assert time.monotonic() < deadline, f"{text!r} not printed in {seconds} s"
            time.sleep(0.05)

    def first_answer(self, url: str, seconds: float = 60.0, **kwargs):
        """The first answer of ``GET url`` once the server is up (requests' Response)."""
        import requests

        deadline = time.monotonic() + seconds
        while True:
            try:
                return requests.get(url, timeout=2, **kwargs)
            except requests.ConnectionError:
                assert self.popen.poll() is None, self.output()
                assert time.monotonic() < deadline, f"nothing answered {url} in {seconds} s"
                time.sleep(0.2)

    def stop(self) -> str:
        """TERM to the group (KILL if it lingers); everything make and its server printed."""
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._reader.join(10)
        return self.output()


NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections {connections}; }}
http {{
    {http}
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    upstream app {{ {servers} keepalive {keepalive}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Forwarded "";
        }}
    }}
}}
"""


def start_nginx(
    spawn,
    folder: Path,
    servers: Sequence[str],
    *,
    http: str = "access_log off;",
    keepalive: int = 4,
    connections: int = 64,
) -> int:
    """Start Debian's nginx as a reverse proxy on a free loopback port, in the foreground,
    passing every request to the upstream ``servers`` (``unix:PATH`` or ``HOST:PORT``; more
    than one: it balances between them) with the headers docs/deployment.md sets; ``http``
    is added to its http block; everything it writes goes to ``folder``. Its port, once it
    listens. Skips where nginx is missing."""
    nginx = need("nginx")
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=folder,
            port=port,
            http=http,
            servers=" ".join(f"server {server};" for server in servers),
            keepalive=keepalive,
            connections=connections,
        )
    )
    spawn([nginx, "-c", str(conf), "-p", str(folder), "-e", str(folder / "nginx-error.log")])
    wait_bound(port)
    return port


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through selenium with Debian's driver (never a downloaded one)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,800",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
