"""The chat's history: events as records, records as JSON Lines (``--log``) and as lines a
person reads (``netassist chat history``, the terminal).

A record is a JSON object with ``time`` (ISO 8601, UTC), ``ts`` (epoch seconds) and ``type``:

``message``
    ``id``, ``sender``, ``sender_id``, ``address``, ``recipients`` (names), ``private``,
    ``plain``, ``text``, ``state``: ``received``, ``sending`` (ours, until a ``delivery``
    record says more) or ``unacknowledged`` (from or only to plain peers).
``delivery``
    ``id``, ``state`` (``delivered`` or ``undelivered``), ``delivered`` (names) and
    ``undelivered`` (``[{"name", "why"}]``): how one of our messages ended.
``event``
    ``event`` (``joined``, ``rejoined``, ``left``, ``renamed``, ``unanswered``), ``name``,
    ``address`` and, as fits, ``reason``, ``old_name``.

One writer thread writes the log, one whole line per record, so records from the receiving
thread and the user's never interleave. JSON escapes every line break a reader might split
on (``\\n``, ``\\r``, U+2028, U+2029, U+0085 and the other separators), so no text inside a
message can forge a line.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from netassist.chat.protocol import (
    Delivered,
    Event,
    Joined,
    JoinUnanswered,
    Left,
    PeerInfo,
    Received,
    Rejoined,
    Renamed,
    Sent,
    Undelivered,
    format_address,
)
from netassist.errors import explain
from netassist.wire.codecs import escape_text
from netassist.wire.record import read_json_lines

#: Characters ``str.splitlines`` breaks on that JSON leaves raw (it escapes those below 0x20).
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
#: The longest record line a history file may hold (a 60 KiB message, escaped, with room).
MAX_RECORD = 1024 * 1024


def to_json(record: dict) -> str:
    """One record as one line of JSON (no newline), safe from line-break forgery."""
    line = json.dumps(record, ensure_ascii=False)
    for char, escaped in _LINE_BREAKS.items():
        line = line.replace(char, escaped)
    return line


def _stamp(ts: float) -> dict:
    return {
        "time": datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds"),
        "ts": round(ts, 6),
    }


def _names(peers: tuple[PeerInfo, ...]) -> list[str]:
    return [peer.name for peer in peers]


def to_record(event: Event, ts: float, me: PeerInfo) -> dict | None:
    """The record of ``event`` (``None`` for events the history does not keep)."""
    record = _stamp(ts)
    if isinstance(event, Received):
        record.update(
            type="message",
            id=event.id,
            sender=event.sender.name,
            sender_id=event.sender.id,
            address=event.sender.where,
            recipients=[me.name],
            private=event.private,
            plain=event.plain,
            text=event.text,
            state="unacknowledged" if event.plain else "received",
        )
    elif isinstance(event, Sent):
        record.update(
            type="message",
            id=event.id,
            sender=me.name,
            sender_id=me.id,
            address=me.where,
            recipients=_names(event.recipients) + _names(event.plain),
            private=event.private,
            plain=not event.recipients,
            text=event.text,
            state="sending" if event.recipients else "unacknowledged",
        )
    elif isinstance(event, Delivered):
        record.update(
            type="delivery", id=event.id, state="delivered", delivered=_names(event.recipients)
        )
        record["undelivered"] = []
    elif isinstance(event, Undelivered):
        record.update(
            type="delivery",
            id=event.id,
            state="undelivered",
            delivered=_names(event.delivered),
            undelivered=[{"name": peer.name, "why": why} for peer, why in event.missing],
        )
    elif isinstance(event, Joined | Rejoined | Left | Renamed):
        record.update(type="event", name=event.peer.name, address=event.peer.where)
        if isinstance(event, Joined):
            record["event"] = "joined"
        elif isinstance(event, Rejoined):
            record.update(event="rejoined", old_id=event.old.id)
        elif isinstance(event, Left):
            record.update(event="left", reason=event.reason)
        else:
            record.update(event="renamed", old_name=event.old_name)
    elif isinstance(event, JoinUnanswered):
        record.update(
            type="event", event="unanswered", name="", address=format_address(event.address)
        )
    else:
        return None
    return record


def _clock(record: dict) -> str:
    ts = record.get("ts")
    if not isinstance(ts, int | float) or not 0 <= ts < 95_617_584_000:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _shown(value: object) -> str:
    return escape_text(str(value))


def outcome(delivery: dict | None) -> str:
    """A message's delivery mark: ``✓ delivered``, ``✗ undelivered to NAME (why)``."""
    if delivery is None:
        return ""
    if delivery.get("state") == "delivered":
        return "✓ delivered"
    missing = delivery.get("undelivered") or []
    parts = [
        f"{_shown(item.get('name'))} ({_shown(item.get('why'))})"
        for item in missing
        if isinstance(item, dict)
    ]
    return "✗ undelivered to " + ", ".join(parts)


