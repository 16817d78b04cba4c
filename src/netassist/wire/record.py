"""The ``--log`` format: JSON Lines, one record per event, and its reader.

A record looks like::

    {"time": "2026-11-27T08:01:02.123+00:00", "ts": 1795766462.123456, "proto": "tcp",
     "event": "data", "direction": "in", "conn": 1, "local": "127.0.0.1:9000",
     "peer": "127.0.0.1:53412", "length": 5, "hex": "68656c6c6f", "text": "hello"}

``event`` is ``open``, ``data`` or ``close``; ``direction`` is ``in`` (from the peer) or ``out``
(to it); ``conn`` numbers the TCP connections of one run (0 for UDP). ``hex`` is the exact
payload and ``text`` its decoding for reading, with undecodable bytes as ``\\xNN``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

from netassist.errors import BadDataError, explain
from netassist.wire.codecs import decode_lossless

EVENTS = ("open", "data", "close")
DIRECTIONS = ("in", "out")
#: The longest line a log can hold: a 256 KiB read as hex and as escaped text, with room.
MAX_RECORD = 4 * 1024 * 1024
T = TypeVar("T")
#: Records are stamped after 1970 and before the year 5000.
_LATEST = 95_617_584_000.0


@dataclass(frozen=True, slots=True)
class Record:
    """One logged event."""

    ts: float
    proto: str
    event: str
    direction: str
    local: str
    peer: str
    data: bytes = b""
    conn: int = 0

    def to_json(self, encoding: str = "utf-8") -> str:
        """The record as one JSON line (without the newline)."""
        time = datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {
                "time": time,
                "ts": round(self.ts, 6),
                "proto": self.proto,
                "event": self.event,
                "direction": self.direction,
                "conn": self.conn,
                "local": self.local,
                "peer": self.peer,
                "length": len(self.data),
                "hex": self.data.hex(),
                "text": decode_lossless(self.data, encoding),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        """Parse one JSON line; raise ``ValueError`` or ``KeyError`` when it is not a record."""
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        data = bytes.fromhex(obj.get("hex", ""))
        if obj["event"] not in EVENTS or obj["direction"] not in DIRECTIONS:
            raise ValueError("unknown event or direction")
        if obj["proto"] not in ("tcp", "udp"):
            raise ValueError("unknown proto")
        ts = float(obj["ts"])
        if not 0 <= ts < _LATEST:
            raise ValueError("time out of range")
        return cls(
            ts=ts,
            proto=obj["proto"],
            event=obj["event"],
            direction=obj["direction"],
            local=str(obj.get("local", "")),
            peer=str(obj.get("peer", "")),
            data=data,
            conn=int(obj.get("conn", 0)),
        )


class Recorder:
    """Appends records to a JSON Lines file, safely from several threads.

    Each record is flushed as it is written, so ``tail -f`` follows the log and a crash
    leaves only whole lines behind.
    """

    def __init__(self, path: str | Path, encoding: str = "utf-8") -> None:
        self.path = Path(path)
        self.encoding = encoding
        self._lock = threading.Lock()
        try:
            self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise explain(exc, f"opening log {self.path}") from None

    def write(self, record: Record) -> None:
        """Append one record."""
        line = record.to_json(self.encoding) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:  # a full disk: say which file, not "internal error"
                raise explain(exc, f"writing log {self.path}") from None

    def close(self) -> None:
        """Close the file; later writes are an error."""
        with self._lock:
            try:
                self._file.close()
            except OSError:
                # Only a line whose write already failed (and was reported) is left to
                # flush: reporting it again would hide that first, clearer error.
                pass

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield the records of a log file in order; a bad line raises :class:`BadDataError`.

    Anything that is not a log (a binary file, JSON of another shape) is a bad line, read
    no further than :data:`MAX_RECORD` bytes.
    """
    return read_json_lines(
        path, Record.from_json, MAX_RECORD, "not a netassist log record (was it written by --log?)"
    )


def read_json_lines(
    path: str | Path, parse: Callable[[str], T], limit: int, not_one: str
) -> Iterator[T]:
    """Yield ``parse(line)`` for each non-blank line of the file at ``path``, in order.

    A line longer than ``limit`` bytes, not UTF-8, or that ``parse`` refuses (``ValueError``,
    ``KeyError``, ``TypeError``, ``OverflowError``) raises :class:`BadDataError`:
    ``PATH:LINE: not_one``. Lines end at ``\\n`` only, as JSON Lines do.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise explain(exc, f"opening log {path}") from None
    with handle:
        number = 0
        while line := handle.readline(limit + 1):
            number += 1
            if not line.strip():
                continue
            try:
                if len(line) > limit:
                    raise ValueError("line too long")
                yield parse(line.decode("utf-8"))
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                raise BadDataError(f"{path}:{number}: {not_one}") from None
