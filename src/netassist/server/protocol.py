"""HTTP/1.1 for a server, sans-IO: bytes in, request events out; response framing out.

Theory of operation
-------------------
A :class:`ServerConnection` is fed whatever arrived on the socket (``receive_data``; ``b""``
means the peer closed its side) and asked for events (``next_event``) until it answers
``NEED_DATA``. Events are a :class:`Request` (the head), then :class:`Data` pieces of the
body, then ``END_OF_MESSAGE`` (a request without a body, ``has_body`` false, is complete
with its head: no body events follow). After that it answers ``PAUSED`` until the response to that
request has been framed to the end and :meth:`ServerConnection.start_next_cycle` is called;
pipelined requests wait in the buffer meanwhile, so answers always go out in order.

Reading a head is split between us and llhttp (through ``httptools``). We find the head's
end (``CRLF CRLF``) ourselves, so the limits are exact and enforced before any parser holds
the bytes: a request line too long is 414, a head too large or with too many fields is 431,
and a slow client cannot grow a buffer without bound. llhttp then parses and validates the
complete head (it is the fastest strict parser available to Python, about 2-3 times faster
than our regex prototype on browser-sized heads; see ``bench/``). Its verdicts are turned
into statuses, and the rules it does not enforce are ours: exactly one Host in HTTP/1.1,
whose value is ``uri-host [":" port]``; a target in one of the four forms, ``*`` for OPTIONS
only, and an absolute-form target's authority in place of the Host field; no second field
of those defined as one value (Content-Type, Authorization...); a Transfer-Encoding that is
exactly ``chunked`` (else 501), none of it in HTTP/1.0; no version but 1.0 and 1.1 (505);
a size limit per field (431) and for the body (413). Any method that is a token is taken:
llhttp knows a fixed table of them, so GET stands in for another one while it parses.

Bodies are framed here, not by llhttp, so no parser ever reads past the end of a message:
Content-Length counts down; chunked is decoded by a small state machine whose regexes sit
under the RFC 9112 rules they implement. Anything malformed raises :class:`ProtocolError`
carrying the status to answer with; after it the connection is done and must be closed.

Responses are framed the same way: :meth:`ServerConnection.response_head` picks
Content-Length, chunked or close-delimited framing from what the application declared and
what the client speaks, adds ``Date`` and ``Server``, and refuses header names or values that
could split the response. A second response for one request is impossible: the head can be
produced once per cycle, and an error response is only offered while no head has gone out.

This module never touches a socket, a thread or a file: it can be tested and fuzzed with
bytes alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.utils import formatdate

import httptools

from netassist.server.limits import Limits

__all__ = [
    "CLOSED",
    "END_OF_MESSAGE",
    "NEED_DATA",
    "PAUSED",
    "Data",
    "Limits",
    "ProtocolError",
    "Request",
    "ServerConnection",
]

SERVER_NAME = "netassist"


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: More bytes are needed before another event can be produced.
NEED_DATA = _Sentinel("NEED_DATA")
#: The current request is complete; the next waits for the response to finish.
PAUSED = _Sentinel("PAUSED")
#: The peer closed cleanly between requests.
CLOSED = _Sentinel("CLOSED")


class EndOfMessage:
    """The request body is complete (``trailers`` holds any chunked trailer fields)."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.trailers = trailers or []

    def __repr__(self) -> str:
        return f"EndOfMessage(trailers={self.trailers!r})"


END_OF_MESSAGE = EndOfMessage()


class Data:
    """A piece of the request body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class Request:
    """A request head. ``headers`` keep the names and values as they arrived (bytes)."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "has_body",
        "headers",
        "keep_alive",
        "method",
        "target",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        #: Whether body events follow (chunked, or a Content-Length above zero).
        self.has_body = chunked or (content_length is not None and content_length > 0)

    def __repr__(self) -> str:
        fields = len(self.headers)
        return f"Request({self.method} {self.target!r} HTTP/{self.version}, {fields} headers)"


