"""Small files kept in memory with their response headers, checked against a fresh stat.

Most requests to a static server ask again for the same small files (pages, scripts,
icons). Opening, reading and closing one, and formatting its ETag, Last-Modified and
Content-Type, costs several times what sending it does. Like nginx's ``open_file_cache``,
:class:`SmallFileCache` keeps them, but every hit is checked against the stat the request
made anyway (device, inode, size, modification and change times in nanoseconds), so a
changed file is read again.

A file modified within the last :data:`SETTLE_SECONDS` is never cached: two writes inside
one tick of the file-system clock can leave the same size and times, and only a file that
has been quiet for longer than that tick can be trusted by its stat (git's "racy clean"
rule). The cache is bounded in bytes; the oldest entries go first.
"""

from __future__ import annotations

import os
import threading
import time

SETTLE_SECONDS = 2.0
MAX_FILE = 64 * 1024
MAX_BYTES = 32 << 20


def stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What must be unchanged for a cached copy to still be the file."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CachedFile:
    """One file's bytes and the headers of its plain 200 response."""

    __slots__ = ("checked", "data", "gzip_candidate", "headers", "key")

    def __init__(
        self,
        key: tuple[int, int, int, int, int],
        data: bytes,
        headers: list[tuple[str, str]],
        gzip_candidate: bool,
    ) -> None:
        self.key = key
        self.data = data
        #: Every header of the 200 response, Content-Length included.
        self.headers = headers
        #: Whether a client accepting gzip would get a compressed copy instead.
        self.gzip_candidate = gzip_candidate
        #: The second (monotonic) in which no precompressed sibling was seen.
        self.checked = int(time.monotonic())


class SmallFileCache:
    """Path -> :class:`CachedFile`, bounded by ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_file: int = MAX_FILE) -> None:
        self.max_bytes = max_bytes
        self.max_file = max_file
        self._entries: dict[str, CachedFile] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, path: str, st: os.stat_result) -> CachedFile | None:
        """The cached copy of ``path`` if ``st`` (a fresh stat of it) says it is current."""
        entry = self._entries.get(path)
        if entry is None or entry.key != stat_key(st):
            return None
        return entry

    def may_keep(self, st: os.stat_result) -> bool:
        """Whether a file with this stat may be cached at all."""
        if st.st_size > self.max_file:
            return False
        settled = time.time() - SETTLE_SECONDS
        return st.st_mtime < settled and st.st_ctime < settled

    def put(self, path: str, entry: CachedFile) -> None:
        """Keep ``entry`` for ``path``, dropping the oldest entries to stay in bounds."""
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._size -= len(old.data)
            while self._entries and self._size + len(entry.data) > self.max_bytes:
                oldest = next(iter(self._entries))
                self._size -= len(self._entries.pop(oldest).data)
            self._entries[path] = entry
            self._size += len(entry.data)

    def __len__(self) -> int:
        return len(self._entries)
