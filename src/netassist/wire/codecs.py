"""Turning user input into payload bytes, and payload bytes into safe text.

Everything a peer sends is untrusted: before it reaches a terminal, undecodable bytes become
``\\xNN`` and control or invisible formatting characters become escapes, so a peer cannot move
the cursor, change the title or hide text (ESC sequences, bidi overrides).
"""

from __future__ import annotations

import codecs
import re

from netassist.errors import BadDataError, UsageError

# C0 and C1 controls, DEL, soft hyphen, bidi marks and overrides, zero-width and other
# invisible format characters, line/paragraph separators, BOM, and lone surrogates (which
# is how `surrogateescape` carries bytes that did not decode).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that did not decode
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def check_encoding(name: str) -> str:
    """Return the canonical name of a text encoding, or raise :class:`UsageError`."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UsageError(
            f"unknown encoding {name!r} (try utf-8, gbk, gb18030, big5, shift_jis, latin-1)"
        ) from None


def escape_text(text: str, *, keep_lines: bool = False) -> str:
    """Escape what must not reach a terminal raw.

    With ``keep_lines`` newlines and tabs stay as they are (a stream shown as it flows);
    otherwise they are escaped too, so one payload shows on one line.
    """
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape_char, text)


def show_bytes(data: bytes, encoding: str = "utf-8", *, keep_lines: bool = False) -> str:
    """Decode ``data`` for display: text as text, every other byte as an escape."""
    return escape_text(data.decode(encoding, "surrogateescape"), keep_lines=keep_lines)


def decode_lossless(data: bytes, encoding: str = "utf-8") -> str:
    """Decode for a log record: valid text as is, undecodable bytes as ``\\xNN`` escapes.

    The record also keeps the payload as hex, so nothing is lost; this field is for reading.
    """
    return data.decode(encoding, "backslashreplace")


class StreamDecoder:
    """Decode a byte stream for display, chunk by chunk, without splitting characters.

    A multi-byte character cut across two reads is held back until its rest arrives.
    CRLF line ends show as plain line ends, so an HTTP exchange reads naturally.
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)("surrogateescape")
        self._pending_cr = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        """Return the displayable text for ``data`` (and anything held back before it)."""
        text = self._decoder.decode(data, final)
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text.endswith("\r") and not final:
            self._pending_cr = True
            text = text[:-1]
        return escape_text(text.replace("\r\n", "\n"), keep_lines=True)


def parse_hex(text: str) -> bytes:
    """Parse hex the way people write it: ``48 65 6c``, ``48656c``, ``0x48 0x65``, ``48:65``.

    Raises :class:`BadDataError` naming the first character that is not hex.
    """
    cleaned = re.sub(r"0[xX](?=[0-9a-fA-F])", "", text)
    cleaned = re.sub(r"[\s:,\-]", "", cleaned)
    bad = re.search(r"[^0-9a-fA-F]", cleaned)
    shown = escape_text(text.strip())
    if bad:
        raise BadDataError(f"bad hex: {escape_text(bad.group())!r} is not a hex digit in {shown!r}")
    if len(cleaned) % 2:
        raise BadDataError(f"bad hex: odd number of digits in {shown!r} (two digits per byte)")
    return bytes.fromhex(cleaned)


def encode_text(text: str, encoding: str = "utf-8") -> bytes:
    """Encode user text for the wire, or raise :class:`BadDataError` saying which character."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise BadDataError(
            f"{escape_text(bad)!r} cannot be written in {encoding} (choose another --encoding)"
        ) from None


class PayloadMaker:
    """Turn what the user typed (a line, or an argument) into the bytes to send.

    ``hex_input`` reads hex; ``crlf`` ends lines with CRLF like ``nc -C``; ``encoding`` is the
    wire encoding of text. ``transcode`` says whether typed bytes must be re-encoded (the
    terminal speaks UTF-8; when the wire encoding is UTF-8 too, bytes pass through untouched,
    binary included).
    """

    def __init__(self, *, hex_input: bool = False, crlf: bool = False, encoding: str = "utf-8"):
        self.hex_input = hex_input
        self.crlf = crlf
        self.encoding = check_encoding(encoding)
        self.transcode = self.encoding != "utf-8"

    @property
    def line_mode(self) -> bool:
        """Whether stdin must be read line by line (otherwise it is copied as raw bytes)."""
        return self.hex_input or self.crlf or self.transcode

    def from_text(self, text: str) -> bytes:
        """Bytes for a message given as text (an argument)."""
        if self.hex_input:
            return parse_hex(text)
        if self.crlf:
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        return encode_text(text, self.encoding)

    def from_line(self, line: bytes) -> bytes:
        """Bytes for one line read from stdin (line end included, when it had one)."""
        if self.hex_input:
            return parse_hex(self.typed_text(line))
        if self.transcode:
            line = encode_text(self.typed_text(line), self.encoding)
        if self.crlf and line.endswith(b"\n") and not line.endswith(b"\r\n"):
            line = line[:-1] + b"\r\n"
        return line

    @staticmethod
    def typed_text(line: bytes) -> str:
        """What the user typed, as text (terminals and pipes here speak UTF-8)."""
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadDataError(
                "input is not UTF-8 text; leave out --encoding/--hex to send bytes as they are"
            ) from None
