"""The WSGI server against its peers, side by side in one run.

    python bench/http_bench.py [--repeats 5] [--duration 5] [--only NAME ...]
                               [--python PATH] [--peers DIR] [--base NAME]

Every server runs the 13-byte hello world of ``bench/apps.py`` in one process pinned to
core 0 (``taskset -c 0``); ``wrk -t1`` runs pinned to core 1. The WSGI servers also run the
Flask route of ``bench/apps.py`` (``GET /json/<int:n>`` -> ``jsonify``: row "flask c50"), and
netassist runs with each core: the compiled one, and the pure-Python one (``[pure]`` rows,
``NETASSIST_PURE=1``). Each round runs every server
once, in turn, so drift on this noisy machine hits all of them alike; the table gives the
median over rounds of requests per second and of p50 and p99 latency, and netassist's ratio
to each. With a fixed number of connections the mean wait is connections / rate (Little's
law), so p99 is reported also as a "tail" factor over it: how far a server's slowest 1% stray
from what its rate alone implies.

Peers come from a separate virtual environment (``bench/.peers``, see bench/README.md); any
that is missing is skipped. Only 127.0.0.1 is used; each wrk run is bounded by --duration.
--python runs netassist on another interpreter (one with its dependencies installed; the
code comes from this checkout) and --peers takes the peers from another environment, so all
of them can be compared on one interpreter build (bench/README.md: the build matters).
--compare DIR adds netassist from another checkout (its src/ and bench/apps.py), rows named
"DIR: netassist ...", interleaved with the others: a change measured before and after in
one run.
"""

from __future__ import annotations

import argparse
import json
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
PEERS = HERE / ".peers" / "bin"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
SERVER_CORE, LOAD_CORE = "0", "1"


WAITRESS = (
    "import logging, sys; logging.getLogger('waitress.queue').setLevel(logging.ERROR);"
    "sys.path.insert(0, {root!r}); import waitress; from bench import apps;"
    "waitress.serve(apps.{app}, host='127.0.0.1', port={port}, threads=4, _quiet=True)"
)
BJOERN = (
    "import sys; sys.path.insert(0, {root!r}); import bjoern; from bench import apps;"
    "bjoern.run(apps.{app}, '127.0.0.1', {port})"
)
# app -> (the path wrk asks for, {scenario: (connections, wrk script)})
APPS = {
    "hello": (
        "/",
        {"c50": (50, None), "c50 browser": (50, str(HERE / "browser.lua")), "c1": (1, None)},
    ),
    "flask_json": ("/json/7", {"flask c50": (50, None)}),
}


def netassist_command(python: Path, port: int, *flags: str, app: str = "hello") -> list[str]:
    """``netassist run`` of ``app`` on ``port`` with ``flags``, logging warnings only."""
    run = [str(python), "-m", "netassist", "run", f"bench.apps:{app}"]
    return [*run, "--bind", f"127.0.0.1:{port}", *flags, "--log-level", "warning"]


NETASSIST_FLAGS = (("--threads", "1"), ("--threads", "1", "--busy-poll", "50"), ("--threads", "4"))
PURE = ("env", "NETASSIST_PURE=1")  # the pure-Python core


