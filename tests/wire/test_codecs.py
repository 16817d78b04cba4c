"""Escaping, hex parsing and payload making: bytes in, bytes or safe text out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netassist.errors import BadDataError, UsageError
from netassist.wire.codecs import (
    PayloadMaker,
    StreamDecoder,
    check_encoding,
    escape_text,
    parse_hex,
    show_bytes,
)


def test_escape_sequences_are_shown_not_obeyed():
    assert show_bytes(b"\x1b[2J\x1b]0;owned\x07") == "\\x1b[2J\\x1b]0;owned\\x07"


def test_invalid_utf8_bytes_are_escaped_and_text_kept():
    assert show_bytes("你好".encode() + b"\xff\xfe!") == "你好\\xff\\xfe!"


def test_bidi_override_and_zero_width_are_escaped():
    assert escape_text("a\u202eb\u200bc") == "a\\u202eb\\u200bc"


def test_newlines_escaped_for_one_line_and_kept_for_streams():
    assert escape_text("a\nb\tc") == "a\\nb\\tc"
    assert escape_text("a\nb\tc\x00", keep_lines=True) == "a\nb\tc\\x00"


def test_gbk_text_shows_as_chinese():
    assert show_bytes("中文测试".encode("gbk"), "gbk") == "中文测试"


def test_stream_decoder_joins_characters_split_across_reads():
    data = "你好".encode()
    decoder = StreamDecoder("utf-8")
    shown = "".join(decoder.feed(data[i : i + 1]) for i in range(len(data)))
    assert shown == "你好"


def test_stream_decoder_turns_crlf_into_newline_even_when_split():
    decoder = StreamDecoder()
    assert (
        decoder.feed(b"GET / HTTP/1.0\r") + decoder.feed(b"\nHost: x\r\n")
        == "GET / HTTP/1.0\nHost: x\n"
    )
    assert StreamDecoder().feed(b"a\rb", final=True) == "a\\rb"


@given(st.binary())
def test_shown_bytes_never_contain_control_characters(data):
    shown = show_bytes(data, "utf-8")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("48656c6c6f", b"Hello"),
        ("48 65 6c 6c 6f", b"Hello"),
        ("0x48 0x65", b"He"),
        ("48:65-6C,6c\n", b"Hell"),
        ("", b""),
    ],
)
def test_parse_hex_accepts_common_spellings(text, expected):
    assert parse_hex(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"), [("zz", "'z' is not a hex digit"), ("abc", "odd number")]
)
def test_parse_hex_rejects_with_a_reason(text, needle):
    with pytest.raises(BadDataError, match=needle):
        parse_hex(text)


def test_unknown_encoding_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown encoding 'nope'"):
        check_encoding("nope")


def test_payload_maker_transcodes_typed_utf8_into_gbk():
    maker = PayloadMaker(encoding="gbk")
    assert maker.line_mode
    assert maker.from_line("你好\n".encode()) == "你好\n".encode("gbk")
    assert maker.from_text("你好") == "你好".encode("gbk")


def test_payload_maker_passes_bytes_through_for_utf8():
    maker = PayloadMaker()
    assert not maker.line_mode
    assert maker.from_line(b"\xff\x00raw\n") == b"\xff\x00raw\n"


def test_payload_maker_crlf_and_hex():
    assert PayloadMaker(crlf=True).from_line(b"GET /\n") == b"GET /\r\n"
    assert PayloadMaker(crlf=True).from_text("a\nb") == b"a\r\nb"
    assert PayloadMaker(hex_input=True).from_line(b"de ad be ef\n") == b"\xde\xad\xbe\xef"


def test_payload_maker_refuses_text_the_encoding_cannot_hold():
    with pytest.raises(BadDataError, match="cannot be written in iso8859-1"):
        PayloadMaker(encoding="latin-1").from_text("中")
