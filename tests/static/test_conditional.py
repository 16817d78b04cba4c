"""Validators, conditional requests and ranges: the rules alone, without a server."""

from __future__ import annotations

import os
from email.utils import formatdate

import pytest

from netassist.static.conditional import (
    Unsatisfiable,
    etag_for,
    if_range_matches,
    none_match,
    not_modified_since,
    parse_ranges,
)


@pytest.fixture
def st(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    return os.stat(path)


def test_etag_is_strong_and_changes_with_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    first = etag_for(os.stat(path))
    path.write_bytes(b"three")
    assert first.startswith('"') and first != etag_for(os.stat(path))


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("", False),
    ],
)
def test_if_none_match_uses_weak_comparison(header, matches):
    assert none_match(header, '"abc"') is matches


def test_if_modified_since(st):
    assert not_modified_since(formatdate(st.st_mtime + 10, usegmt=True), st)
    assert not not_modified_since(formatdate(st.st_mtime - 10, usegmt=True), st)
    assert not not_modified_since("not a date", st)


def test_if_range_needs_a_strong_match_or_the_exact_date(st):
    tag = etag_for(st)
    assert if_range_matches(tag, tag, st)
    assert not if_range_matches("W/" + tag, tag, st)
    assert if_range_matches(formatdate(int(st.st_mtime), usegmt=True), tag, st)
    assert not if_range_matches(formatdate(int(st.st_mtime) - 1, usegmt=True), tag, st)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", [(0, 0)]),
        ("bytes=0-99", [(0, 99)]),
        ("bytes=0-1000", [(0, 99)]),
        ("bytes=99-", [(99, 99)]),
        ("bytes=-1", [(99, 99)]),
        ("bytes=-1000", [(0, 99)]),
        ("bytes=10-19,30-39", [(10, 19), (30, 39)]),
        ("bytes=30-39, 10-19", [(10, 19), (30, 39)]),
        ("bytes=0-10,5-20", [(0, 20)]),
        ("bytes=0-9,10-19", [(0, 19)]),
        ("bytes=200-300,0-0", [(0, 0)]),
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("bytes=", None),
        ("bytes=" + ",".join(f"{i}-{i}" for i in range(0, 40, 2)), None),
    ],
)
def test_parse_ranges(header, expected):
    assert parse_ranges(header, 100) == expected


@pytest.mark.parametrize(
    "header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=500-600,700-"]
)
def test_unsatisfiable_ranges(header):
    with pytest.raises(Unsatisfiable):
        parse_ranges(header, 100)
