"""Three ``netassist chat listen`` processes exchange 1,000 messages through a relay that drops
20%, duplicates 5% and reorders: each is shown exactly once, in each sender's order, at
every peer, and every log holds all 1,000."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest

from tests.chat.relay import LossyRelay
from tests.conftest import NETASSIST

pytestmark = pytest.mark.integration

NAMES = ["ana", "bo", "cy"]
TOTAL = 1000


def records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_thousand_messages_through_loss_duplicates_and_reordering(spawn, tmp_path):
    relay = LossyRelay(3, drop=0.2, duplicate=0.05, delay=0.02, seed=18)
    procs = []
    try:
        for i, name in enumerate(NAMES):
            procs.append(
                spawn(
                    [
                        *NETASSIST,
                        "chat",
                        "listen",
                        "--name",
                        name,
                        *relay.peers_of(i),
                        "--log",
                        str(tmp_path / f"{name}.jsonl"),
                        "--send-stdin",
                        "--timeout",
                        "300",
                    ],
                    stdin=subprocess.PIPE,
                )
            )
        for proc in procs:
            proc.expect_stderr("listening on udp")
        for proc in procs:
            proc.expect_stderr(r"joined from", timeout=20)
            proc.expect_stderr(r"joined from", timeout=20)
        sent = {name: [] for name in NAMES}
        for n in range(TOTAL):
            name = NAMES[n % 3]
            sent[name].append(f"{name} {n} «{'x' * (n % 50)}»")
        for i, name in enumerate(NAMES):
            procs[i].popen.stdin.write("".join(t + "\n" for t in sent[name]).encode())
            procs[i].popen.stdin.flush()

        def all_shown() -> bool:
            return all(
                len(records(proc.stdout_so_far())) >= TOTAL - len(sent[name])
                for proc, name in zip(procs, NAMES, strict=True)
            )

        wait_until(all_shown, 240, "every message at every peer")

        def all_delivered() -> bool:
            for name in NAMES:
                log = records((tmp_path / f"{name}.jsonl").read_bytes())
                done = [r for r in log if r["type"] == "delivery"]
                if len(done) < len(sent[name]):
                    return False
            return True

        wait_until(all_delivered, 120, "every acknowledgement")
        for proc in procs:
            proc.popen.send_signal(signal.SIGINT)
        results = [proc.finish(30) for proc in procs]
    finally:
        relay.close()

    assert relay.dropped > 0 and relay.duplicated > 0
    for (code, out, err), name in zip(results, NAMES, strict=True):
        assert code == 0, err
        shown = records(out)
        assert len(shown) == TOTAL - len(sent[name]), f"{name} showed {len(shown)}"
        assert len({r["id"] for r in shown}) == len(shown)  # exactly once
        for other in NAMES:
            if other != name:
                assert [r["text"] for r in shown if r["sender"] == other] == sent[other]
        log = records((tmp_path / f"{name}.jsonl").read_bytes())
        messages = [r for r in log if r["type"] == "message"]
        assert Counter(r["text"] for r in messages) == Counter(
            t for texts in sent.values() for t in texts
        )
        assert len({r["id"] for r in messages}) == TOTAL
        deliveries = [r for r in log if r["type"] == "delivery"]
        assert [r["state"] for r in deliveries] == ["delivered"] * len(sent[name])
        # The log's own order per sender is the order shown.
        for other in NAMES:
            assert [r["text"] for r in messages if r["sender"] == other] == sent[other]
