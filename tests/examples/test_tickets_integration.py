"""The tickets app under ``netassist run`` with 4 workers of 4 threads: 1,000 buyers at once
for 100 tickets, on SQLite and on PostgreSQL, and the same with a worker killed in the
middle.

Every load is bounded in time (tests/examples/buyers.py); every process is stopped by its
PID; PostgreSQL is a throw-away cluster (tests/examples/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.examples.buyers import Answer, crowd, request, statuses

pytestmark = pytest.mark.integration

BUYERS = 1000
TICKETS = 100


def new_event(port: int, count: int = TICKETS) -> int:
    answer = requests.post(
        f"http://127.0.0.1:{port}/events", json={"name": "周杰伦演唱会", "count": count}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    event = answer.json()
    assert event["count"] == count and event["remaining"] == count and event["sold"] == 0
    return event["id"]


class Watcher:
    """Reads ``GET /events/<id>`` over and over while the buyers buy: every ``remaining``
    seen, in order (it must never go below 0 nor up)."""

    def __init__(self, port: int, event: int) -> None:
        self.port, self.event = port, event
        self.seen: list[int] = []
        self.failures: list[str] = []

    async def __call__(self, answers: list[Answer]) -> None:
        while True:
            try:
                status, body, _ = await request(
                    "127.0.0.1", self.port, "GET", f"/events/{self.event}", timeout=10
                )
                if status != 200:
                    self.failures.append(f"{status} {body}")
                else:
                    assert body["sold"] + body["remaining"] == body["count"], body
                    self.seen.append(body["remaining"])
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.failures.append(repr(exc))
            await asyncio.sleep(0.005)

    def check(self) -> None:
        assert self.seen, f"the watcher saw nothing: {self.failures[:3]}"
        assert min(self.seen) >= 0, min(self.seen)
        assert self.seen == sorted(self.seen, reverse=True), "remaining went up"


def check_totals(port: int, event: int, answers: list[Answer]) -> None:
    """Exactly TICKETS sales numbered 1..TICKETS, every other buyer refused as sold out,
    no 5xx, and the holders the server lists are exactly the buyers it said yes to."""
    assert len(answers) == BUYERS
    counts = statuses(answers)
    assert counts == {201: TICKETS, 409: BUYERS - TICKETS}, (
        counts,
        [a for a in answers if a.status not in (201, 409)][:3],
    )
    sold = {a.body["ticket"]: a.buyer for a in answers if a.status == 201}
    assert sorted(sold) == list(range(1, TICKETS + 1))  # distinct, none missing
    assert {a.body["error"] for a in answers if a.status == 409} == {"sold_out"}
    base = f"http://127.0.0.1:{port}"
    event_now = requests.get(f"{base}/events/{event}", timeout=10).json()
    assert (event_now["sold"], event_now["remaining"]) == (TICKETS, 0)
    holders = requests.get(f"{base}/events/{event}/tickets", timeout=10).json()["tickets"]
    assert {t["ticket"]: t["buyer"] for t in holders} == sold
    assert [t["ticket"] for t in holders] == list(range(1, TICKETS + 1))
    # The server said each ticket left (count - number) behind it.
    assert all(
        a.body["remaining"] == TICKETS - a.body["ticket"] for a in answers if a.status == 201
    )


def test_1000_buyers_at_once_get_exactly_100_tickets(tickets, database_url):
    proc, port = tickets(database_url)
    event = new_event(port)
    watcher = Watcher(port, event)
    buyers = [f"buyer-{n:04d}" for n in range(BUYERS)]
    started = time.monotonic()
    answers = asyncio.run(crowd(port, event, buyers, seconds=60, during=watcher))
    took = time.monotonic() - started
    check_totals(port, event, answers)
    assert all(a.tries == 1 for a in answers)
    watcher.check()
    assert not watcher.failures, watcher.failures[:3]
    print(f"{BUYERS} buyers on {database_url.partition(':')[0]}: {took:.2f} s")
    proc.popen.terminate()
    assert proc.finish()[0] == 0


def worker_pids(master: int) -> list[int]:
    """The master's children (its workers), from /proc."""
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(pid) for pid in text.split()]


def test_a_worker_killed_mid_sale_loses_no_ticket_and_sells_none_twice(tickets, database_url):
    proc, port = tickets(database_url)
    event = new_event(port)
    workers = worker_pids(proc.popen.pid)
    assert len(workers) == 4
    killed: list[int] = []

    async def kill_one_midway(answers: list[Answer]) -> None:
        while len(answers) < BUYERS // 5:  # a fifth answered: the rest are in the workers
            await asyncio.sleep(0.001)
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    buyers = [f"buyer-{n:04d}" for n in range(BUYERS)]
    # Each buyer sends an Idempotency-Key and tries again when its connection breaks, as a
    # careful client does: a sale the dead worker committed comes back to its buyer.
    answers = asyncio.run(
        crowd(port, event, buyers, keys=True, retries=20, seconds=60, during=kill_one_midway)
    )
    assert killed, "the buyers were done before a fifth of them had answers"
    check_totals(port, event, answers)
    retried = [a for a in answers if a.tries > 1]
    replayed = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    print(f"killed {killed[0]}: {len(retried)} buyers retried, {len(replayed)} got a replay")
    proc.expect_stderr(rf"worker \d+ \(pid {killed[0]}\) was killed by signal 9", timeout=10)
    deadline = time.monotonic() + 5
    while (now := worker_pids(proc.popen.pid)) and (len(now) < 4 or killed[0] in now):
        assert time.monotonic() < deadline, f"not replaced: {now}"
        time.sleep(0.05)
    proc.popen.terminate()
    assert proc.finish()[0] == 0
