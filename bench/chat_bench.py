"""The chat between two peers on loopback: messages per second delivered and acknowledged,
and delivery latency (median, p99), with and without 20% loss.

    python bench/chat_bench.py [--messages 3000] [--paced 500] [--repeats 3]

Both peers are ``netassist chat listen`` processes, the sender fed by ``--send-stdin``, the
receiver pinned to core 1 and the sender to core 0 (taskset). Two runs per case:
- throughput: ``--messages`` lines handed to the sender at once; messages/s is that count over
  the time from the first message sent to the last one acknowledged (every one delivered and
  acknowledged, as the sender's --log says);
- latency: ``--paced`` messages, one every 20 ms (below capacity, so no queue builds);
  delivery latency is the receiver's time of showing a message minus the sender's time of
  sending it (one clock: the same machine), acknowledgement latency is the sender's time of
  marking it delivered minus that same send time.
With loss, a relay in this process (tests/chat/relay.py) drops 20% of the datagrams each way
(messages, acknowledgements, pings alike). Medians over --repeats rounds. Traffic stays on
127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.chat.relay import LossyRelay  # noqa: E402

NETASSIST = [sys.executable, "-m", "netassist"]
#: Seconds between two messages of a latency run: 50 a second, within reach even at 20% loss.
PACE = 0.02
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pinned(core: str, args: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", core, *args] if taskset and (os.cpu_count() or 1) > 1 else args


def _records(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_run(count: int, *, loss: float, pace: float, tmp: Path) -> dict:
    """Send ``count`` messages (``pace`` seconds apart, 0: all at once); the figures."""
    relay = LossyRelay(2, drop=loss, duplicate=0.0, delay=0.0) if loss else None
    received, sender_log = tmp / "received.jsonl", tmp / "sender.jsonl"
    for path in (received, sender_log):
        path.unlink(missing_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        if relay:
            receiver_peers, sender_peers = relay.peers_of(1), relay.peers_of(0)
            receiver_bind = ["--bind", "127.0.0.1:0"]
        else:
            port = _free_udp_port()
            receiver_bind = ["--bind", f"127.0.0.1:{port}"]
            receiver_peers, sender_peers = [], ["--peer", f"127.0.0.1:{port}"]
        with open(received, "wb") as out:
            procs.append(
                subprocess.Popen(
                    pinned(
                        "1",
                        [
                            *NETASSIST,
                            "chat",
                            "listen",
                            "--name",
                            "bo",
                            *receiver_bind,
                            *receiver_peers,
                            "--timeout",
                            "600",
                        ],
                    ),
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)
        sender = subprocess.Popen(
            pinned(
                "0",
                [
                    *NETASSIST,
                    "chat",
                    "listen",
                    "--name",
                    "ana",
                    *sender_peers,
                    "--send-stdin",
                    "--log",
                    str(sender_log),
                    "--timeout",
                    "600",
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.PIPE,
        )
        procs.append(sender)
        _wait(lambda: any(r.get("event") == "joined" for r in _records(sender_log)), 30, "join")
        text = "x" * 80
        if pace:
            for n in range(count):
                sender.stdin.write(f"{n} {text}\n".encode())
                sender.stdin.flush()
                time.sleep(pace)
        else:
            sender.stdin.write(b"".join(f"{n} {text}\n".encode() for n in range(count)))
            sender.stdin.flush()

        def settled() -> bool:
            return sum(r["type"] == "delivery" for r in _records(sender_log)) >= count

        _wait(settled, 600, "every acknowledgement")
        _wait(lambda: len(_records(received)) >= count, 60, "every message shown")
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if relay:
            relay.close()
    log = _records(sender_log)
    sent = {r["id"]: r["ts"] for r in log if r["type"] == "message"}
    acked = {r["id"]: r["ts"] for r in log if r["type"] == "delivery"}
    states = [r["state"] for r in log if r["type"] == "delivery"]
    shown = {r["id"]: r["ts"] for r in _records(received)}
    assert states == ["delivered"] * count, "a message was not delivered"
    assert len(shown) == count, f"{len(shown)} of {count} shown"
    delivery = [(shown[i] - sent[i]) * 1000 for i in sent]
    ack = [(acked[i] - sent[i]) * 1000 for i in sent]
    elapsed = max(acked.values()) - min(sent.values())
    return {
        "per_s": count / elapsed,
        "delivery_p50": statistics.median(delivery),
        "delivery_p99": _percentile(delivery, 0.99),
        "ack_p50": statistics.median(ack),
        "ack_p99": _percentile(ack, 0.99),
    }


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        tmp = Path(d)
        for loss in (0.0, 0.2):
            bulk = [one_run(args.messages, loss=loss, pace=0, tmp=tmp) for _ in range(args.repeats)]
            paced = [
                one_run(args.paced, loss=loss, pace=PACE, tmp=tmp) for _ in range(args.repeats)
            ]

            def median(runs: list[dict], key: str) -> float:
                return statistics.median(run[key] for run in runs)

            rows.append(
                (
                    f"{loss:.0%} loss",
                    median(bulk, "per_s"),
                    median(paced, "delivery_p50"),
                    median(paced, "delivery_p99"),
                    median(paced, "ack_p50"),
                    median(paced, "ack_p99"),
                    median(bulk, "delivery_p99"),
                )
            )
    print(
        f"{'case':<10} {'msgs/s':>8} {'deliver p50':>12} {'p99':>8} {'ack p50':>8} {'p99':>8}"
        f" {'bulk p99':>9}  (ms)"
    )
    for name, per_s, d50, d99, a50, a99, b99 in rows:
        print(
            f"{name:<10} {per_s:>8.0f} {d50:>12.2f} {d99:>8.2f} {a50:>8.2f} {a99:>8.2f} {b99:>9.0f}"
        )


if __name__ == "__main__":
    main()
