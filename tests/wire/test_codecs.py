"""Escaping, hex parsing and payload making: bytes in, bytes or safe text out."""

from __future__ import annotations

import itertools
import re

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


# --- typed input converted as it streams in ------------------------------------------------


def _old_parse_hex(text: str) -> bytes:
    """parse_hex as it was before it worked on pieces: the specification of its results."""
    cleaned = re.sub(r"0[xX](?=[0-9a-fA-F])", "", text)
    cleaned = re.sub(r"[\s:,\-]", "", cleaned)
    if re.search(r"[^0-9a-fA-F]", cleaned) or len(cleaned) % 2:
        raise BadDataError("bad hex")
    return bytes.fromhex(cleaned)


def _reference(maker: PayloadMaker, data: bytes) -> tuple[bytes, bool]:
    """What one line at a time gave (readline, then convert the line): output, and whether a
    line failed (the output stops before that line)."""
    out = b""
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", data):
        try:
            if maker.hex_input:
                out += _old_parse_hex(line.decode("utf-8"))
                continue
            if maker.transcode:
                line = line.decode("utf-8").encode(maker.encoding)
            if maker.crlf and line.endswith(b"\n") and not line.endswith(b"\r\n"):
                line = line[:-1] + b"\r\n"
            out += line
        except (BadDataError, UnicodeError):
            return out, True
    return out, False


def _streamed(maker: PayloadMaker, data: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    out = bytearray()
    converter = maker.converter()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    try:
        for start, stop in itertools.pairwise(bounds):
            converter.feed(data[start:stop], out.extend)
        converter.end(out.extend)
    except BadDataError:
        return bytes(out), True
    return bytes(out), False


_HEX_TYPING = st.text(alphabet="0123456789abcdefABCDEFxX0 :,-\t\r\n", max_size=60) | st.text(
    alphabet="0x1f z中\n", max_size=20
)
_CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@given(_HEX_TYPING, _CUTS)
def test_hex_in_pieces_gives_what_whole_lines_gave(text, cuts):
    maker = PayloadMaker(hex_input=True)
    assert _streamed(maker, text.encode(), cuts) == _reference(maker, text.encode())


@given(st.text(alphabet="ab中文\r\n😀é", max_size=40), _CUTS, st.booleans())
@pytest.mark.parametrize("encoding", ["gbk", "latin-1", "utf-8"])
def test_text_in_pieces_gives_what_whole_lines_gave(encoding, text, cuts, crlf):
    maker = PayloadMaker(encoding=encoding, crlf=crlf)
    assert _streamed(maker, text.encode(), cuts) == _reference(maker, text.encode())


@given(
    st.binary(max_size=40).map(lambda b: b.replace(b"\x01", b"\r").replace(b"\x02", b"\n")), _CUTS
)
def test_crlf_on_raw_bytes_in_pieces(data, cuts):
    maker = PayloadMaker(crlf=True)
    assert _streamed(maker, data, cuts) == _reference(maker, data)


def test_a_cr_at_the_end_of_one_chunk_and_lf_at_the_start_of_the_next_stay_one_line_end():
    for maker in (PayloadMaker(crlf=True), PayloadMaker(crlf=True, encoding="gbk")):
        assert _streamed(maker, b"a\r\nb\n", [2]) == (b"a\r\nb\r\n", False)
        assert _streamed(maker, b"a\r\n\nb", [2, 3]) == (b"a\r\n\r\nb", False)


def test_a_0x_prefix_cut_between_chunks_is_still_a_prefix():
    maker = PayloadMaker(hex_input=True)
    for cuts in ([1], [2], [3], [1, 2], [4], [5]):
        assert _streamed(maker, b"0x0x41 0x42\n", cuts) == (b"AB", False), cuts


def test_lines_before_a_mistake_go_out_and_the_bad_line_sends_nothing():
    sent: list[bytes] = []
    converter = PayloadMaker(hex_input=True).converter()
    with pytest.raises(BadDataError, match="'z' is not a hex digit in '43 zz'"):
        converter.feed(b"41 42\n43 zz\n44\n", sent.append)
    assert sent == [b"AB"]


def test_a_long_bad_line_is_quoted_in_part():
    with pytest.raises(BadDataError) as caught:
        PayloadMaker(hex_input=True).from_line(b"41" * 1000 + b"q\n")
    message = str(caught.value)
    assert "'q' is not a hex digit" in message
    assert len(message) < 200 and message.endswith("...'")


def test_a_huge_line_is_converted_with_little_held_back():
    """However long a line is, the converter passes its output on in bounded pieces."""
    from netassist.wire.codecs import LINE_HOLD

    for maker, unit, expected in (
        (PayloadMaker(hex_input=True), b"0x41 ", b"A"),
        (PayloadMaker(encoding="gbk"), "中".encode(), "中".encode("gbk")),
    ):
        converter = maker.converter()
        biggest = 0

        def take(out: bytes) -> None:
            nonlocal biggest
            biggest = max(biggest, len(out))

        for _ in range(64):
            converter.feed(unit * 8192, take)
        converter.end(take)
        assert biggest <= LINE_HOLD + len(expected) * 8192


@pytest.mark.parametrize("name", ["rot13", "base64", "zlib", "undefined", "idna", "punycode"])
def test_codecs_that_are_not_usable_text_encodings_are_refused(name):
    with pytest.raises(UsageError, match="is not a text encoding netassist can use"):
        check_encoding(name)


_AWKWARD = ["utf-16", "utf-32", "utf-7", "cp424", "hz", "iso2022_jp", "cp500", "gbk"]


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=7))
@pytest.mark.parametrize("encoding", _AWKWARD)
def test_any_bytes_show_in_any_accepted_encoding_without_control_characters(encoding, data, step):
    check_encoding(encoding)
    decoder = StreamDecoder(encoding)
    streamed = "".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step))
    streamed += decoder.feed(b"", final=True)
    for shown in (show_bytes(data, encoding), streamed):
        assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in shown)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in shown)


def test_bytes_below_0x80_that_do_not_decode_show_as_hex():
    assert show_bytes(b"\x77", "cp424") == "\\x77"
