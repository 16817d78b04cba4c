"""What the benchmarks share: free ports and the nginx reference configuration."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_NGINX = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off; sendfile on; tcp_nopush on;
    client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
    uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
    keepalive_requests 100000000;
    server {{ listen 127.0.0.1:{port}; {server} }}
}}
"""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def save_results(suite: str, rows: list[dict], indent: int = 1):
    """Keep a run's figures as ``bench/results/SUITE-YYYYmmdd-HHMMSS.json`` (not
    committed); the file's path."""
    import json
    import time
    from pathlib import Path

    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(rows, indent=indent))
    return path


def nginx_conf(tmp: str, port: int, server: str) -> str:
    """One worker, no logs, sendfile on; ``server`` is the body of the server block."""
    return _NGINX.format(tmp=tmp, port=port, server=server)


def spawn(command: list[str]) -> subprocess.Popen:
    """Start a server from this checkout (its src/ and bench/ importable) in a session of its
    own, quiet, so that it and its children are stopped together by process group."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
