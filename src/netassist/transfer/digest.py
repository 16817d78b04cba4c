"""Digests for transfers: which algorithms there are, of a file's first bytes (what resume
compares), and on a second thread while the data moves.

Two algorithms, named as the protocol names them: ``blake3`` (the default of protocol version
2; the ``blake3`` package, Rust bindings: 0.26-0.35 CPU-seconds per GiB on this project's
bench machine, where SHA-256 takes 1.0-1.2) and ``sha256`` (version 1's only one, and for
people who compare against published checksums). Where the blake3 wheel is missing,
:func:`available` offers SHA-256 alone and the command line says so in one line.

Hashing in the loop that moves the data would slow it down, and both hashers release the GIL,
so a second thread hashes while the data moves: a :class:`BackgroundHasher` takes blocks from
a loop that receives them, a :class:`HashRange` reads a file range on its own while
``sendfile`` moves the same range.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import IO, Protocol

BLAKE3 = "blake3"
SHA256 = "sha256"
ALGORITHMS = (BLAKE3, SHA256)  # every algorithm the protocol names, the preferred first
MISSING_NOTICE = (
    "the blake3 package is not installed here: digests are SHA-256 (slower; "
    "pip install blake3 brings the faster one)"
)


class Hasher(Protocol):
    """What a digest object offers (hashlib's and blake3's alike)."""

    def update(self, data, /) -> object:
        """Add bytes."""

    def hexdigest(self) -> str:
        """The digest so far, in hex."""


_blake3_constructor: object = None  # looked up on first use: None (not yet), False (missing)


def _blake3():
    global _blake3_constructor
    if _blake3_constructor is None:
        try:
            from blake3 import blake3
        except ImportError:
            blake3 = False
        _blake3_constructor = blake3
    return _blake3_constructor or None


def available() -> tuple[str, ...]:
    """The algorithms this installation can compute, the preferred first."""
    return ALGORITHMS if _blake3() is not None else (SHA256,)


def new(algorithm: str) -> Hasher:
    """A fresh hasher for ``algorithm`` (one of :func:`available`; ValueError otherwise)."""
    if algorithm == SHA256:
        import hashlib  # here: a BLAKE3 session never needs it

        return hashlib.sha256()
    if algorithm == BLAKE3 and (constructor := _blake3()) is not None:
        return constructor()
    raise ValueError(f"no digest {algorithm!r} here")


def of(algorithm: str, data) -> str:
    """The hex digest of ``data`` (bytes or a buffer)."""
    return function(algorithm)(data)


def function(algorithm: str) -> Callable[[object], str]:
    """A function from bytes (or a buffer) to their hex digest by ``algorithm``, for callers
    that hash many small files (it costs one call each)."""
    if algorithm == BLAKE3 and (constructor := _blake3()) is not None:
        return lambda data: constructor(data).hexdigest()
    if algorithm == SHA256:
        import hashlib

        sha256 = hashlib.sha256
        return lambda data: sha256(data).hexdigest()
    raise ValueError(f"no digest {algorithm!r} here")


BLOCK = 1 << 20  # a block received from the network (hashed on the other thread)
# Reading a file to hash it: a block that stays in the core's cache between the copy out of
# the page cache and the hash. With 1 MiB blocks the server's hashing thread spent 1.82
# CPU-seconds per cold GiB sent, with 128 KiB 1.41 (64 KiB no better); bench/README.md.
HASH_BLOCK = 128 << 10
POOL = 8  # blocks in flight between the moving loop and the hashing thread
THREAD_THRESHOLD = 8 << 20  # below this a thread costs more than it saves


def prefix_digest(handle: IO[bytes], length: int, algorithm: str = SHA256) -> Hasher:
    """A hasher of ``algorithm`` fed with the first ``length`` bytes of an open file (fewer
    if the file is shorter); the caller may go on updating it."""
    digest = new(algorithm)
    handle.seek(0)
    left = length
    while left > 0:
        block = handle.read(min(HASH_BLOCK, left))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    return digest


class BackgroundHasher:
    """Hashes blocks on its own thread, in the order they are given.

    Blocks come from a pool of :data:`POOL` and return to it once hashed, so memory stays
    bounded and a fast producer waits for the hash instead of outrunning it."""

    def __init__(self, hasher) -> None:
        self._hasher = hasher
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        for _ in range(POOL):
            self._free.put(bytearray(BLOCK))
        self._thread = threading.Thread(target=self._run, name="netassist-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            block, count = item
            self._hasher.update(memoryview(block)[:count])
            self._free.put(block)

    def block(self) -> bytearray:
        """A block to receive into (waits while every block is still being hashed)."""
        return self._free.get()

    def hash(self, block: bytearray, count: int) -> None:
        """Hash the first ``count`` bytes of ``block``, which belongs to the hasher again."""
        self._full.put((block, count))

    def finish(self) -> None:
        """Wait until every block given has been hashed."""
        self._full.put(None)
        self._thread.join()


def positional_reads() -> bool:
    """Whether this system reads a file at an offset without moving its position
    (``os.pread``; Windows has none), which :class:`HashRange` needs."""
    return hasattr(os, "pread")


class HashRange:
    """Hashes ``length`` bytes of the open file ``fd`` from ``offset`` on its own thread
    (``os.preadv`` into a reused block, or ``os.pread`` where there is no ``preadv``, so the
    file position of ``fd`` is left alone). Only where :func:`positional_reads` is true."""

    def __init__(self, fd: int, offset: int, length: int, hasher) -> None:
        self._fd = fd
        self._offset = offset
        self._length = length
        self._hasher = hasher
        self._hashed = 0
        self._error: OSError | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="netassist-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        block = bytearray(HASH_BLOCK)
        view = memoryview(block)
        position, left = self._offset, self._length
        # Looked up here, not at import: preadv is missing on some systems (pread then does).
        preadv = getattr(os, "preadv", None)
        try:
            while left > 0 and not self._cancelled:
                want = min(HASH_BLOCK, left)
                if preadv is not None:
                    count = preadv(self._fd, [view[:want]], position)
                else:
                    chunk = os.pread(self._fd, want, position)
                    count = len(chunk)
                    view[:count] = chunk
                if not count:
                    return  # the file shrank: the caller sees fewer bytes hashed
                self._hasher.update(view[:count])
                position += count
                left -= count
                self._hashed += count
        except OSError as exc:
            self._error = exc

    def cancel(self) -> None:
        """Stop after the block being hashed (what was hashed is then incomplete)."""
        self._cancelled = True

    def wait(self) -> int:
        """Wait for the thread; returns how many bytes were hashed (OSError passes on)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hashed
