"""Static files: netassist serve against nginx and python -m http.server, in one run.

    python bench/static_bench.py [--repeats 5] [--skip-big] [--big-rounds N]

- paths: how fast this machine moves a file to a loopback socket with os.sendfile and with a
  reused 1 MiB buffer (readinto + send): the server's file path follows the faster one.
- big: a 1 GiB file downloaded with curl to /dev/null, GB/s.
- small / medium: 4 KiB and 1 MiB files with wrk -t1 -c10, req/s.
- --big-rounds N: afterwards, netassist and nginx both up, N alternating 1 GiB downloads
  each (the single download per round above is noisy here).
Each server is one process pinned to core 0 (nginx: one worker, sendfile on); the client is
pinned to core 1. Medians of --repeats interleaved rounds. Loopback only, bounded runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.common import free_port, nginx_conf  # noqa: E402

ROOT = HERE.parent
PROJECT_PY = ROOT / ".venv" / "bin" / "python"


RECEIVER = """
import socket, sys
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen(1)
print("ready", flush=True)
conn, _ = listener.accept()
buffer = bytearray(1 << 20)
while conn.recv_into(buffer):
    pass
"""


def copy_rate(path: Path, how: str) -> float:
    """GB/s moving ``path`` into a loopback socket read by another process."""
    port = free_port()
    receiver = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-c", RECEIVER, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        receiver.stdout.readline()
        sock = socket.create_connection(("127.0.0.1", port))
        size = path.stat().st_size
        started = time.perf_counter()
        with open(path, "rb") as handle:
            if how == "sendfile":
                offset = 0
                while offset < size:
                    offset += os.sendfile(sock.fileno(), handle.fileno(), offset, size - offset)
            else:
                buffer = bytearray(1 << 20)
                view = memoryview(buffer)
                while count := handle.readinto(buffer):
                    sock.sendall(view[:count])
        sock.close()
        receiver.wait(120)
        return size / (time.perf_counter() - started) / 1e9
    finally:
        if receiver.poll() is None:
            receiver.kill()


class Server:
    """A server process pinned to core 0, stopped by its process group."""

    def __init__(self, name: str, command: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *command],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def servers(root: Path, tmp: str) -> dict[str, callable]:
    def netassist(port: int) -> list[str]:
        return [
            str(PROJECT_PY),
            "-m",
            "netassist",
            "serve",
            str(root),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ]

    def http_server(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ]

    found = {"netassist serve": netassist, "python -m http.server": http_server}
    if shutil.which("nginx"):

        def nginx(port: int) -> list[str]:
            conf = Path(tmp) / f"nginx-{port}.conf"
            conf.write_text(nginx_conf(tmp, port, f"root {root};"))
            return ["nginx", "-c", str(conf), "-e", f"{tmp}/error.log"]

        found["nginx (sendfile)"] = nginx
    return found


def curl_rate(port: int, name: str, size: int) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total}",
            f"http://127.0.0.1:{port}/{name}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return size / float(out) / 1e9


def wrk_rate(port: int, name: str, seconds: int = 4) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c10",
            f"-d{seconds}s",
            f"http://127.0.0.1:{port}/{name}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def alternating_big(root: Path, tmp: str, rounds: int) -> dict[str, list[float]]:
    """1 GiB downloads from netassist and nginx, both running, one after the other."""
    running = {}
    try:
        for name, command in servers(root, tmp).items():
            if name != "python -m http.server":
                port = free_port()
                running[name] = (Server(name, command(port), port), port)
        figures: dict[str, list[float]] = {name: [] for name in running}
        for _ in range(rounds):
            for name, (_, port) in running.items():
                figures[name].append(curl_rate(port, "big.bin", 1 << 30))
        return figures
    finally:
        for server, _ in running.values():
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-big", action="store_true", help="leave out the 1 GiB download")
    parser.add_argument(
        "--big-rounds", type=int, default=0, help="alternating 1 GiB downloads afterwards"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "www"
        root.mkdir()
        (root / "small.bin").write_bytes(os.urandom(4096))
        (root / "medium.bin").write_bytes(os.urandom(1 << 20))
        big = root / "big.bin"
        if not args.skip_big:
            with open(big, "wb") as handle:
                block = os.urandom(1 << 20)
                for _ in range(1024):
                    handle.write(block)
        results: dict[str, dict[str, list[float]]] = {}
        if not args.skip_big:
            for _ in range(args.repeats):
                for how in ("sendfile", "readinto"):
                    results.setdefault("paths", {}).setdefault(how, []).append(copy_rate(big, how))
        for _ in range(args.repeats):
            for name, command in servers(root, tmp).items():
                port = free_port()
                server = Server(name, command(port), port)
                try:
                    figures = {
                        "small 4 KiB": wrk_rate(port, "small.bin"),
                        "medium 1 MiB": wrk_rate(port, "medium.bin"),
                    }
                    if not args.skip_big:
                        figures["big 1 GiB"] = curl_rate(port, "big.bin", 1 << 30)
                finally:
                    server.stop()
                for label, value in figures.items():
                    results.setdefault(label, {}).setdefault(name, []).append(value)
                print(
                    f"{name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()),
                    file=sys.stderr,
                )
        if args.big_rounds and not args.skip_big:
            results["big 1 GiB, alternating"] = alternating_big(root, tmp, args.big_rounds)
    units = {
        "paths": "GB/s",
        "big 1 GiB": "GB/s",
        "big 1 GiB, alternating": "GB/s",
        "small 4 KiB": "req/s",
        "medium 1 MiB": "req/s",
    }
    print(f"\nmedians of {args.repeats} rounds ({args.big_rounds} for the alternating ones)")
    for label, by_name in results.items():
        print(f"\n{label} ({units[label]})")
        base = statistics.median(
            by_name.get("netassist serve", by_name.get("sendfile", [float("nan")]))
        )
        for name, values in by_name.items():
            value = statistics.median(values)
            print(f"  {name:<24} {value:>12,.2f}   first/this = {base / value:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
