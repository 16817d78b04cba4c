"""The pre-fork master: several workers against their peers, a reload under load, and what
the master itself costs.

    python bench/master_bench.py [--repeats 7] [--duration 3] [--python PATH] [--peers DIR]
                                 [--only NAME ...] [--skip scale|reload|idle ...]

``scale``: the 13-byte hello world of ``bench/apps.py`` with 2 workers on this 2-core
machine, nothing pinned and ``wrk -t1 -c50`` running alongside (a server sharing its machine
with its load, as on a small VM): ``netassist run -w 2`` against gunicorn (gthread, 2
workers of 4 threads), granian (WSGI, 2 workers), bjoern in one process (the reference: it
has no workers), ``netassist run -w 1`` and ``-w 2 --busy-poll 50``. Each round runs every
server once, in turn, starting one further along the list each round; the table gives
medians over rounds, and the ratio of netassist -w 2 to each as the median of the rounds'
own ratios (a round's servers see about the same load from the rest of the machine). Beside
each figure, the CPU the server's processes used during the run and the time they were
runnable but waited for a CPU (from schedstat), in cores: on a shared machine they tell a
server short of CPU from one waiting for its client.

``reload``: ``netassist run -w 2`` under ``wrk -c50`` for --duration seconds twice in each
round, once steady and once with a HUP in the middle (new workers up, old ones retiring):
p50, p99 and the slowest request of each, and any socket error or non-2xx answer (there
should be none).

``idle``: ``netassist run -w 4`` left idle for --idle seconds: the CPU the master and each
worker used (from /proc/PID/task/*/schedstat, in nanoseconds), as a share of one core.

Peers come from a separate environment (``bench/.peers``, see bench/README.md); a missing
one is skipped. Only 127.0.0.1 is used; every wrk run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.common import free_port, spawn  # noqa: E402
from bench.http_bench import BJOERN, PEERS, PROJECT_PY, ROOT, wait_ready  # noqa: E402
from bench.web_bench import stop  # noqa: E402

CLIENTS = 50


def netassist(python: Path, port: int, *flags: str) -> list[str]:
    """``netassist run`` of the hello world, logging warnings only."""
    return [
        *(str(python), "-m", "netassist", "run", "bench.apps:hello"),
        *("--bind", f"127.0.0.1:{port}", "--log-level", "warning", *flags),
    ]


def servers(python: Path, peers: Path) -> dict[str, Callable[[int], list[str]]]:
    """The servers of the ``scale`` suite that are installed: name -> command line for a port."""
    found: dict[str, Callable[[int], list[str]]] = {
        "netassist -w 2": lambda port: netassist(python, port, "-w", "2"),
        "netassist -w 1": lambda port: netassist(python, port, "-w", "1"),
        "netassist -w 2 --busy-poll 50": lambda port: netassist(
            python, port, "-w", "2", "--busy-poll", "50"
        ),
    }
    if (peers / "gunicorn").exists():
        found["gunicorn gthread -w 2 --threads 4"] = lambda port: [
            *(str(peers / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4"),
            *("-b", f"127.0.0.1:{port}", "--log-level", "warning", "bench.apps:hello"),
        ]
    if (peers / "granian").exists():
        found["granian wsgi --workers 2"] = lambda port: [
            *(str(peers / "granian"), "--interface", "wsgi", "--workers", "2"),
            *("--runtime-mode", "st", "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "bench.apps:hello"),
        ]
    peer_py = peers / "python"
    probe = [peer_py, "-c", "import bjoern"]
    if peer_py.exists() and not subprocess.run(probe, capture_output=True).returncode:
        found["bjoern (1 process)"] = lambda port: [
            str(peer_py),
            "-c",
            BJOERN.format(root=str(ROOT), port=port, app="hello"),
        ]
    return found


class Server:
    """A server process in its own session, stopped (and its children) by process group."""

    def __init__(self, command: list[str], port: int) -> None:
        self.proc = spawn(command)
        self.port = port
        wait_ready(port)

    def stop(self) -> None:
        stop(self.proc)


def wrk(port: int, duration: float, during: Callable[[], None] | None = None) -> dict:
    """One unpinned ``wrk -t1 -c50`` run: rate, p50/p99/max ms, errors. ``during()`` is
    called halfway through (the HUP)."""
    proc = subprocess.Popen(
        [
            *("wrk", "-t1", f"-c{CLIENTS}", f"-d{max(1, round(duration))}s", "--latency"),
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if during is not None:
        time.sleep(duration / 2)
        during()
    out, _ = proc.communicate(timeout=duration + 30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk said: {out.strip()[-300:]!r}")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return {
        "rate": float(found.group(1)),
        "p50": _latency(out, r"50%"),
        "p99": _latency(out, r"99%"),
        "max": _latency(out, r"Latency\s+[\d.]+\w+\s+[\d.]+\w+"),
        "errors": errors,
    }


def _latency(out: str, label: str) -> float:
    found = re.search(label + r"\s+([\d.]+)(us|ms|s)\b", out)
    if found is None:
        raise RuntimeError(f"no {label} in wrk's output")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def scale(args: argparse.Namespace) -> None:
    peers = args.peers / "bin"
    rounds: list[dict[str, dict]] = []
    commands = {
        name: command
        for name, command in servers(args.python, peers).items()
        if not args.only or any(part in name for part in args.only)
    }
    for round_number in range(args.repeats):
        rounds.append({})
        names = list(commands)
        turn = round_number % len(names)
        for name in names[turn:] + names[:turn]:
            command = commands[name]
            port = free_port()
            try:
                server = Server(command(port), port)
            except Exception as exc:  # one broken peer must not sink the whole run
                print(f"  {name}: failed to start ({exc})", file=sys.stderr)
                continue
            try:
                processes = [server.proc.pid, *_children(server.proc.pid)]
                before, started = _sched_of(processes), time.monotonic()
                figures = wrk(port, args.duration)
                after, took = _sched_of(processes), time.monotonic() - started
                figures["cores"] = (after[0] - before[0]) / took
                figures["waiting"] = (after[1] - before[1]) / took
            finally:
                server.stop()
            rounds[-1][name] = figures
            print(
                f"round {round_number + 1} {name}: {figures['rate']:,.0f}/s "
                f"on {figures['cores']:.2f} cores, waiting for one {figures['waiting']:.2f}",
                file=sys.stderr,
            )
    ours = "netassist -w 2"
    print(f"\nscale: median of {args.repeats} rounds of {args.duration:g} s, unpinned, wrk -c50")
    print(f"  (ratio: {ours} / this, the median of the rounds' own ratios, and their range)")
    for name in commands:
        runs = [one[name] for one in rounds if name in one]
        if not runs:
            continue
        row = _medians(runs)
        ratios = [
            one[ours]["rate"] / one[name]["rate"] for one in rounds if {ours, name} <= set(one)
        ]
        spread = (
            f"{statistics.median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if ratios
            else "  -"
        )
        per_cpu = statistics.median(r["rate"] / r["cores"] for r in runs)
        print(
            f"  {name:<34} {row['rate']:>7,.0f} req/s  p50 {row['p50']:5.2f}  p99 "
            f"{row['p99']:6.2f} ms  errors {sum(r['errors'] for r in runs)}  CPU "
            f"{row['cores']:.2f} cores ({per_cpu:,.0f} req per CPU second), waiting "
            f"{row['waiting']:.2f}  ratio {spread}"
        )


def reload(args: argparse.Namespace) -> None:
    port = free_port()
    server = Server(netassist(args.python, port, "-w", "2"), port)
    steady, during = [], []
    try:
        for round_number in range(args.repeats):
            steady.append(wrk(port, args.duration))
            during.append(wrk(port, args.duration, lambda: os.kill(server.proc.pid, signal.SIGHUP)))
            print(
                f"round {round_number + 1}: p99 steady {steady[-1]['p99']:.2f} ms, "
                f"with a HUP {during[-1]['p99']:.2f} ms",
                file=sys.stderr,
            )
            time.sleep(1)  # the old workers finish before the next round
    finally:
        server.stop()
    print(f"\nreload: netassist -w 2, wrk -c50, {args.duration:g} s runs, median of {args.repeats}")
    for label, runs in (("steady", steady), ("with a HUP halfway", during)):
        row = _medians(runs)
        print(
            f"  {label:<20} {row['rate']:>9,.0f} req/s  p50 {row['p50']:6.2f}  p99 "
            f"{row['p99']:6.2f}  max {row['max']:7.2f} ms  errors (all runs) "
            f"{sum(r['errors'] for r in runs)}"
        )


def idle(args: argparse.Namespace) -> None:
    port = free_port()
    server = Server(netassist(args.python, port, "-w", "4"), port)
    try:
        time.sleep(2)  # past start-up
        master = server.proc.pid
        workers = _children(master)
        before = {pid: _cpu_seconds(pid) for pid in [master, *workers]}
        started = time.monotonic()
        time.sleep(args.idle)
        took = time.monotonic() - started
        after = {pid: _cpu_seconds(pid) for pid in before}
    finally:
        server.stop()
    share = {pid: (after[pid] - before[pid]) / took * 100 for pid in before}
    print(f"\nidle: netassist -w 4 for {took:.0f} s, CPU as a share of one core")
    print(f"  master   {share[master]:.3f}%")
    for pid in workers:
        print(f"  worker   {share[pid]:.3f}%")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc/*/stat: not every kernel has
    /proc/PID/task/PID/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The name in parentheses may hold spaces: the fields after its ")" are fixed.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _sched_of(pids: list[int]) -> tuple[float, float]:
    """Seconds these processes' threads (a server's master and workers) ran on a CPU, and
    seconds they were runnable but waited for one (schedstat's first two fields)."""
    ran = waited = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                fields = (task / "schedstat").read_text().split()
                ran, waited = ran + int(fields[0]), waited + int(fields[1])
        except OSError:
            pass  # it left meanwhile
    return ran / 1e9, waited / 1e9


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's threads, from schedstat's nanoseconds (utime and stime
    count whole clock ticks of 10 ms: an idle master's few microseconds a second are 0)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def _load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


def _medians(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle suite")
    parser.add_argument("--only", nargs="*", help="substrings of server names (scale suite)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("scale", "reload", "idle"))
    parser.add_argument("--python", type=Path, default=PROJECT_PY)
    parser.add_argument("--peers", type=Path, default=PEERS.parent)
    args = parser.parse_args()
    print(f"netassist on {args.python}, peers from {args.peers}; load average {_load()}")
    for suite in (scale, reload, idle):
        if suite.__name__ not in args.skip:
            suite(args)
            print(f"  (load average after it: {_load()})")
    print(f"load average at the end {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
