"""The web framework against a bare WSGI function, Bottle and Flask, on one server.

    python bench/web_bench.py [--repeats 5] [--duration 3] [--connections 50]

Every application answers ``GET /users/42`` (a route with an int path parameter) with the
JSON ``{"id": 42}`` and is served by ``netassist run`` with one worker and ``--threads 1``,
pinned to core 0 (``taskset -c 0``); ``wrk -t1`` runs pinned to core 1. Each round serves
every application once, in turn (all of them are started first and wait idle), so this
noisy machine's drift hits all of them alike; the table gives medians over rounds, and the
ratios are medians of the ratios within each round.

Figures: requests per second; each framework's overhead against the bare function
(1 - rate/bare: the issue's target for netassist.web is under 30%); and, for the apps with
200 routes registered (``/r0/<int:id>`` ... ``/r199/<int:id>``), the last route's rate over
the first's (target >= 0.9). Only 127.0.0.1 is used; each wrk run is bounded by --duration.

``--instructions`` counts instead the CPU instructions one request costs each app without a
server (callgrind, deterministic): the framework's own cost, untouched by the machine's load.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, spawn  # noqa: E402

PROJECT_PY = ROOT / ".venv" / "bin" / "python"
SERVER_CORE, LOAD_CORE = "0", "1"

# name -> (factory in bench/web_apps.py, the paths to load)
APPS = {
    "bare WSGI function": ("bare()", ["/users/42"]),
    "netassist.web": ("netassist_web()", ["/users/42"]),
    "bottle": ("bottle_app()", ["/users/42"]),
    "flask": ("flask_app()", ["/users/42"]),
    "netassist.web, 200 routes": ("netassist_web_many()", ["/r0/42", "/r199/42"]),
    "bottle, 200 routes": ("bottle_many()", ["/r0/42", "/r199/42"]),
    "flask, 200 routes": ("flask_many()", ["/r0/42", "/r199/42"]),
}


def wait_ready(port: int, path: str, timeout: float = 20.0) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server on {port} did not answer {path} with 200")


def wrk(port: int, path: str, connections: int, duration: float) -> float:
    """Requests per second from one pinned wrk run; non-2xx answers are an error."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors on {path}: {out.strip()[-300:]!r}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk said: {out.strip()[-300:]!r}")
    return float(found.group(1))


def start(python: Path, factory: str) -> tuple[subprocess.Popen, int]:
    """``netassist run`` of one app, pinned, in its own process group; (process, port)."""
    port = free_port()
    command = [
        "taskset",
        "-c",
        SERVER_CORE,
        str(python),
        "-m",
        "netassist",
        "run",
        f"bench.web_apps:{factory}",
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        "1",
        "--log-level",
        "warning",
    ]
    return spawn(command), port


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`start`, by its process group."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def call_in_process(factory: str, path: str, count: int) -> None:
    """Call one app ``count`` times without a server (what --instructions counts)."""
    from bench import web_apps

    app = getattr(web_apps, factory.removesuffix("()"))()  # a factory named in APPS
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }

    def start_response(status, headers, exc_info=None):
        return None

    for _ in range(count):
        body = app(dict(base), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def instructions(python: Path, factory: str, path: str) -> int:
    """CPU instructions per request of one app in-process, under callgrind: the difference
    between 3,000 and 1,000 calls over 2,000 (start-up cancels out). Unlike req/s it does
    not move with the machine's load."""
    counts = []
    for count in (1000, 3000):
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                str(python),
                str(Path(__file__)),
                "--call",
                factory,
                path,
                str(count),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise RuntimeError(f"callgrind said: {out.stderr.strip()[-300:]!r}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) // 2000


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--call":
        call_in_process(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--python", type=Path, default=PROJECT_PY)
    parser.add_argument("--only", nargs="*", help="substrings of app names to run")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count CPU instructions per request in-process with callgrind instead",
    )
    args = parser.parse_args()
    chosen = {
        name: spec
        for name, spec in APPS.items()
        if not args.only or any(part in name for part in args.only)
    }
    if args.instructions:
        print("instructions per request, in-process (callgrind), no server")
        for name, (factory, paths) in chosen.items():
            for path in paths:
                print(f"  {name:<28} {path:<10} {instructions(args.python, factory, path):>9,}")
        return 0
    # Every server is started first and waits idle on core 0 while the others are loaded,
    # so that the figures compared come from runs seconds apart, not minutes.
    servers = {}
    try:
        for name, (factory, _) in chosen.items():
            servers[name] = start(args.python, factory)
        for name, (_, paths) in chosen.items():
            port = servers[name][1]
            for path in paths:
                wait_ready(port, path)
                wrk(port, path, args.connections, 1)  # warm-up, not counted
        results: dict[str, dict[str, list[float]]] = {}
        for round_number in range(args.repeats):
            for name, (_, paths) in chosen.items():
                # Odd rounds load the paths in the other order: drift within a round must
                # not favour the first route over the last.
                order = paths if round_number % 2 == 0 else paths[::-1]
                figures = {
                    path: wrk(servers[name][1], path, args.connections, args.duration)
                    for path in order
                }
                for path, rate in figures.items():
                    results.setdefault(name, {}).setdefault(path, []).append(rate)
                print(
                    f"round {round_number + 1} {name}: "
                    + ", ".join(f"{p} {r:,.0f}/s" for p, r in sorted(figures.items())),
                    file=sys.stderr,
                )
    finally:
        for proc, _ in servers.values():
            stop(proc)
    table = {
        name: {path: statistics.median(rates) for path, rates in by_path.items()}
        for name, by_path in results.items()
    }
    print(
        f"\nmedian of {args.repeats} rounds, {args.duration:g} s each, -c{args.connections}, "
        f"netassist run --threads 1 on {args.python}"
    )
    for name, by_path in table.items():
        for path, rate in sorted(by_path.items()):
            print(f"  {name:<28} {path:<10} {rate:>9,.0f} req/s")
    # Ratios are taken within each round, then their median: steadier than a ratio of
    # medians when the machine's load drifts.
    print("\nratios, median over rounds [lowest-highest]")
    users = "/users/42"
    pairs = [
        (f"{name} / bare", (name, users), ("bare WSGI function", users))
        for name in ("netassist.web", "bottle", "flask")
    ]
    pairs += [
        (f"netassist.web / {peer}", ("netassist.web", users), (peer, users))
        for peer in ("bottle", "flask")
    ]
    pairs += [
        (f"{name}: last route / first", (name, "/r199/42"), (name, "/r0/42"))
        for name in results
        if "200 routes" in name
    ]
    for label, top, bottom in pairs:
        if top[0] not in results or bottom[0] not in results:
            continue
        ratios = [
            a / b
            for a, b in zip(results[top[0]][top[1]], results[bottom[0]][bottom[1]], strict=False)
        ]
        extra = (
            f"  (overhead {1 - statistics.median(ratios):.1%})" if label.endswith("/ bare") else ""
        )
        print(
            f"  {label:<46} {statistics.median(ratios):5.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]{extra}"
        )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"web-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
