"""Turning user input into payload bytes, and payload bytes into safe text.

Everything a peer sends is untrusted: before it reaches a terminal, undecodable bytes become
``\\xNN`` and control or invisible formatting characters become escapes, so a peer cannot move
the cursor, change the title or hide text (ESC sequences, bidi overrides).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from netassist.errors import BadDataError, UsageError

# C0 and C1 controls, DEL, soft hyphen, bidi marks and overrides, zero-width and other
# invisible format characters, line/paragraph separators, BOM, and lone surrogates (which
# is how bytes that did not decode are carried: see UNDECODABLE).
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
    if 0xDC00 <= code <= 0xDCFF:  # a byte that did not decode
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _carry_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """Like ``surrogateescape``, but for every byte: EBCDIC, HZ or UTF-16 cut in the middle
    fail on bytes below 0x80 too, and a peer's bytes must never stop the display."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC00 + byte) for byte in exc.object[exc.start : exc.end]), exc.end


#: The error handler that turns each undecodable byte into U+DC00 + byte (``\\xNN`` when shown).
UNDECODABLE = "netassist.undecodable"
codecs.register_error(UNDECODABLE, _carry_undecodable)
_TRY_ENCODINGS = "try utf-8, gbk, gb18030, big5, shift_jis, latin-1"


def check_encoding(name: str) -> str:
    """Return the canonical name of a text encoding, or raise :class:`UsageError`.

    Codecs that are not text encodings (``rot13``, ``base64``) and those that cannot show
    undecodable bytes (``idna``, ``undefined``) are refused here, not met later as crashes.
    """
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise UsageError(f"unknown encoding {name!r} ({_TRY_ENCODINGS})") from None
    try:
        codecs.getincrementalencoder(canonical)("strict").encode("a\n", True)
        b"a\n\xff".decode(canonical, UNDECODABLE)
        "\udcff".encode(canonical, "backslashreplace")
    except (LookupError, UnicodeError, TypeError, ValueError):
        raise UsageError(
            f"{name!r} is not a text encoding netassist can use ({_TRY_ENCODINGS})"
        ) from None
    return canonical


def _decode_shown(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding, UNDECODABLE)
    except UnicodeError:  # a codec that raises by itself (UTF-16 without its byte-order mark)
        return "".join(chr(0xDC00 + byte) for byte in data)


def escape_text(text: str, *, keep_lines: bool = False) -> str:
    """Escape what must not reach a terminal raw.

    With ``keep_lines`` newlines and tabs stay as they are (a stream shown as it flows);
    otherwise they are escaped too, so one payload shows on one line.
    """
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape_char, text)


def show_bytes(data: bytes, encoding: str = "utf-8", *, keep_lines: bool = False) -> str:
    """Decode ``data`` for display: text as text, every other byte as an escape."""
    return escape_text(_decode_shown(data, encoding), keep_lines=keep_lines)


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
        self._encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)(UNDECODABLE)
        self._pending_cr = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        """Return the displayable text for ``data`` (and anything held back before it)."""
        try:
            text = self._decoder.decode(data, final)
        except UnicodeError:  # see _decode_shown; start again with the next chunk
            self._decoder.reset()
            text = _decode_shown(data, self._encoding)
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text.endswith("\r") and not final:
            self._pending_cr = True
            text = text[:-1]
        return escape_text(text.replace("\r\n", "\n"), keep_lines=True)


_HEX_PREFIX = re.compile(r"0[xX](?=[0-9a-fA-F])")
_HEX_SEPARATORS = re.compile(r"[\s:,\-]")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
#: How much of a line an error message quotes.
_EXCERPT = 80


class _HexLine:
    """Hex text to bytes, for one line at a time that may arrive in pieces of any size.

    Only a digit waiting for its pair and the last two characters (which may be a ``0x``
    whose meaning depends on what follows) are held between pieces, so memory stays small
    however long the line is.
    """

    def __init__(self) -> None:
        self._carry = ""
        self._nibble = ""
        self._excerpt = ""

    def feed(self, text: str, line_end: bool) -> bytes:
        """The bytes of ``text``; ``line_end`` says the line is complete with it."""
        if len(self._excerpt) <= _EXCERPT:
            self._excerpt += text[: _EXCERPT + 1 - len(self._excerpt)]
        text = self._carry + text
        kept, pos = [], 0
        for match in _HEX_PREFIX.finditer(text):
            kept.append(text[pos : match.start()])
            pos = match.end()
        # A prefix match needs the character after "0x", so every match found is certain;
        # the last two characters wait, unless a match already took them.
        end = len(text) if line_end else max(pos, len(text) - 2)
        kept.append(text[pos:end])
        self._carry = text[end:]
        cleaned = _HEX_SEPARATORS.sub("", "".join(kept))
        bad = _NOT_HEX.search(cleaned)
        if bad:
            raise BadDataError(
                f"bad hex: {escape_text(bad.group())!r} is not a hex digit in {self._shown()!r}"
            )
        digits = self._nibble + cleaned
        usable = len(digits) - len(digits) % 2
        self._nibble = digits[usable:]
        if line_end:
            if self._nibble:
                raise BadDataError(
                    f"bad hex: odd number of digits in {self._shown()!r} (two digits per byte)"
                )
            self._excerpt = ""
        return bytes.fromhex(digits[:usable])

    def _shown(self) -> str:
        if len(self._excerpt) > _EXCERPT:
            return escape_text(self._excerpt[:_EXCERPT].strip()) + "..."
        return escape_text(self._excerpt.strip())


