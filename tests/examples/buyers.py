"""Many buyers at once, as asyncio clients: a bounded load for the tickets tests.

Every buyer opens its own connection first; when all are connected (or have failed to),
they send their ``POST /events/<id>/buy`` in the same instant, so the server gets the
whole crowd at once rather than a queue. A buyer whose connection breaks before a whole
answer comes back tries again (with the same idempotency key, if it has one) until its
time runs out, as a careful client would. Everything stops by itself at ``deadline``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Answer:
    """One buyer's last answer (status None: none came), and how many tries it took."""

    buyer: str
    status: int | None = None
    body: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    tries: int = 0


async def request(
    host: str,
    port: int,
    method: str,
    path: str,
    payload: dict | None = None,
    headers: dict[str, str] | None = None,
    *,
    connected: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 20.0,
) -> tuple[int, dict, dict[str, str]]:
    """One HTTP/1.1 request on its own connection; (status, JSON body, headers). Raises
    OSError or asyncio.IncompleteReadError if the connection breaks before a whole answer.
    ``connected`` is awaited between connecting and sending (the starting line)."""
    body = json.dumps(payload).encode() if payload is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if payload is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        if connected is not None:
            await connected()
        writer.write(head + body)
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers.get("content-length", "0"))
        data = await asyncio.wait_for(reader.readexactly(length), timeout)
    finally:
        writer.close()
    status = int(status_line.split(" ", 2)[1])
    kind = answer_headers.get("content-type", "")
    return status, json.loads(data) if kind.startswith("application/json") else {}, answer_headers


async def _buy(
    host: str,
    port: int,
    event: int,
    answer: Answer,
    key: str | None,
    start: asyncio.Event,
    ready: Callable[[], None],
    deadline: float,
    retries: int,
    done: Callable[[Answer], None],
) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    first = True

    async def connected() -> None:
        nonlocal first
        if first:  # only the first try waits for the crowd; a retry goes at once
            first = False
            ready()
            await start.wait()

    while True:
        answer.tries += 1
        try:
            remaining = max(0.1, deadline - time.monotonic())
            status, body, got = await request(
                host,
                port,
                "POST",
                f"/events/{event}/buy",
                {"buyer": answer.buyer},
                headers,
                connected=connected,
                timeout=remaining,
            )
            answer.status, answer.body, answer.headers, answer.error = status, body, got, None
            break
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
            if first:
                first = False
                ready()  # it failed to connect at all: do not keep the crowd waiting
            if answer.tries > retries or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    done(answer)


async def crowd(
    port: int,
    event: int,
    buyers: list[str],
    *,
    keys: bool = False,
    retries: int = 0,
    seconds: float = 60.0,
    during: Callable[[list[Answer]], Awaitable[None]] | None = None,
    host: str = "127.0.0.1",
) -> list[Answer]:
    """Every buyer in ``buyers`` tries to buy one ticket of ``event`` at the same moment;
    their answers (in the order they came). ``keys``: each sends an Idempotency-Key of its
    own; ``retries``: tries again that often when a connection breaks; ``during`` runs
    alongside (it sees the answers so far) and is cancelled when the buyers are done."""
    deadline = time.monotonic() + seconds
    start = asyncio.Event()
    waiting = len(buyers)
    answers: list[Answer] = []

    def ready() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            start.set()

    tasks = [
        asyncio.create_task(
            _buy(
                host,
                port,
                event,
                Answer(buyer),
                f"key-{buyer}" if keys else None,
                start,
                ready,
                deadline,
                retries,
                answers.append,
            )
        )
        for buyer in buyers
    ]
    side = asyncio.create_task(during(answers)) if during is not None else None
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), max(1.0, deadline - time.monotonic()) + 5)
    finally:
        start.set()
        for task in tasks:
            task.cancel()
        if side is not None:
            await _stop(side)
    return answers


async def _stop(task: asyncio.Task) -> None:
    """Cancel ``task`` until it ends. Once is not always enough: Python 3.11's wait_for
    swallows a cancellation that arrives just as what it waits for completes, and a loop
    around it then goes on (python/cpython#86296)."""
    for _ in range(100):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            return
    raise AssertionError(f"{task!r} does not stop")


def statuses(answers: list[Answer]) -> Counter:
    """How many answers of each status (None: no answer)."""
    return Counter(answer.status for answer in answers)
