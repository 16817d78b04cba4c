"""What the assistant prints: datagrams and streams as escaped text, hex dumps or raw bytes.

Data goes to stdout, status lines (listening, connected, closed) to stderr, so stdout can be
piped or redirected and still hold only what the peers sent.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import BinaryIO, TextIO

from netassist.wire.codecs import StreamDecoder, check_encoding, show_bytes
from netassist.wire.hexdump import hexdump

SHOW_MODES = ("text", "hex", "both", "raw")
#: A tagged line is shown at this length even without its newline, so memory stays bounded.
MAX_LINE = 64 * 1024


def clock(ts: float) -> str:
    """Local wall-clock time with milliseconds, ``HH:MM:SS.mmm``."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


class Display:
    """Formats received data for a person (``text``, ``hex``, ``both``) or a pipe (``raw``).

    Safe to call from several threads: each call writes whole lines under one lock.
    """

    def __init__(
        self,
        show: str = "text",
        encoding: str = "utf-8",
        out: BinaryIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        if show not in SHOW_MODES:
            raise ValueError(f"show must be one of {SHOW_MODES}")
        self.show = show
        self.encoding = check_encoding(encoding)
        self._out = out if out is not None else sys.stdout.buffer
        self._err = err if err is not None else sys.stderr
        self._term_encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        self._lock = threading.Lock()
        self._decoders: dict[object, StreamDecoder] = {}
        self._offsets: dict[object, int] = {}
        self._tags: dict[object, str] = {}
        # Per tagged stream: the text of its unfinished line, and when that last grew.
        self._partial: dict[object, tuple[str, float]] = {}

    def _write(self, text: str, flush: bool = True) -> None:
        self._out.write(text.encode(self._term_encoding, "backslashreplace"))
        if flush:
            self._out.flush()

    def status(self, message: str) -> None:
        """One status line on stderr."""
        with self._lock:
            print(message, file=self._err, flush=True)

    def flush(self) -> None:
        """Push out what :meth:`datagram` wrote with ``flush=False``."""
        with self._lock:
            self._out.flush()

    def datagram(
        self, ts: float, label: str, peer: str, data: bytes, *, flush: bool = True
    ) -> None:
        """Show one datagram: a timestamped header, then its text and/or hex dump.

        ``flush=False`` leaves the output buffered until :meth:`flush`, for bursts.
        """
        with self._lock:
            if self.show == "raw":
                self._out.write(data)
                if flush:
                    self._out.flush()
                return
            head = f"[{clock(ts)}] {label} {peer} ({len(data)} bytes)"
            if self.show == "hex":
                self._write(f"{head}:\n{hexdump(data)}", flush)
            elif self.show == "both":
                self._write(f"{head}: {show_bytes(data, self.encoding)}\n{hexdump(data)}", flush)
            else:
                self._write(f"{head}: {show_bytes(data, self.encoding)}\n", flush)

    def stream(self, key: object, data: bytes, tag: str | None = None) -> None:
        """Show the next chunk of a stream; ``tag`` (``[addr:port]``) prefixes each line.

        With a tag, text is shown by whole lines: a line that arrives in pieces waits for
        its end (see :meth:`flush_idle` and :meth:`end_stream` for one that never ends).
        """
        with self._lock:
            if self.show == "raw":
                self._out.write(data)
                self._out.flush()
                return
            parts = []
            if self.show in ("text", "both"):
                decoder = self._decoders.get(key)
                if decoder is None:
                    decoder = self._decoders[key] = StreamDecoder(self.encoding)
                text = decoder.feed(data)
                if tag is not None:
                    text = self._whole_lines(key, tag, text)
                parts.append(text)
            if self.show in ("hex", "both"):
                offset = self._offsets.get(key, 0)
                self._offsets[key] = offset + len(data)
                dump = hexdump(data, offset)
                if tag is not None:
                    dump = "".join(f"{tag} {line}\n" for line in dump.splitlines())
                parts.append(dump)
            self._write("".join(parts))

    def _whole_lines(self, key: object, tag: str, text: str) -> str:
        self._tags[key] = tag
        start, _since = self._partial.pop(key, ("", 0.0))
        *lines, rest = (start + text).split("\n")
        if len(rest) >= MAX_LINE:
            lines.append(rest)
            rest = ""
        if rest:
            self._partial[key] = (rest, time.monotonic())
        return "".join(f"{tag} {line}\n" for line in lines)

    def flush_idle(self, wait: float) -> float | None:
        """Show each unfinished tagged line that has not grown for ``wait`` seconds.

        Returns in how many seconds the next one will be due (``None``: none is waiting),
        for a caller that calls this again then.
        """
        with self._lock:
            now = time.monotonic()
            due = [key for key, (_rest, since) in self._partial.items() if now - since >= wait]
            if due:
                self._write("".join(self._take_partial(key) for key in due))
            if not self._partial:
                return None
            oldest = min(since for _rest, since in self._partial.values())
            return max(0.0, oldest + wait - now)

    def _take_partial(self, key: object, more: str = "") -> str:
        rest = self._partial.pop(key, ("", 0.0))[0] + more
        return f"{self._tags[key]} {rest}\n" if rest else ""

    def end_stream(self, key: object) -> None:
        """Forget a finished stream, flushing any character or line it left incomplete."""
        with self._lock:
            decoder = self._decoders.pop(key, None)
            self._offsets.pop(key, None)
            if decoder is not None and self.show in ("text", "both"):
                rest = decoder.feed(b"", final=True)
                if key in self._tags:
                    rest = self._take_partial(key, rest)
                    del self._tags[key]
                if rest:
                    self._write(rest if rest.endswith("\n") else rest + "\n")