class ProtocolError(Exception):
    """The peer broke HTTP/1.1: answer ``status`` (if no response started) and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


# --- RFC 9110 / 9112 rules used by our own checks --------------------------------------------

# token = 1*tchar ; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA          (RFC 9110 5.6.2)
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE                          (RFC 9110 5.6.4)
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# chunk = chunk-size [ chunk-ext ] CRLF ; chunk-size = 1*HEXDIG                     (RFC 9112 7.1)
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )       (RFC 9112 7.1.1)
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
# Host = uri-host [ ":" port ]                                                   (RFC 9110 7.2)
# uri-host = IP-literal / IPv4address / reg-name                              (RFC 3986 3.2.2)
# IP-literal = "[" ( IPv6address / IPvFuture ) "]" ; IPvFuture = "v" 1*HEXDIG "." 1*( ... )
# reg-name = *( unreserved / pct-encoded / sub-delims ), less the comma: a comma is how two
#            Host lines look once joined into one, and no DNS name holds one.
_REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*"
_IP_LITERAL = rb"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
_HOST_VALUE = re.compile(rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb")(?::[0-9]*)?")
# absolute-form = absolute-URI; for http(s): scheme "://" authority path-abempty [ "?" query ]
_ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)([/?].*)?", re.DOTALL)
# field-line = field-name ":" OWS field-value OWS ; no obs-fold                      (RFC 9112 5)
_FIELD_LINE = re.compile(
    rb"("
    + _TOKEN
    + rb"):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*"
)
# What an application may put in a response head: token names, no CR, LF or NUL in values.
_RESPONSE_FIELDS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n\x00]*\r\n)*")
_STATUS = re.compile(r"([1-5][0-9][0-9]) [^\r\n\x00]*")

# Hop-by-hop fields belong to the server, not the application (PEP 3333).
_HOP_BY_HOP = frozenset(
    {
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NO_BODY_STATUS = frozenset({204, 304})
# Fields the head's checks look at: framing, routing, and the singletons below.
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _EXPECT, _CONNECTION = range(1, 6)
# Fields defined as one value, not a list (RFC 9110 5.3): a second one is 400 (two parts of a
# chain reading different values is how smuggling starts). Each is a bit of a mask.
_SINGLETONS = (
    b"authorization",
    b"content-type",
    b"date",
    b"from",
    b"if-modified-since",
    b"if-range",
    b"if-unmodified-since",
    b"max-forwards",
    b"proxy-authorization",
    b"range",
    b"referer",
    b"user-agent",
)
_FIRST_SINGLETON = 1 << 8
_FIELD_KINDS = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"expect": _EXPECT,
    b"connection": _CONNECTION,
    **{name: _FIRST_SINGLETON << i for i, name in enumerate(_SINGLETONS)},
}
# Field name as received -> its kind (0: none of those), learnt once per spelling (bounded).
# Looked up as received, not lowered: no new bytes per field, and the hash computed here is
# kept by the name for the environ's own lookup of it (wsgi._KEYS).
_KINDS: dict[bytes, int] = {}
_KINDS_LIMIT = 4096


def _kind_of(name: bytes) -> int:
    kind = _FIELD_KINDS.get(name.lower(), 0)
    if len(_KINDS) < _KINDS_LIMIT:
        _KINDS[name] = kind
    return kind


# What may not come in a trailer section (RFC 9110 6.5.1): framing, routing, request
# modifiers, authentication, response control and how to process the content.
_NOT_TRAILERS = frozenset(
    {
        b"age",
        b"authorization",
        b"cache-control",
        b"connection",
        b"content-encoding",
        b"content-length",
        b"content-range",
        b"content-type",
        b"cookie",
        b"date",
        b"expect",
        b"expires",
        b"host",
        b"if-match",
        b"if-modified-since",
        b"if-none-match",
        b"if-range",
        b"if-unmodified-since",
        b"keep-alive",
        b"location",
        b"max-forwards",
        b"pragma",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"range",
        b"retry-after",
        b"set-cookie",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"vary",
        b"www-authenticate",
    }
)
_MINOR_VERSIONS = {0x31: "1.1", 0x30: "1.0"}  # HTTP/1.x by the x
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# Host values found valid, so the regex runs once per value (bounded: clients may invent many).
_GOOD_HOSTS: set[bytes] = set()
_GOOD_HOSTS_LIMIT = 1024

# The current second as floats [start, end) (cheaper to compare than int(time.time())), its date.
_date: tuple[float, float, str] = (0.0, 0.0, "")
_head_cache: dict[tuple, tuple[bytes, int, int, bool]] = {}
_HEAD_CACHE_SIZE = 512


def http_date() -> str:
    """The current time as an HTTP date, recomputed at most once a second."""
    global _date
    now = time.time()
    start, end, text = _date
    if not start <= now < end:
        second = int(now)
        text = formatdate(second, usegmt=True)
        _date = (float(second), float(second + 1), text)
        _head_cache.clear()  # every cached head carries the old Date
    return text


# Their side (reading the request).
_HEAD, _BODY_LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _END, _DONE, _ERROR = range(
    9
)
# Our side (writing the response).
_IDLE, _SENDING, _SENT = range(3)
# Response framing.
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class _HeadCollector:
    """The callbacks llhttp calls while it parses one complete head.

    Only the two that carry data are defined: every callback is a Python call per request,
    and what the others would say follows from the head itself (it ends at its first empty
    line, so a head llhttp accepts is complete; a message without a body is done with it).
    """

    __slots__ = ("headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps trailing OWS; it is not part of the field value (RFC 9112 5).
        if value and value[-1] in (0x20, 0x09):
            value = value.rstrip(b" \t")
        self.headers.append((name, value))


#: The compiled core's parser of common heads (``_speedups.parse_head``) when that core serves
#: this process (``cores.py`` installs it), or None: this module parses every head.
compiled_parse: Callable[[bytes, int, tuple[int, int, int, int]], tuple | None] | None = None


class ServerConnection:
    """The server side of one HTTP/1.1 connection, as a state machine over bytes.

    ``compiled``: the compiled parser of common heads to use, or False for none; by default
    :data:`compiled_parse`. Every other head, and every error, is this module's."""

    def __init__(
        self,
        limits: Limits | None = None,
        server_name: str = SERVER_NAME,
        compiled: Callable | bool | None = None,
    ) -> None:
        self.limits = limits = limits or Limits()
        parse = compiled_parse if compiled is None else compiled or None
        if parse is not None:
            # Instance attributes, so the pure core's connections are as they were: not even
            # one test more per head (which costs hundreds of instructions here).
            self._compiled = parse
            self._limit_values = (
                limits.max_request_line,
                limits.max_header_bytes,
                limits.max_header_field,
                limits.max_header_count,
            )
            self._parse_head = self._parse_compiled  # type: ignore[method-assign]
        # No head this short can break the head or field limits: only longer ones are measured.
        self._short_head = min(limits.max_header_bytes, limits.max_header_field) + 4
        self.server_name = server_name
        self._buffer = bytearray()
        self._their_eof = False
        self._head_scanned = 0  # bytes of an incomplete head already searched
        self._state = _HEAD
        self._remaining = 0  # body bytes left: of the Content-Length, or of this chunk
        self._body_seen = 0
        self._collector = _HeadCollector()
        self._parser: httptools.HttpRequestParser | None = None
        self.request: Request | None = None
        self._our_state = _IDLE
        self._framing = _NO_BODY
        self._to_send = 0
        self._continue_pending = False
        self._host_seen = b"\0"  # the last valid Host value (never a real one at first)
        #: Whether the connection may carry another request after this one.
        self.keep_alive = True

    # --- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` says the peer will send no more."""
        if data:
            self._buffer += data
        else:
            self._their_eof = True

    def receive_head(self, data: bytes) -> Request | None:
        """:meth:`receive_data` for the usual case, a whole request head arriving alone at
        a connection waiting for one: returns the :class:`Request` that :meth:`next_event`
        would. Any other bytes are only buffered (None: ask :meth:`next_event`)."""
        end = data.find(b"\r\n\r\n") + 4
        line_end = data.find(b"\r\n")
        if (
            end != len(data)
            or not line_end  # an empty line first
            or self._state != _HEAD
            or self._buffer
            or end > self._short_head
        ):
            self.receive_data(data)
            return None
        return self._parse_head(data, line_end)  # type: ignore[return-value]

    @property
    def their_eof(self) -> bool:
        """Whether the peer has closed its sending side."""
        return self._their_eof

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buffer)

    def next_event(self) -> object:
        """The next event: a Request, Data, an EndOfMessage, or NEED_DATA / PAUSED / CLOSED.

        Raises :class:`ProtocolError` when the peer broke the protocol.
        """
        state = self._state
        if state == _HEAD:
            return self._read_head()
        if state == _BODY_LENGTH:
            return self._read_length_body()
        if state == _DONE:
            return PAUSED
        if state == _END:
            self._state = _DONE
            return END_OF_MESSAGE
        if state == _ERROR:
            raise ProtocolError(400, "connection already failed")
        return self._read_chunked()

    def _fail(self, status: int, reason: str) -> ProtocolError:
        self._state = _ERROR
        self.keep_alive = False
        return ProtocolError(status, reason)

    def _read_head(self) -> object:
        buffer = self._buffer
        if not buffer:
            if self._their_eof:
                self._state = _ERROR
                return CLOSED
            return NEED_DATA
        limits = self.limits
        scanned = self._head_scanned
        # A server SHOULD ignore at least one empty line before a request-line (RFC 9112 2.2).
        if not scanned and buffer[0] == 0x0D:
            while buffer[:2] == b"\r\n":
                del buffer[:2]
        # Search only what is new (and the 3 bytes before it), so a head that trickles in
        # byte by byte costs linear time, not quadratic.
        end = buffer.find(
            b"\r\n\r\n", scanned - 3 if scanned > 3 else 0, limits.max_header_bytes + 4
        )
        if end < 0:
            return self._head_incomplete(scanned)
        self._head_scanned = 0
        end += 4
        if end == len(buffer):  # the usual case: one whole head, nothing behind it
            head = bytes(buffer)
            buffer.clear()
        else:
            head = bytes(buffer[:end])
            del buffer[:end]
        line_end = head.find(b"\r\n")
        while line_end == 0:  # empty lines that arrived after the first bytes were scanned
            head = head[2:]
            if not head:
                return self._read_head()
            line_end = head.find(b"\r\n")
        # A field longer than its limit needs a head longer than it, too.
        if len(head) > self._short_head:
            self._check_field_lengths(head[line_end + 2 : -4])
        return self._parse_head(head, line_end)

    def _head_incomplete(self, scanned: int) -> object:
        buffer = self._buffer
        limits = self.limits
        # A bare LF can never end this head: fail now rather than wait for the size limit.
        newline = buffer.find(b"\n", scanned)
        while newline >= 0:
            if newline == 0 or buffer[newline - 1] != 0x0D:
                raise self._fail(400, "bare LF in the request head")
            newline = buffer.find(b"\n", newline + 1)
        self._head_scanned = len(buffer)
        if (
            len(buffer) > limits.max_request_line
            and buffer.find(b"\n", 0, limits.max_request_line + 2) < 0
        ):
            raise self._fail(414, "request line too long")
        if len(buffer) > limits.max_header_bytes:
            # Named by what is wrong, however the bytes came: a field line past its own limit
            # within the head's limit is that field's fault (else a 40 kB field said "head"
            # when it came at once and "field" when it came in pieces).
            window = bytes(buffer[: limits.max_header_bytes])
            line_end = window.find(b"\r\n")
            if line_end >= 0:
                self._check_field_lengths(window[line_end + 2 :])
            raise self._fail(431, "request head too large")
        # A field line growing past its own limit fails now, not at the head's.
        line_start = buffer.rfind(b"\r\n") + 2
        if line_start > 1:  # past the request line
            line_length = len(buffer) - line_start - (buffer[-1] == 0x0D)  # its CR may be here
            if line_length > limits.max_header_field:
                raise self._fail(431, "a header field longer than the limit")
        if self._their_eof:
            if not buffer:
                self._state = _ERROR
                return CLOSED
            raise self._fail(400, "connection closed in the middle of a request head")
        return NEED_DATA

    def _parse_compiled(self, head: bytes, line_end: int) -> object:
        """:meth:`_parse_head` with the compiled parser, which takes the common heads and
        leaves every other one (and every error) to this module."""
        parsed = self._compiled(head, line_end, self._limit_values)  # type: ignore[misc]
        if parsed is not None:
            return self.adopt(Request(*parsed))
        return ServerConnection._parse_head(self, head, line_end)

    def _parse_head(self, head: bytes, line_end: int) -> object:
        """Check and parse one complete head (``line_end``: where its request line ends)."""
        limits = self.limits
        if line_end > limits.max_request_line:
            raise self._fail(414, "request line too long")
        # A bare LF anywhere in a head is llhttp's to refuse: it does from httptools 0.6.4
        # (the oldest version we accept; 0.6.0-0.6.3 let "HTTP/1.1\n" and "\r\n\n" pass).
        collector = self._collector
        parser = self._parser or httptools.HttpRequestParser(collector)
        # Until this message is known to have no body, llhttp cannot be given the next head.
        self._parser = None
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            upgrade = True  # Upgrade or CONNECT: served as a plain request, then closed
        except httptools.HttpParserError as exc:
            method = head[: head.find(b" ")]
            if isinstance(exc, httptools.HttpParserInvalidMethodError) and re.fullmatch(
                _TOKEN, method
            ):
                return self._parse_other_method(head, line_end, method)
            raise self._rejection(head, exc) from None
        else:
            upgrade = False
        # llhttp accepted "HTTP/d.d": the digits read as ints cost less than a string or a slice.
        version = _MINOR_VERSIONS.get(head[line_end - 1]) if head[line_end - 3] == 0x31 else None
        if version is None:
            raise self._fail(505, "HTTP version not supported")
        headers = collector.headers
        if len(headers) > limits.max_header_count:
            raise self._fail(431, "too many header fields")

        transfer_encodings = singletons = 0
        close = keep_alive_token = chunked = expect_continue = False
        content_length: int | None = None
        host = None
        kinds = _KINDS
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _kind_of(name)
            if not kind:
                continue
            if kind == _HOST:
                if host is not None:
                    raise self._fail(400, "more than one Host field")
                host = value
            elif kind == _CONNECTION:
                value = value.lower()
                # One token is the usual value (browsers send keep-alive): no list for it.
                if value == b"keep-alive":
                    keep_alive_token = True
                elif value == b"close":
                    close = True
                else:
                    tokens = [t.strip(b" \t") for t in value.split(b",")]
                    close = close or b"close" in tokens or b"upgrade" in tokens
                    keep_alive_token = keep_alive_token or b"keep-alive" in tokens
            elif kind >= _FIRST_SINGLETON:
                if singletons & kind:
                    raise self._fail(400, f"more than one {name.decode('latin-1')} field")
                singletons |= kind
            elif kind == _CONTENT_LENGTH:
                content_length = int(value)  # llhttp allows digits only, and one such field
            elif kind == _TRANSFER_ENCODING:
                transfer_encodings += 1
                if value.strip(b" \t").lower() != b"chunked":
                    raise self._fail(501, "transfer coding not implemented (only chunked is)")
                chunked = True
            else:  # Expect
                expect_continue = value.strip(b" \t").lower() == b"100-continue"
        if chunked or content_length is not None:  # framing rules, for requests with a body
            if transfer_encodings > 1:
                raise self._fail(400, "more than one Transfer-Encoding field")
            if chunked and content_length is not None:
                raise self._fail(400, "both Content-Length and Transfer-Encoding")
            if chunked and version == "1.0":
                raise self._fail(400, "Transfer-Encoding in an HTTP/1.0 request")
            max_body = limits.max_body
            if max_body is not None and content_length is not None and content_length > max_body:
                raise self._fail(413, "request body larger than the limit")
        if host is None:
            if version == "1.1":
                raise self._fail(400, "HTTP/1.1 needs a Host field")
        elif host != self._host_seen:  # one host per connection, usually: compared, not hashed
            if host not in _GOOD_HOSTS:
                self._check_host(host, "Host field")
            self._host_seen = host
        url = collector.url
        if url[0] != 0x2F:  # not origin-form ("/..."): the rarer forms have rules of their own
            headers = self._other_target_form(url, parser.get_method(), headers)

        # HTTP/1.1 persists unless told to close; HTTP/1.0 only when asked (RFC 9112 9.3).
        keep_alive = not (close or upgrade) and (version == "1.1" or keep_alive_token)
        method = parser.get_method()
        expect_continue = expect_continue and version == "1.1"
        request = Request(
            # The most common method first: a comparison costs less than hashing new bytes.
            "GET" if method == b"GET" else _METHODS.get(method) or method.decode("ascii"),
            url,
            version,
            headers,
            keep_alive,
            content_length,
            chunked,
            expect_continue,
        )
        if keep_alive and not chunked and not content_length:
            # No body: llhttp is done with this message and can take the next (else dropped).
            self._parser = parser
            collector.url = b""
            collector.headers = []
        else:
            self._collector = _HeadCollector()
        self.request = request
        self.keep_alive = keep_alive
        self._body_seen = 0
        self._continue_pending = expect_continue and request.has_body
        if chunked:
            self._state = _CHUNK_SIZE
        elif content_length:
            self._state = _BODY_LENGTH
            self._remaining = content_length
        else:
            self._state = _DONE
        return request

    def adopt(self, request: Request, responded: bool = False) -> Request:
        """Make ``request``, a bodiless one that the compiled core parsed, the current one,
        as if this module had parsed it; ``responded``: its whole response went out too."""
        self.request = request
        self.keep_alive = request.keep_alive
        self._body_seen = 0
        self._continue_pending = False
        self._state = _DONE
        if responded:
            self._our_state = _SENT
            self._to_send = 0
        return request

    def _parse_other_method(self, head: bytes, line_end: int, method: bytes) -> object:
        """A head whose method llhttp does not know. llhttp knows a fixed table of methods;
        any token is one (RFC 9110 9.1), and the app decides 405 or 501. GET stands in for
        it while llhttp parses: no method changes how a request's body is framed (CONNECT,
        which llhttp knows, aside)."""
        collector = self._collector
        collector.url = b""
        collector.headers = []
        request = self._parse_head(b"GET" + head[len(method) :], line_end - len(method) + 3)
        request.method = method.decode("ascii")  # type: ignore[attr-defined]
        return request

    def _check_host(self, value: bytes, what: str) -> None:
        """400 unless ``value`` is ``uri-host [":" port]``."""
        if _HOST_VALUE.fullmatch(value) is None:
            raise self._fail(400, f"the {what} is not a host[:port]")
        if len(_GOOD_HOSTS) >= _GOOD_HOSTS_LIMIT:
            _GOOD_HOSTS.clear()
        _GOOD_HOSTS.add(value)

    def _other_target_form(
        self, url: bytes, method: bytes, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Check a target that is not origin-form (RFC 9112 3.2); returns the headers, with
        an absolute-form target's authority in place of the Host field."""
        if url == b"*":
            if method != b"OPTIONS":
                raise self._fail(400, "the asterisk-form target is for OPTIONS only")
            return headers
        if method == b"CONNECT":
            return headers  # authority-form; llhttp checked it, and CONNECT is then closed
        match = _ABSOLUTE_FORM.fullmatch(url)
        if match is None:
            raise self._fail(400, "the target is not /path, an absolute URI or *")
        authority = match.group(2)
        if b"@" in authority:
            raise self._fail(400, "user information in the target (RFC 9110 4.2.4)")
        if not authority and match.group(1).lower() in (b"http", b"https"):
            raise self._fail(400, "an http URI without a host")
        if authority not in _GOOD_HOSTS:
            self._check_host(authority, "target's authority")
        # The target names the host: its authority replaces the Host field (RFC 9112 3.2.2).
        others = [(n, v) for n, v in headers if n.lower() != b"host"]
        return [(b"Host", authority), *others]

    def _check_field_lengths(self, fields: bytes) -> None:
        limit = self.limits.max_header_field
        if any(len(line) > limit for line in fields.split(b"\r\n")):
            raise self._fail(431, "a header field longer than the limit")

    def _rejection(self, head: bytes, exc: Exception) -> ProtocolError:
        """The status for a head llhttp refused."""
        if isinstance(exc, httptools.HttpParserInvalidMethodError):
            if re.fullmatch(_TOKEN, head.split(b" ", 1)[0]):
                return self._fail(501, "method not implemented")
            return self._fail(400, "malformed request line")
        message = str(exc)
        if "HTTP version" in message:
            return self._fail(505, "HTTP version not supported")
        if message.startswith("Request has invalid `Transfer-Encoding`"):
            return self._fail(501, "transfer coding not implemented (only chunked is)")
        return self._fail(400, _llhttp_reason(exc))

    def _read_length_body(self) -> object:
        buffer = self._buffer
        if not buffer:
            if self._their_eof:
                raise self._fail(400, "connection closed before the whole body arrived")
            return NEED_DATA
        take = min(self._remaining, len(buffer))
        data = bytes(buffer[:take])
        del buffer[:take]
        self._remaining -= take
        self._continue_pending = False
        if self._remaining == 0:
            self._state = _END
        return Data(data)

    def _read_chunked(self) -> object:
        buffer = self._buffer
        limits = self.limits
        state = self._state
        self._continue_pending = False
        if state == _CHUNK_DATA:
            if not buffer:
                return self._starved()
            take = min(self._remaining, len(buffer))
            data = bytes(buffer[:take])
            del buffer[:take]
            self._remaining -= take
            if self._remaining == 0:
                self._state = _CHUNK_CRLF
            return Data(data)
        if state == _CHUNK_CRLF:
            if len(buffer) < 2:
                return self._starved()
            if buffer[:2] != b"\r\n":
                raise self._fail(400, "chunk data not followed by CRLF")
            del buffer[:2]
            self._state = _CHUNK_SIZE
            return self._read_chunked()
        if state == _CHUNK_SIZE:
            end = buffer.find(b"\r\n", 0, limits.max_chunk_line + 2)
            if end < 0:
                if buffer.find(b"\n") >= 0:
                    raise self._fail(400, "bare LF in a chunk-size line")
                if len(buffer) > limits.max_chunk_line:
                    raise self._fail(400, "chunk-size line too long")
                return self._starved()
            line = bytes(buffer[:end])
            match = _CHUNK_LINE.fullmatch(line)
            if match is None:
                raise self._fail(400, "malformed chunk-size line")
            del buffer[: end + 2]
            size = int(match.group(1), 16)
            if size == 0:
                self._state = _TRAILERS
                return self._read_chunked()
            self._body_seen += size
            if limits.max_body is not None and self._body_seen > limits.max_body:
                raise self._fail(413, "request body larger than the limit")
            self._remaining = size
            self._state = _CHUNK_DATA
            return self._read_chunked()
        # _TRAILERS: *( field-line CRLF ) CRLF
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            self._state = _DONE
            return END_OF_MESSAGE
        end = buffer.find(b"\r\n\r\n", 0, limits.max_trailer_bytes + 4)
        if end < 0:
            if len(buffer) > limits.max_trailer_bytes:
                raise self._fail(431, "trailer section too large")
            if buffer.find(b"\n\n") >= 0 or (buffer[:1] == b"\n"):
                raise self._fail(400, "bare LF in the trailer section")
            return self._starved()
        block = bytes(buffer[:end])
        del buffer[: end + 4]
        trailers = []
        for line in block.split(b"\r\n"):
            match = _FIELD_LINE.fullmatch(line)
            if match is None:
                raise self._fail(400, "malformed trailer field")
            name = match.group(1)
            if name.lower() in _NOT_TRAILERS:
                raise self._fail(400, f"{name.decode('latin-1')} is not allowed in a trailer")
            trailers.append((name, match.group(2)))
        self._state = _DONE
        return EndOfMessage(trailers)

    def _starved(self) -> object:
        if self._their_eof:
            raise self._fail(400, "connection closed before the whole body arrived")
        return NEED_DATA

    @property
    def request_complete(self) -> bool:
        """Whether the current request has been read to its end (body included)."""
        return self._state == _DONE

    # --- output --------------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        """Whether a response head has been produced in this cycle."""
        return self._our_state != _IDLE

    def continue_response(self) -> bytes:
        """``100 Continue``, once, when the client asked for it and nothing was sent yet."""
        if self._continue_pending and self._our_state == _IDLE:
            self._continue_pending = False
            return b"HTTP/1.1 100 Continue\r\n\r\n"
        return b""

    def response_head(self, status: str, headers: list[tuple[str, str]]) -> bytes:
        """Frame a response head for the current request.

        ``status`` is ``"200 OK"``; ``headers`` are ``(name, value)`` strings as WSGI gives
        them. Raises ``ValueError`` for a head that would be unsafe or invalid (the caller
        answers 500 instead); ``RuntimeError`` if a head was already produced.
        """
        if self._our_state != _IDLE:
            raise RuntimeError("a response head was already sent for this request")
        request = self.request
        if request is None:
            raise RuntimeError("no request to respond to")
        keep_alive = self.keep_alive and request.keep_alive
        # Heads repeat: cached for the current second (the Date changes), keyed by what shapes them.
        start, end, _ = _date
        if not start <= time.time() < end:
            http_date()  # a new second: a new Date, and the cached heads are dropped
        try:
            key = (
                status,
                tuple(headers),
                request.version,
                request.method == "HEAD",
                keep_alive,
                self.server_name,
            )
            cached = _head_cache.get(key)
        except TypeError:  # something unhashable: the full path will say what is wrong
            key, cached = None, None
        if cached is None:
            cached = self._build_head(status, headers, request, keep_alive)
            if key is not None:
                if len(_head_cache) >= _HEAD_CACHE_SIZE:
                    _head_cache.clear()
                _head_cache[key] = cached
        head, self._framing, self._to_send, self.keep_alive = cached
        self._our_state = _SENDING
        self._continue_pending = False
        return head

    def whole_response(self, status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """Head, body and end of a response given in one piece: what
        :meth:`response_head`, :meth:`response_body` and :meth:`end_response` would give
        together, in one call (it is the most common response)."""
        head = self.response_head(status, headers)
        framing = self._framing
        self._our_state = _SENT
        if framing == _LENGTH:
            to_send = self._to_send
            if len(body) != to_send:
                # More than declared: send what was declared, then close, so the extra bytes
                # are never read as the next response. Fewer: only a close ends it cleanly.
                body = body[:to_send]
                self.keep_alive = False
            self._to_send = 0
            return head + body
        if framing == _CHUNKED:
            if not body:
                return head + b"0\r\n\r\n"
            return b"%b%x\r\n%b\r\n0\r\n\r\n" % (head, len(body), body)
        if framing == _UNTIL_CLOSE:
            return head + body
        return head

    def _build_head(
        self, status: str, headers: list[tuple[str, str]], request: Request, keep_alive: bool
    ) -> tuple[bytes, int, int, bool]:
        """Validate and serialize a head: (bytes, framing, declared length, keep-alive)."""
        for item in headers:
            if type(item) is not tuple or len(item) != 2 or not all(type(x) is str for x in item):
                raise ValueError(f"header {item!r} is not a (str, str) tuple")
        match = _STATUS.fullmatch(status)
        if match is None:
            raise ValueError(f"invalid status line {status!r}")
        code = int(match.group(1))
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if _RESPONSE_FIELDS.fullmatch(lines) is None or lines.count("\n") != len(headers):
            raise ValueError("invalid header name or value (CR, LF or NUL, or not a token)")
        content_length: int | None = None
        has_date = has_server = has_connection = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                if not value.isdigit() or content_length is not None:
                    raise ValueError(f"invalid Content-Length {value!r}")
                content_length = int(value)
            elif lowered == "connection":
                has_connection = True
                if "close" in value.lower():
                    keep_alive = False
            elif lowered == "date":
                has_date = True
            elif lowered == "server":
                has_server = True
            elif lowered in _HOP_BY_HOP:
                raise ValueError(f"hop-by-hop header {name!r} is the server's to set")
        if code < 200:
            raise ValueError("1xx responses are the server's to send")
        to_send = 0
        if request.method == "HEAD" or code in _NO_BODY_STATUS:
            framing = _NO_BODY
        elif content_length is not None:
            framing = _LENGTH
            to_send = content_length
        elif request.version == "1.1":
            framing = _CHUNKED
            lines += "Transfer-Encoding: chunked\r\n"
        else:
            framing = _UNTIL_CLOSE
            keep_alive = False
        if not has_date:
            lines += f"Date: {http_date()}\r\n"
        if not has_server:
            lines += f"Server: {self.server_name}\r\n"
        if not keep_alive:
            if not has_connection:
                lines += "Connection: close\r\n"
        elif request.version == "1.0":
            lines += "Connection: keep-alive\r\n"
        return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode("latin-1"), framing, to_send, keep_alive

    def response_body(self, data: bytes) -> bytes:
        """Frame a piece of the response body (empty for HEAD, 204 and 304)."""
        framing = self._framing
        if framing == _LENGTH:
            if len(data) > self._to_send:
                # The application sent more than it declared: send what it declared, then
                # close, so the extra bytes can never be read as the next response.
                data = data[: self._to_send]
                self.keep_alive = False
            self._to_send -= len(data)
            return data
        if framing == _CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing == _UNTIL_CLOSE:
            return data
        return b""

    def count_body_sent(self, size: int) -> None:
        """Account for ``size`` body bytes the caller sent itself (``os.sendfile``)."""
        if self._framing == _LENGTH:
            self._to_send -= min(size, self._to_send)

    def end_response(self) -> bytes:
        """Finish the response; returns the last bytes to send (the last chunk)."""
        if self._our_state != _SENDING:
            raise RuntimeError("no response in progress")
        self._our_state = _SENT
        if self._framing == _CHUNKED:
            return b"0\r\n\r\n"
        if self._framing == _LENGTH and self._to_send:
            self.keep_alive = False  # fewer bytes than declared: only a close ends it cleanly
        return b""

    def error_response(self, error: ProtocolError | int, detail: str = "") -> bytes:
        """A complete plain-text error response that closes the connection, or ``b""`` when
        a response has already begun (then the only safe move is to close)."""
        if self._our_state != _IDLE:
            self.keep_alive = False
            return b""
        status = error.status if isinstance(error, ProtocolError) else error
        detail = detail or (error.reason if isinstance(error, ProtocolError) else "")
        reason = _REASONS.get(status, "Error")
        body = f"{status} {reason}" + (f": {detail}" if detail else "") + "\n"
        payload = body.encode("utf-8", "replace")
        self._our_state = _SENT
        self.keep_alive = False
        return (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nDate: {http_date()}\r\n"
            f"Server: {self.server_name}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1") + payload

    def start_next_cycle(self) -> bool:
        """Begin reading the next request; both the request and the response must be done.
        Returns whether input is already waiting (pipelined bytes, or the peer's end), so
        :meth:`next_event` should be asked before reading more."""
        if self._state != _DONE or self._our_state != _SENT or not self.keep_alive:
            raise RuntimeError("the current request and response are not both finished")
        self._state = _HEAD
        self._our_state = _IDLE
        self._framing = _NO_BODY
        self.request = None
        if self._buffer:  # (a truth test, not bool(): no call)
            return True
        return self._their_eof


def _llhttp_reason(exc: Exception) -> str:
    text = str(exc).strip() or "malformed request"
    return text[0].lower() + text[1:]
