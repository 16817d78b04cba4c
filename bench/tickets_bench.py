"""Ticket sales per second with 1, 2 and 4 workers, on SQLite and on PostgreSQL, and the p99.

    .venv/bin/python bench/tickets_bench.py [--duration 8] [--connections 32] [--workers 1 2 4]

The tickets app (examples/tickets) runs under ``netassist run --workers N --threads 4``;
``wrk`` posts ``POST /events/<id>/buy`` with a buyer of its own per request (so every one is
a sale, not a 409) to an event of 1,000,000 tickets, for ``--duration`` seconds with
``--connections`` keep-alive connections. After each run the event's ``sold`` must equal
wrk's count of 201 answers (plus at most one in flight per connection when wrk stopped),
with no other answer: a figure that oversold or lost sales is refused.

SQLite is a file in a temporary folder on disk (WAL, synchronous=NORMAL, as the app sets).
PostgreSQL is a throw-away cluster of Debian's PostgreSQL with its default durability
(fsync on, synchronous_commit on: each sale waits for its WAL flush), on loopback; and
``postgresql-nosync``, the same with fsync off, to show what the flush costs (never run a
real one so: a crash can lose or corrupt data).

Where the time goes: the CPU seconds of the server's processes (the master and its workers)
and of the database's (PostgreSQL's server processes; SQLite runs inside the workers) over
each run, from /proc, as a share of the machine's cores; and, on the same server, the rate
of ``GET /events/<id>`` (a read: no lock held, no flush), the ceiling the server and the
app reach without the database's write path. When sales stay well below that ceiling and
adding workers does not raise them, the limit is the database: its one write lock (SQLite)
or the event's row lock held until the commit's WAL flush (PostgreSQL).

Nothing is pinned: the server, the database and wrk share the two cores, as they would on
one small machine, so the load average (printed) matters: compare figures from one run.
Only 127.0.0.1 is used; every wrk run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tests.examples.postgres import Cluster, programs  # noqa: E402

from bench.common import free_port, save_results  # noqa: E402

PROJECT_PY = ROOT / ".venv" / "bin" / "python"
TICKS = os.sysconf("SC_CLK_TCK")

# Each wrk thread numbers its buyers; the 201s and the other answers are counted and printed
# at the end as JSON, with the latency percentiles.
WRK_SCRIPT = r"""
-- globals, not locals: done() reads each thread's counts with thread:get
counter, prefix, created, refused = 0, "", 0, 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = (args[1] or "run") .. "-" .. id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = '{"buyer": "' .. prefix .. '-' .. counter .. '"}'
  return wrk.format(nil, wrk.path, nil, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1 else refused = refused + 1 end
end

function done(summary, latency, requests)
  local made, other = 0, 0
  for _, thread in ipairs(threads) do
    made = made + thread:get("created")
    other = other + thread:get("refused")
  end
  io.write(string.format(
    'RESULT {"created": %d, "other": %d, "requests": %d, "seconds": %f, ' ..
    '"p50_ms": %f, "p99_ms": %f, "errors": %d}\n',
    made, other, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def family(root: int) -> list[int]:
    """``root`` and its children (a master and its workers; a postmaster and its backends)."""
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        return [root]
    return [root, *map(int, children)]


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def serve(database_url: str, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [
            *(str(PROJECT_PY), "-m", "netassist", "run", "tickets:app"),
            *("--chdir", str(ROOT / "examples"), "-b", f"127.0.0.1:{port}"),
            *("-w", str(workers), "--threads", str(threads), "--log-level", "warning"),
        ],
        env=dict(os.environ, DATABASE_URL=database_url, TICKETS_POOL_SIZE=str(threads)),
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            get_json(f"http://127.0.0.1:{port}/events")
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the tickets app did not start") from None
            time.sleep(0.1)


def one_run(
    database_url: str, workers: int, args: argparse.Namespace, db_pid: int | None, script: str
) -> dict:
    server, port = serve(database_url, workers, args.threads)
    try:
        base = f"http://127.0.0.1:{port}"
        event = post_json(base + "/events", {"name": "bench", "count": 1_000_000})["id"]
        path = f"{base}/events/{event}/buy"
        # Warm-up: every worker opens its connections (and PostgreSQL its backends).
        subprocess.run(
            ["wrk", "-t1", f"-c{args.connections}", "-d1s", "-s", script, path, "--", "warm"],
            capture_output=True,
            timeout=30,
        )
        time.sleep(0.5)
        before = get_json(f"{base}/events/{event}")["sold"]
        server_pids = family(server.pid)
        db_pids = family(db_pid) if db_pid else []
        cpu_app, cpu_db = cpu_seconds(server_pids), cpu_seconds(db_pids)
        wrk = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
        started = time.monotonic()
        out = subprocess.run(
            [*wrk, "-s", script, path, "--", "run"],
            capture_output=True,
            text=True,
            timeout=args.duration + 60,
        )
        wall = time.monotonic() - started
        cpu_app = cpu_seconds(server_pids) - cpu_app
        cpu_db = cpu_seconds(db_pids) - cpu_db if db_pids else 0.0
        found = re.search(r"^RESULT (\{.*\})$", out.stdout, re.MULTILINE)
        if not found:
            raise RuntimeError(f"wrk said: {(out.stdout + out.stderr)[-400:]!r}")
        result = json.loads(found.group(1))
        sold = get_json(f"{base}/events/{event}")["sold"] - before
        # wrk stops with up to one request per connection in flight: the server sells
        # those too, without wrk counting them.
        in_flight = sold - result["created"]
        if not 0 <= in_flight <= args.connections or result["other"] or result["errors"]:
            raise RuntimeError(f"sold {sold} but wrk counted {result}")
        cores = os.cpu_count() or 1
        result.update(
            sales_per_s=result["created"] / result["seconds"],
            app_cpu=cpu_app / wall / cores,
            db_cpu=cpu_db / wall / cores,
        )
        # The same server reading the event (no write, no lock held): its ceiling.
        text = subprocess.run(
            [*wrk, f"{base}/events/{event}"], capture_output=True, text=True, timeout=120
        ).stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
        if not rate or not p99 or "Non-2xx" in text:
            raise RuntimeError(f"wrk said: {text[-400:]!r}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        result.update(reads_per_s=float(rate.group(1)), read_p99_ms=float(p99.group(1)) * scale)
        return result
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4, help="--threads of each worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql", "postgresql-nosync"]
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="tickets-bench-") as tmp:
        script = str(Path(tmp) / "buy.lua")
        Path(script).write_text(WRK_SCRIPT)
        for backend in args.backends:
            cluster = None
            if backend.startswith("postgresql"):
                if programs() is None:
                    print("PostgreSQL is not installed: skipping it", file=sys.stderr)
                    continue
                cluster = Cluster(durable=backend == "postgresql").start()
            try:
                for workers in args.workers:
                    if cluster is not None:
                        name = f"bench_{workers}"
                        import psycopg

                        with psycopg.connect(cluster.url, autocommit=True) as admin:
                            admin.execute(f'CREATE DATABASE "{name}"')
                        url = cluster.url.rsplit("/", 1)[0] + "/" + name
                        db_pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                    else:
                        url = f"sqlite:///{tmp}/bench-{workers}.sqlite3"
                        db_pid = None
                    load = os.getloadavg()[0]
                    result = one_run(url, workers, args, db_pid, script)
                    result.update(backend=backend, workers=workers, load=load)
                    rows.append(result)
                    print(
                        f"{backend:10} {workers} workers: {result['sales_per_s']:7.0f} sales/s"
                        f"  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
                        f"  CPU app {result['app_cpu']:4.0%} db {result['db_cpu']:4.0%}"
                        f"  | reads {result['reads_per_s']:6.0f}/s"
                        f" p99 {result['read_p99_ms']:5.1f} ms"
                        f"  (load {load:.1f})",
                        flush=True,
                    )
            finally:
                if cluster is not None:
                    cluster.stop()
    save_results("tickets", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
