"""10,000 idle keep-alive connections on one worker: its memory, and a new request's latency.

    python bench/idle_conns.py [--connections 10000]

Each connection makes one request and then idles with keep-alive; the worker's RSS is read
from /proc, and a fresh connection's request is timed while all of them are held.
Loopback only; the connections are closed at the end.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_request(port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(REQUEST)
        data = b""
        while not data.endswith(b"Hello, world!"):
            data += sock.recv(4096)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netassist",
            "run",
            "bench.apps:hello",
            "--bind",
            f"127.0.0.1:{port}",
            "--keep-alive",
            "120",
            "--max-connections",
            str(args.connections + 100),
            "--backlog",
            "4096",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    held: list[socket.socket] = []
    try:
        time.sleep(1.0)
        baseline = rss_mib(server.pid)
        idle_latency = statistics.median(one_request(port) for _ in range(20))
        for _ in range(args.connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(REQUEST)
            held.append(sock)
        for sock in held:
            data = b""
            while not data.endswith(b"Hello, world!"):
                data += sock.recv(4096)
        time.sleep(0.5)
        loaded = rss_mib(server.pid)
        latencies = [one_request(port) for _ in range(50)]
        print(f"connections held: {len(held)}")
        grown = loaded - baseline
        print(
            f"worker RSS: {baseline:.1f} MiB idle -> {loaded:.1f} MiB with them (+{grown:.1f} MiB)"
        )
        median, worst = statistics.median(latencies), max(latencies)
        print(
            f"new request while held: median {median:.2f} ms, max {worst:.2f} ms "
            f"(with none held: {idle_latency:.2f} ms)"
        )
    finally:
        for sock in held:
            sock.close()
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
