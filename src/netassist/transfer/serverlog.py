"""The file server's lines: one per connection, transfer and refusal, and its own troubles.

By default they go to the ``netassist.files`` logger, for a program that uses the server as
a library. ``netassist files serve`` gives a stream instead, written to directly in the
format of the other servers' logs: through :mod:`logging` a line cost 20 to 25 us, which a
folder of small files felt (server CPU +40% against no log at all, for 4 KiB files); written
here it costs about 2 us.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TextIO

LOGGER = "netassist.files"


class ServerLog:
    """Writes the server's lines to ``stream``, or to the ``netassist.files`` logger when
    there is none. ``quiet`` keeps only warnings. Thread-safe."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._logger = logging.getLogger(LOGGER)
        self._lock = threading.Lock()
        self._second = -1
        self._stamp = ""

    def info(self, message: str, *args: object) -> None:
        """A connection, a transfer or a refusal."""
        if self._stream is None:
            self._logger.info(message, *args)
        elif not self._quiet:
            self._write("INFO", message % args if args else message)

    def warning(self, message: str, *args: object) -> None:
        """Something the operator must see: a disk full, a file that cannot be written."""
        if self._stream is None:
            self._logger.warning(message, *args)
        else:
            self._write("WARNING", message % args if args else message)

    def _write(self, level: str, text: str) -> None:
        now = time.time()
        second = int(now)
        with self._lock:
            if second != self._second:  # the date is formatted once a second, not per line
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            line = f"[{self._stamp},{int((now - second) * 1000):03d}] {level} {LOGGER}: {text}\n"
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stderr must not stop a transfer
