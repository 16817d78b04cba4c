"""The size limits of a request, apart from the parser that enforces them, so the settings
(``config.py``) and the command line can read their defaults without loading the parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of a request; each one exceeded has its own status."""

    max_request_line: int = 8190  # 414 beyond
    max_header_bytes: int = 32768  # 431 beyond (the whole head)
    max_header_field: int = 8190  # 431 beyond (one field line; as nginx and gunicorn)
    max_header_count: int = 100  # 431 beyond
    max_body: int | None = 1 << 30  # 413 beyond; None for no limit
    max_chunk_line: int = 4096  # a chunk-size line with its extensions
    max_trailer_bytes: int = 8192
