"""Side-by-side benchmarks: netassist against its peers, in one run, on this machine.

    python bench/run.py [SUITE ...] [--repeats N] [--size-mib N]

Suites: ``tcp`` (bulk throughput against nc and socat) and ``udp`` (datagram rate against a
minimal socket loop). Each figure is the median of ``--repeats`` runs; the receiver and the
sender are pinned to different cores with taskset when it exists. Results print as a table
and are saved under ``bench/results/`` (not committed). Traffic stays on 127.0.0.1, and
every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.common import save_results  # noqa: E402

NETASSIST = [sys.executable, "-m", "netassist"]
RECEIVER_CORE, SENDER_CORE = "1", "0"


def pinned(core: str, args: Sequence[str]) -> list[str]:
    """``args`` run on one core, when taskset is available."""
    taskset = shutil.which("taskset")
    return (
        [taskset, "-c", core, *args]
        if taskset and os.cpu_count() and os.cpu_count() > 1
        else list(args)
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
    """Wait for a socket in LISTEN (tcp) or bound (udp) state on ``port`` via /proc."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X}"
    while time.monotonic() < deadline:
        for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[1].endswith(needle) and (proto == "udp" or fields[3] == "0A"):
                    return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {proto} port {port}")


def timed_pair(
    receiver: list[str], sender: list[str], port: int, proto: str, limit: float
) -> tuple[float, str]:
    """Start the receiver, then the sender; seconds from sender start to receiver exit."""
    recv = subprocess.Popen(
        receiver, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        wait_listening(port, proto)
        start = time.perf_counter()
        subprocess.run(
            sender, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=limit
        )
        recv.wait(limit)
        elapsed = time.perf_counter() - start
        return elapsed, recv.stderr.read().decode(errors="replace") if recv.stderr else ""
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


def bench_tcp(repeats: int, size_mib: int) -> list[dict]:
    """1 GiB (by default) from a file through each tool's client into its listener > /dev/null."""
    size = size_mib * 1024 * 1024
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "payload.bin"
        with open(path, "wb") as handle:
            block = os.urandom(1024 * 1024)
            for _ in range(size_mib):
                handle.write(block)
        tools: dict[str, Callable[[int], tuple[list[str], list[str]]]] = {
            "netassist": lambda p: (
                [*NETASSIST, "tcp", "listen", str(p), "--show", "raw", "-q"],
                [*NETASSIST, "tcp", "connect", "127.0.0.1", str(p), "--file", str(path)],
            ),
        }
        if shutil.which("nc"):
            tools["nc"] = lambda p: (
                ["nc", "-l", "127.0.0.1", str(p)],
                ["nc", "-N", "127.0.0.1", str(p)],
            )
        if shutil.which("socat"):
            tools["socat"] = lambda p: (
                ["socat", "-u", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr", "STDOUT"],
                ["socat", "-u", f"FILE:{path}", f"TCP:127.0.0.1:{p}"],
            )
        samples: dict[str, list[float]] = {name: [] for name in tools}
        for _ in range(repeats):
            for name, make in tools.items():  # interleaved, so drift hits every tool alike
                port = free_port()
                receiver, sender = make(port)
                if name == "nc":
                    sender = ["sh", "-c", f'exec {" ".join(sender)} < "{path}"']
                elapsed, _ = timed_pair(
                    pinned(RECEIVER_CORE, receiver), pinned(SENDER_CORE, sender), port, "tcp", 300
                )
                samples[name].append(size / elapsed / 1e9)
        for name, values in samples.items():
            rows.append(
                {
                    "suite": "tcp",
                    "tool": name,
                    "unit": "GB/s",
                    "median": statistics.median(values),
                    "runs": values,
                }
            )
    return rows


MINIMAL_UDP_SENDER = """
import socket, sys
n, port, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
payload = b"x" * size
for _ in range(n):
    s.send(payload)
"""

MINIMAL_UDP_RECEIVER = """
import socket, sys, time
n, port, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", port))
s.settimeout(limit)
got = 0
try:
    while got < n:
        s.recv(65535)
        got += 1
except TimeoutError:
    print(f"received {got} of {n}", file=sys.stderr)
"""


def bench_udp(repeats: int, count: int = 200_000, size: int = 64) -> list[dict]:
    """``udp send --repeat`` into ``udp listen --count`` against a minimal socket loop pair."""
    limit = 60.0
    idle = 1.0  # both receivers stop after this long without a datagram; it is not counted

    def netassist(p: int) -> tuple[list[str], list[str]]:
        return (
            [
                *NETASSIST,
                "udp",
                "listen",
                str(p),
                "--count",
                str(count),
                "--idle-timeout",
                str(idle),
                "--show",
                "raw",
            ],
            [*NETASSIST, "udp", "send", "127.0.0.1", str(p), "x" * size, "--repeat", str(count)],
        )

    def minimal(p: int) -> tuple[list[str], list[str]]:
        return (
            [sys.executable, "-c", MINIMAL_UDP_RECEIVER, str(count), str(p), str(idle)],
            [sys.executable, "-c", MINIMAL_UDP_SENDER, str(count), str(p), str(size)],
        )

    samples: dict[str, list[float]] = {"netassist": [], "minimal loop": []}
    losses: dict[str, list[int]] = {name: [] for name in samples}
    for _ in range(repeats):
        for name, make in (("netassist", netassist), ("minimal loop", minimal)):
            port = free_port(socket.SOCK_DGRAM)
            receiver, sender = make(port)
            elapsed, err = timed_pair(
                pinned(RECEIVER_CORE, receiver),
                pinned(SENDER_CORE, sender),
                port,
                "udp",
                limit + 30,
            )
            got = count
            if "received" in err:
                got = int(err.split("received ", 1)[1].split(" ", 1)[0])
                elapsed -= idle
            samples[name].append(got / elapsed)
            losses[name].append(count - got)
    return [
        {
            "suite": "udp",
            "tool": name,
            "unit": "datagrams/s",
            "median": statistics.median(values),
            "runs": values,
            "lost": losses[name],
        }
        for name, values in samples.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", default=["tcp", "udp"], choices=["tcp", "udp", []])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="tcp payload size (default 1 GiB)"
    )
    args = parser.parse_args()
    rows: list[dict] = []
    if "tcp" in args.suites:
        rows += bench_tcp(args.repeats, args.size_mib)
    if "udp" in args.suites:
        rows += bench_udp(args.repeats)
    for suite in dict.fromkeys(row["suite"] for row in rows):
        suite_rows = [row for row in rows if row["suite"] == suite]
        base = next(row for row in suite_rows if row["tool"] == "netassist")["median"]
        print(f"\n{suite}: median of {args.repeats} runs")
        for row in suite_rows:
            ratio = base / row["median"] if row["median"] else float("nan")
            extra = f"  lost {row['lost']}" if row.get("lost") and any(row["lost"]) else ""
            figure = f"{row['median']:>12,.2f} {row['unit']:<12}"
            print(f"  {row['tool']:<14} {figure} netassist/this = {ratio:5.2f}{extra}")
    save_results("wire", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
