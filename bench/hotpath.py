"""Microseconds per request through the worker's real code path, without wrk's noise.

    python bench/hotpath.py [--requests 50000] [--browser] [--threads N] [--instructions]
                            [--core compiled|pure|both] [--app hello|flask_json] [--alone]

A socketpair stands in for the client, and the worker's own event loop runs: its poll is
replaced by one that reads the previous response back, writes the next request and reports
the connection readable, so each round goes through the loop exactly as under load
(dispatch, recv, parse, environ, app, framing, send, re-arm; with --threads N, the turn's
bookkeeping too). Use it to compare changes to the hot path; the side-by-side figures
against other servers come from http_bench.py.

--core says which core serves (default both, one line each): the compiled one
(``netassist._speedups``) or the pure-Python one (``NETASSIST_PURE=1``).

--app flask_json serves bench/apps.py's Flask route (``GET /json/7``) instead of the hello
world; --alone calls the app itself in a loop (the environ of that request made once, each
answer iterated and closed), without a server: the difference is what serving it costs.

--instructions counts instead of timing: it runs the same path under valgrind's callgrind
for 2,000 and for 4,000 requests and prints the difference per request. With hash seeds
fixed and the wall clock frozen (so the once-a-second Date never rebuilds a cached head) the
count is the same from run to run, whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The core is chosen when netassist is imported: a run of one core says so first.
_cores = [sys.argv[i + 1] for i, flag in enumerate(sys.argv[:-1]) if flag == "--core"]
if _cores[-1:] == ["pure"]:
    os.environ["NETASSIST_PURE"] = "1"

from bench import apps  # noqa: E402
from netassist.server import cores, protocol  # noqa: E402
from netassist.server.config import ServerConfig  # noqa: E402
from netassist.server.poller import IN  # noqa: E402
from netassist.server.protocol import ServerConnection  # noqa: E402
from netassist.server.worker import Connection, Worker  # noqa: E402
from netassist.server.wsgi import EMPTY_INPUT, EnvironBuilder  # noqa: E402

SIMPLE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
BROWSER = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    b"(KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
    b"image/avif,image/webp,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9,zh-CN;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\nCookie: session=abcdef0123456789; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Cache-Control: max-age=0\r\nReferer: http://localhost:8000/\r\n\r\n"
)


def run(request: bytes, count: int, threads: int = 1, app: str = "hello") -> float:
    config = ServerConfig.create(threads=threads)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    worker = Worker(getattr(apps, app), config, [listener])
    client, server = socket.socketpair()
    server.setblocking(False)
    conn = Connection(
        server,
        ("127.0.0.1", 1),
        ServerConnection(config.limits),
        next(iter(worker.listeners.values()))[1],
    )
    worker.conns[conn.fd] = conn
    worker._next_sweep = worker.turns._next_tick = float("inf")  # no sweep in a count
    ready = [(conn.fd, IN)]
    recv, send = client.recv, client.sendall
    left = 0

    def poll(timeout: float, maxevents: int) -> list[tuple[int, int]]:
        nonlocal left
        if left < rounds:
            recv(65536)  # the response to the previous request
        if left == 0:
            worker.stopping = worker.turns.stopping = True
            return []
        left -= 1
        send(request)
        return ready

    def loop() -> None:
        worker.stopping = worker.turns.stopping = False
        if worker.threads > 1:
            worker.turns._poll = poll
            worker.turns._serve_turn(worker.turns._turn)
        else:
            worker._serve(poll)

    rounds = left = 1000  # warm up
    loop()
    rounds = left = count
    started = time.perf_counter()
    loop()
    return (time.perf_counter() - started) / count * 1e6


def run_alone(request: bytes, count: int, app: str) -> float:
    """Microseconds per call of the app itself, with the environ the server would give it."""
    application = getattr(apps, app)
    builder = EnvironBuilder(server_name="127.0.0.1", server_port="8000")
    event = ServerConnection().receive_head(request)
    environ = builder.build(builder.connection_base(("127.0.0.1", 1)), event, EMPTY_INPUT, 0)

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        pass

    def loop(calls: int) -> None:
        for _ in range(calls):
            result = application(environ.copy(), start_response)
            for _piece in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()

    loop(1000)  # warm up
    started = time.perf_counter()
    loop(count)
    return (time.perf_counter() - started) / count * 1e6


def instructions(browser: bool, threads: int, core: str, app: str, alone: bool) -> int:
    """Instructions per request, from two callgrind runs of ``--once``."""
    totals = []
    for count in (2000, 4000):
        command = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--once",
            str(count),
            "--threads",
            str(threads),
            "--core",
            core,
            "--app",
            app,
        ]
        command += ["--alone"] if alone else []
        env = dict(os.environ, PYTHONHASHSEED="0")
        result = subprocess.run(
            command + (["--browser"] if browser else []), capture_output=True, text=True, env=env
        )
        found = re.search(r"refs:\s+([\d,]+)", result.stderr)
        if result.returncode or found is None:
            raise SystemExit(f"valgrind failed: {result.stderr.strip()[-300:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) // 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--browser", action="store_true", help="the 10-header request")
    parser.add_argument(
        "--threads", type=int, default=1, help="the path of --threads N (no thread is started)"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    parser.add_argument(
        "--core", choices=["compiled", "pure", "both"], default="both", help="which core serves"
    )
    parser.add_argument(
        "--app", choices=["hello", "flask_json"], default="hello", help="what is served"
    )
    parser.add_argument(
        "--alone", action="store_true", help="the app called in a loop, without a server"
    )
    parser.add_argument("--once", type=int, help=argparse.SUPPRESS)  # one run, for callgrind
    args = parser.parse_args()
    request = BROWSER if args.browser else SIMPLE
    if args.app == "flask_json":  # the same head, for the Flask route's path
        request = re.sub(rb"^GET \S+ ", b"GET /json/7 ", request)
    if args.alone and args.core == "both":
        args.core = "compiled" if cores.speedups is not None else "pure"  # no server: no core
    if args.core == "both":  # one process per core: the core is chosen at import
        for core in ("compiled", "pure"):
            command = [sys.executable, __file__, *sys.argv[1:], "--core", core]
            result = subprocess.run(command, capture_output=True, text=True)
            print(f"{core}: {(result.stdout + result.stderr).strip()}")
        return 0
    if not args.alone and (args.core == "compiled") != (cores.speedups is not None):
        raise SystemExit(f"the {args.core} core cannot serve here ({cores.NAME} loaded)")
    if args.once:
        frozen = time.time()
        protocol.time = types.SimpleNamespace(time=lambda: frozen)  # type: ignore[assignment]
        if args.alone:
            run_alone(request, args.once, args.app)
        else:
            run(request, args.once, args.threads, args.app)
        return 0
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        count = instructions(args.browser, args.threads, args.core, args.app, args.alone)
        print(f"{count:,} instructions per request")
        return 0
    if args.alone:
        figures = [run_alone(request, args.requests, args.app) for _ in range(5)]
    else:
        figures = [run(request, args.requests, args.threads, args.app) for _ in range(5)]
    print(f"{statistics.median(figures):.2f} us per request (median of 5; min {min(figures):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
