"""SHA-256 of a file's first bytes: what the server announces and what resume compares."""

from __future__ import annotations

import hashlib
from typing import IO

BLOCK = 1 << 20


def prefix_digest(handle: IO[bytes], length: int):
    """A sha256 object fed with the first ``length`` bytes of an open file (fewer if the
    file is shorter); the caller may go on updating it."""
    digest = hashlib.sha256()
    handle.seek(0)
    left = length
    while left > 0:
        block = handle.read(min(BLOCK, left))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    return digest