def format_record(record: dict, delivery: dict | None = None, *, dated: bool = False) -> str:
    """One line for a person: time, who, what, every peer-given string escaped.

    A message of ours with no ``delivery`` yet is marked as still sending.
    """
    when = _clock(record)
    if dated and isinstance(record.get("ts"), int | float) and when != "--:--:--":
        when = time.strftime("%Y-%m-%d ", time.localtime(record["ts"])) + when
    kind = record.get("type")
    if kind == "message":
        who = _shown(record.get("sender"))
        if record.get("plain") and record.get("sender_id"):
            who += " → plain peers (sent as bare text, not acknowledged)"
        elif record.get("plain"):
            who += " (plain peer: no delivery guarantee)"
        elif record.get("private"):
            to = ", ".join(_shown(n) for n in record.get("recipients") or [])
            who += f" → {to} (private)"
        line = f"[{when}] {who}: {_shown(record.get('text'))}"
        if record.get("state") == "sending":
            line += "  " + (outcome(delivery) or "… sending")
        return line
    if kind == "delivery":
        return f"[{when}] {outcome(record)}: message {_shown(record.get('id'))}"
    return _format_event(record, when)


def format_delivery(message: dict, delivery: dict) -> str:
    """The line that tells how one of our messages ended, with the start of its text."""
    text = str(message.get("text", ""))
    excerpt = text if len(text) <= 40 else text[:39] + "…"
    return f"[{_clock(delivery)}] {outcome(delivery)}: {escape_text(excerpt)}"


def _format_event(record: dict, when: str) -> str:
    kind = record.get("type")
    if kind == "event":
        name, where = _shown(record.get("name")), _shown(record.get("address"))
        event = record.get("event")
        if event == "joined":
            return f"[{when}] * {name} joined from {where}"
        if event == "rejoined":
            return f"[{when}] * {name} rejoined from {where} (it restarted)"
        if event == "left":
            why = "quit" if record.get("reason") == "quit" else "went silent"
            return f"[{when}] * {name} left ({why})"
        if event == "renamed":
            return f"[{when}] * {_shown(record.get('old_name'))} is now called {name}"
        if event == "unanswered":
            return f"[{when}] ! nothing answers at {where} (is netassist chat running there?)"
    return f"[{when}] ? {_shown(to_json(record))}"


class ChatLog:
    """Appends records to a JSON Lines file from one writer thread; :meth:`write` only
    queues, so the receiving thread never waits for the disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file: IO[str] = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            raise explain(exc, f"opening log {self.path}") from None
        self._queue: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._write_all, name="chat-log", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Queue one record for the file."""
        self._queue.put(record)

    def _write_all(self) -> None:
        while (record := self._queue.get()) is not None:
            if self.error:
                continue
            try:
                self._file.write(to_json(record) + "\n")
                self._file.flush()  # whole lines on disk as they come: tail -f follows
            except OSError as exc:
                self.error = str(explain(exc, f"writing log {self.path}"))

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._queue.put(None)
        self._thread.join(30)
        with contextlib.suppress(OSError):
            self._file.close()


def _parse_record(line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict) or record.get("type") not in ("message", "delivery", "event"):
        raise ValueError("not a chat record")
    return record


def read_log(path: str | Path) -> Iterator[dict]:
    """The records of a history file in order; a line that is not one raises
    :class:`BadDataError` naming it."""
    return read_json_lines(
        path,
        _parse_record,
        MAX_RECORD,
        "not a chat history record (was it written by netassist chat --log?)",
    )


def history_lines(path: str | Path, last: int | None = None) -> list[str]:
    """The readable lines of a history file: each message with how it ended (a delivery
    record is folded into its message's line, not shown apart); the ``last`` N messages
    and events when given."""
    records = list(read_log(path))
    deliveries = {str(r.get("id")): r for r in records if r.get("type") == "delivery"}
    lines = [
        format_record(r, deliveries.get(str(r.get("id"))), dated=True)
        for r in records
        if r.get("type") != "delivery"
    ]
    return lines[-last:] if last else lines
