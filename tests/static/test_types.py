"""Content types and their charset labels."""

from __future__ import annotations

import pytest

from netassist.static.types import check_charset, content_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html"),
        ("page.HTM", "text/html"),
        ("feed.xml", "text/xml"),
        ("logo.svg", "image/svg+xml"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("photo.png", "image/png"),
        ("no-suffix", "application/octet-stream"),
    ],
)
def test_pages_that_declare_their_own_encoding_are_not_labelled(name, expected):
    assert content_type(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=gbk"),
        ("notes.txt", "text/plain; charset=gbk"),
        ("feed.xml", "text/xml; charset=gbk"),
        ("photo.png", "image/png"),
    ],
)
def test_a_named_charset_labels_all_text(name, expected):
    assert content_type(name, "gbk") == expected


@pytest.mark.parametrize(
    ("name", "says"),
    [("rot13", "not a text encoding"), ("base64", "not a text encoding"), ("nope", "unknown")],
)
def test_only_text_encodings_are_charsets(name, says):
    with pytest.raises(ValueError, match=says):
        check_charset(name)
    assert check_charset("GB18030") == "GB18030"
