"""Validators, conditional requests and byte ranges (RFC 9110 sections 8.8, 13 and 14).

Pure functions over header values and a file's stat: no I/O, so every rule is tested alone.
"""

from __future__ import annotations

import functools
import os
from email.utils import formatdate, parsedate_to_datetime

MAX_RANGES = 16  # more than this many ranges in one request is treated as abuse: ignored


def etag_for(st: os.stat_result, variant: str = "") -> str:
    """A strong ETag from inode, size and modification time in nanoseconds."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}{variant}"'


def last_modified(st: os.stat_result) -> str:
    """The Last-Modified date of a file."""
    return _http_date(int(st.st_mtime))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str, etag: str) -> bool:
    """If-None-Match: True when the client's copy is current (weak comparison; ``*``)."""
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in _etags(header))


def _parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def not_modified_since(header: str, st: os.stat_result) -> bool:
    """If-Modified-Since: True when the file has not changed since that date."""
    since = _parse_date(header)
    return since is not None and int(st.st_mtime) <= since


def if_range_matches(header: str, etag: str, st: os.stat_result) -> bool:
    """If-Range: a strong ETag must match exactly, a date must equal Last-Modified."""
    header = header.strip()
    if header.startswith('"'):
        return header == etag
    if header.startswith("W/"):
        return False  # weak validators never satisfy If-Range
    since = _parse_date(header)
    return since is not None and int(st.st_mtime) == int(since)


class Unsatisfiable(Exception):
    """No requested range overlaps the representation: answer 416."""


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=`` ranges as (start, end inclusive), merged and sorted; None to ignore the
    header (not bytes, malformed, too many); Unsatisfiable when none overlaps the file."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges: list[tuple[int, int]] = []
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    for part in parts:
        part = part.strip()
        first, dash, last = part.partition("-")
        if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
            return None
        if first == "":
            if last == "":
                return None
            length = int(last)
            if length == 0:
                continue
            ranges.append((max(0, size - length), size - 1))
            continue
        start = int(first)
        if last != "" and int(last) < start:
            return None  # malformed: the whole header is ignored
        if start >= size:
            continue  # this one cannot be satisfied; another may
        end = size - 1 if last == "" else int(last)
        ranges.append((start, min(end, size - 1)))
    if not ranges:
        raise Unsatisfiable
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