def parse_hex(text: str) -> bytes:
    """Parse hex the way people write it: ``48 65 6c``, ``48656c``, ``0x48 0x65``, ``48:65``.

    Raises :class:`BadDataError` naming the first character that is not hex.
    """
    return _HexLine().feed(text, line_end=True)


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
        out = bytearray()
        converter = self.converter()
        converter.feed(line, out.extend)
        converter.end(out.extend)
        return bytes(out)

    def converter(self) -> InputConverter:
        """A converter for a stream of typed input (see :class:`InputConverter`)."""
        return InputConverter(self)

    def copy(self, read: Callable[[], bytes], send: Callable[[bytes], None]) -> None:
        """Pass each chunk from ``read()`` to ``send`` until ``read()`` gives ``b""``,
        converted as this maker says (raw bytes go through untouched)."""
        if not self.line_mode:
            while chunk := read():
                send(chunk)
            return
        converter = self.converter()
        while chunk := read():
            converter.feed(chunk, send)
        converter.end(send)

    @staticmethod
    def typed_text(line: bytes) -> str:
        """What the user typed, as text (terminals and pipes here speak UTF-8)."""
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8() from None


def _not_utf8() -> BadDataError:
    return BadDataError(
        "input is not UTF-8 text; leave out --encoding/--hex to send bytes as they are"
    )


#: The output of a line is held until the line ends, so a line with a mistake in it sends
#: nothing; a line longer than this goes out in pieces instead (memory stays bounded).
LINE_HOLD = 64 * 1024


class InputConverter:
    """Turns typed input that streams in (hex, CRLF, another encoding) into wire bytes.

    Input is taken in chunks of any size and converted line by line as
    :meth:`PayloadMaker.from_line` would, holding back no more than :data:`LINE_HOLD` of
    output, a character cut between chunks and a few hex digits, however long a line is.
    """

    def __init__(self, maker: PayloadMaker) -> None:
        self._hex = _HexLine() if maker.hex_input else None
        self._crlf = maker.crlf and not maker.hex_input
        self._lines = maker.hex_input or maker.transcode
        self._encoding = maker.encoding
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._encoder = codecs.getincrementalencoder(maker.encoding)("strict")
        self._after_cr = False
        self._held = bytearray()

    def feed(self, data: bytes, send: Callable[[bytes], None]) -> None:
        """Convert ``data`` and pass the result to ``send`` (in one call, when any).

        On a mistake (bad hex, text the encoding cannot hold) the complete lines before it
        are passed on first, then :class:`BadDataError` is raised.
        """
        out = bytearray()
        try:
            if self._lines:
                self._feed_lines(data, out)
            else:
                out += self._fix_crlf_bytes(data)
        finally:
            if out:
                send(bytes(out))

    def end(self, send: Callable[[bytes], None]) -> None:
        """The input ended: pass on what is held, or raise if it ends mid-character or digit."""
        out = bytearray()
        try:
            if self._lines:
                out += self._held + self._convert(b"", line_end=True, final=True)
                self._held.clear()
        finally:
            if out:
                send(bytes(out))

    def _feed_lines(self, data: bytes, out: bytearray) -> None:
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            stop = len(data) if newline < 0 else newline + 1
            self._held += self._convert(data[start:stop], line_end=newline >= 0)
            if newline >= 0 or len(self._held) >= LINE_HOLD:
                out += self._held
                self._held.clear()
            start = stop

    def _convert(self, piece: bytes, line_end: bool, final: bool = False) -> bytes:
        try:
            text = self._decoder.decode(piece, final)
        except UnicodeDecodeError:
            raise _not_utf8() from None
        if self._hex is not None:
            return self._hex.feed(text, line_end)
        if self._crlf and text.endswith("\n"):
            before = text[-2:-1] or ("\r" if self._after_cr else "")
            if before != "\r":
                text = text[:-1] + "\r\n"
        if text:
            self._after_cr = text.endswith("\r")
        try:
            return self._encoder.encode(text, final)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise BadDataError(
                f"{escape_text(bad)!r} cannot be written in {self._encoding} "
                "(choose another --encoding)"
            ) from None

    def _fix_crlf_bytes(self, data: bytes) -> bytes:
        if not self._crlf or not data:
            return data
        head = b""
        after_cr, self._after_cr = self._after_cr, data.endswith(b"\r")
        if after_cr and data.startswith(b"\n"):  # the CR came at the end of the last chunk
            head, data = b"\n", data[1:]
        return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