def servers(
    port: int,
    tmp: str,
    project_py: Path = PROJECT_PY,
    peers: Path = PEERS,
    compare: Path | None = None,
    app: str = "hello",
) -> dict[str, list[str]]:
    """Command lines of every available server of ``app`` for ``port``."""
    root = str(ROOT)
    found = {}
    for flags in NETASSIST_FLAGS:
        command = netassist_command(project_py, port, *flags, app=app)
        found[f"netassist {' '.join(flags)}"] = command
        if "--busy-poll" not in flags:
            found[f"netassist {' '.join(flags)} [pure]"] = [*PURE, *command]
    if compare is not None:
        for flags in NETASSIST_FLAGS:
            command = netassist_command(project_py, port, *flags, app=app)
            found[f"{compare}: netassist {' '.join(flags)}"] = command
            if "--busy-poll" not in flags:
                found[f"{compare}: netassist {' '.join(flags)} [pure]"] = [*PURE, *command]
    if app == "hello":
        # Not servers: what pure Python reaches here (bench/floor.py), on netassist's interpreter.
        for mode in ("prototype", "fixed"):
            found[f"python floor: {mode}"] = [
                str(project_py),
                str(HERE / "floor.py"),
                str(port),
                mode,
            ]
    peer_py = peers / "python"
    if (peers / "granian").exists():
        found["granian wsgi"] = [
            str(peers / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            "1",
            "--runtime-mode",
            "st",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            f"bench.apps:{app}",
        ]
    if (
        peer_py.exists()
        and subprocess.run([str(peer_py), "-c", "import bjoern"], capture_output=True).returncode
        == 0
    ):
        found["bjoern"] = [str(peer_py), "-c", BJOERN.format(root=root, port=port, app=app)]
    if app != "hello":
        pass  # uvicorn runs an ASGI twin of hello only, nginx answers hello only
    elif (peers / "uvicorn").exists():
        found["uvicorn (asgi)"] = [
            str(peers / "uvicorn"),
            "bench.apps:asgi_hello",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    if (peers / "waitress-serve").exists():
        waitress = WAITRESS.format(root=root, port=port, app=app)
        found["waitress 4 threads"] = [str(peer_py), "-c", waitress]
    if (peers / "gunicorn").exists():
        found["gunicorn gthread 4"] = [
            str(peers / "gunicorn"),
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            f"bench.apps:{app}",
        ]
    if shutil.which("nginx") and app == "hello":
        conf = Path(tmp) / f"nginx-{port}.conf"
        conf.write_text(nginx_conf(tmp, port, 'location / { return 200 "Hello, world!"; }'))
        found["nginx return 200"] = ["nginx", "-c", str(conf), "-e", f"{tmp}/error.log"]
    return found


def wait_ready(port: int, path: str = "/", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                sock.sendall(request.encode())
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not answer")


def wrk(
    port: int, connections: int, duration: float, script: str | None, path: str = "/"
) -> tuple[float, float, float]:
    """(requests/s, p99 ms, p50 ms) from one wrk run."""
    args = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    if script:
        args += ["-s", script]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk said: {out.strip()[-300:]!r}")
    rate = float(found.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"    warning: {errors.group(1)} non-2xx responses", file=sys.stderr)
    return rate, _percentile(out, "99"), _percentile(out, "50")


def _percentile(wrk_output: str, which: str) -> float:
    """A latency percentile of wrk's --latency table, in ms."""
    found = re.search(which + r"%\s+([\d.]+)(us|ms|s)", wrk_output)
    if found is None:
        raise RuntimeError(f"no {which}% latency in wrk's output")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def measure(
    name: str,
    command: list[str],
    port: int,
    scenarios: dict,
    duration: float,
    root: Path = ROOT,
    path: str = "/",
) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{root / 'src'}")
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(port, path)
        return {
            label: wrk(port, conns, duration, script, path)
            for label, (conns, script) in scenarios.items()
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--only", nargs="*", help="substrings of server names to run")
    parser.add_argument(
        "--python", type=Path, default=PROJECT_PY, help="the interpreter netassist runs on"
    )
    parser.add_argument(
        "--peers", type=Path, default=PEERS.parent, help="the environment holding the peers"
    )
    parser.add_argument(
        "--base",
        default="netassist --threads 1",
        help="the server the ratio column divides by the others (a name from the table)",
    )
    parser.add_argument(
        "--compare", type=Path, help="also run netassist from this other checkout (before/after)"
    )
    parser.add_argument("--apps", nargs="*", choices=list(APPS), help="the apps to run (all)")
    args = parser.parse_args()
    compare = args.compare.resolve() if args.compare else None
    peers = args.peers / "bin"
    scenarios = {label: s for _, by_label in APPS.values() for label, s in by_label.items()}
    apps = [app for app in APPS if not args.apps or app in args.apps]
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.repeats):
            for name, app in (
                (name, app) for name in servers(0, tmp, args.python, peers, compare) for app in apps
            ):
                if args.only and not any(part in name for part in args.only):
                    continue
                port = free_port()
                command = servers(port, tmp, args.python, peers, compare, app).get(name)
                if command is None:
                    continue  # this server does not run this app
                root = compare if compare and name.startswith(f"{compare}:") else ROOT
                path, app_scenarios = APPS[app]
                try:
                    figures = measure(name, command, port, app_scenarios, args.duration, root, path)
                except Exception as exc:  # one broken peer must not sink the whole run
                    print(f"  {name} ({app}): failed ({exc})", file=sys.stderr)
                    continue
                for label, figure in figures.items():
                    results.setdefault(name, {}).setdefault(label, []).append(figure)
                print(
                    f"round {round_number + 1} {name}: "
                    + ", ".join(f"{k} {v[0]:,.0f}/s" for k, v in figures.items()),
                    file=sys.stderr,
                )
    table = {
        name: {
            label: tuple(statistics.median(column) for column in zip(*runs, strict=True))
            for label, runs in by_label.items()
        }
        for name, by_label in results.items()
    }
    base = table.get(args.base, {})
    print(
        f"\nmedian of {args.repeats} rounds, {args.duration:g} s each "
        f"(req/s, p50 and p99 ms, {args.base} / this)"
    )
    print(
        "tail: p99 over the mean wait the rate implies (connections / rate): p99 follows"
        " the rate times this factor"
    )
    print(f"netassist on {args.python}, peers from {args.peers}")
    for label in scenarios:
        print(f"\n{label}")
        for name, figures in table.items():
            if label not in figures:
                continue
            rate, p99, p50 = figures[label]
            ratio = base[label][0] / rate if label in base and rate else float("nan")
            tail = p99 * rate / (1000 * scenarios[label][0]) if rate else float("nan")
            print(
                f"  {name:<52} {rate:>10,.0f} req/s  p50 {p50:6.2f}  p99 {p99:6.2f} ms"
                f"  tail {tail:4.2f}  ratio {ratio:5.2f}"
            )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
