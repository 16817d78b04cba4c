"""Raw requests and what must come of them: the parser tests and the live-server tests share it.

A valid case lists, per request in it, what the application must see: method, target,
headers (name, value) in order, and the body. An invalid case gives the status the server
must answer with before it closes. Each smuggling-class rejection has its own case.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Seen:
    """One request as the application must see it."""

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    version: str = "1.1"


@dataclass(frozen=True)
class Case:
    """A raw byte stream and either the requests in it or the status it must get."""

    name: str
    raw: bytes
    requests: list[Seen] = field(default_factory=list)
    status: int | None = None  # for invalid cases: the error status, then close


H = [(b"Host", b"example.com")]

VALID = [
    Case("simple GET", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", [Seen("GET", b"/", H)]),
    Case(
        "query and percent-encoding",
        b"GET /a%20b/%E4%B8%AD?x=1&y=%2F HTTP/1.1\r\nHost: example.com\r\n\r\n",
        [Seen("GET", b"/a%20b/%E4%B8%AD?x=1&y=%2F", H)],
    ),
    Case(
        "HTTP/1.0 without Host",
        b"GET /old HTTP/1.0\r\n\r\n",
        [Seen("GET", b"/old", [], version="1.0")],
    ),
    Case(
        "header whitespace is trimmed, obs-text kept",
        b"GET / HTTP/1.1\r\nHost:example.com\r\nX-A:   spaced value \t\r\nX-B: \xe4\xb8\xad\r\nX-Empty:\r\n\r\n",
        [
            Seen(
                "GET",
                b"/",
                [
                    (b"Host", b"example.com"),
                    (b"X-A", b"spaced value"),
                    (b"X-B", b"\xe4\xb8\xad"),
                    (b"X-Empty", b""),
                ],
            )
        ],
    ),
    Case(
        "repeated fields kept in order",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nCookie: a=1\r\nAccept: x\r\nCookie: b=2\r\n\r\n",
        [Seen("GET", b"/", [*H, (b"Cookie", b"a=1"), (b"Accept", b"x"), (b"Cookie", b"b=2")])],
    ),
    Case(
        "POST with Content-Length",
        b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world",
        [Seen("POST", b"/form", [*H, (b"Content-Length", b"11")], b"hello world")],
    ),
    Case(
        "Content-Length zero",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
        [Seen("POST", b"/", [*H, (b"Content-Length", b"0")])],
    ),
    Case(
        "chunked with extensions and trailers",
        b"POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n6 ; q="a b" ; flag\r\n world\r\n0\r\nX-Sum: 99\r\n\r\n',
        [Seen("POST", b"/up", [*H, (b"Transfer-Encoding", b"chunked")], b"hello world")],
    ),
    Case(
        "chunked, uppercase hex and leading zeros",
        b"PUT /x HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: Chunked\r\n\r\n00A\r\n0123456789\r\n000\r\n\r\n",
        [Seen("PUT", b"/x", [*H, (b"Transfer-Encoding", b"Chunked")], b"0123456789")],
    ),
    Case(
        "pipelined requests in order",
        b"GET /1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        [
            Seen("GET", b"/1", H),
            Seen("POST", b"/2", [*H, (b"Content-Length", b"3")], b"abc"),
            Seen("GET", b"/3", H),
        ],
    ),
    Case(
        "one empty line before the request line is ignored",
        b"\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        [Seen("GET", b"/", H)],
    ),
    Case(
        "absolute-form target",
        b"GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
        [Seen("GET", b"http://example.com/p?q", H)],
    ),
    Case(
        "OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n", [Seen("OPTIONS", b"*", H)]
    ),
    Case("HEAD", b"HEAD /h HTTP/1.1\r\nHost: example.com\r\n\r\n", [Seen("HEAD", b"/h", H)]),
    Case(
        "DELETE and PATCH",
        b"DELETE /d HTTP/1.1\r\nHost: example.com\r\n\r\nPATCH /p HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\n{}",
        [Seen("DELETE", b"/d", H), Seen("PATCH", b"/p", [*H, (b"Content-Length", b"2")], b"{}")],
    ),
    Case(
        "Expect: 100-continue",
        b"PUT /e HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
        [
            Seen(
                "PUT", b"/e", [*H, (b"Expect", b"100-continue"), (b"Content-Length", b"4")], b"data"
            )
        ],
    ),
    Case(
        "a header field of exactly 8190 bytes",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Long: " + b"v" * 8182 + b"\r\n\r\n",
        [Seen("GET", b"/", [*H, (b"X-Long", b"v" * 8182)])],
    ),
    Case(
        "every token is a method: the app decides 405 or 501, not llhttp's table",
        b"BREW / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        b"-BLARGH /x HTTP/1.1\r\nHost: example.com\r\n\r\n"
        b"PROPFIND /d HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
        b"get /lower HTTP/1.1\r\nHost: example.com\r\n\r\n"
        b"X!#$%&'*+.^_`|~9 /t HTTP/1.1\r\nHost: example.com\r\n\r\n",
        [
            Seen("BREW", b"/", H),
            Seen("-BLARGH", b"/x", H),
            Seen("PROPFIND", b"/d", [*H, (b"Content-Length", b"3")], b"abc"),
            Seen("get", b"/lower", H),
            Seen("X!#$%&'*+.^_`|~9", b"/t", H),
        ],
    ),
    Case(
        "absolute-form: the target's authority replaces the Host field",
        b"GET http://other.test:8080/x?q HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        [
            Seen(
                "GET",
                b"http://other.test:8080/x?q",
                [(b"Host", b"other.test:8080"), (b"Accept", b"*/*")],
            )
        ],
    ),
    Case(
        "absolute-form in HTTP/1.0 without Host: the authority is the Host",
        b"GET HTTPS://[::1]/ HTTP/1.0\r\n\r\n",
        [Seen("GET", b"HTTPS://[::1]/", [(b"Host", b"[::1]")], version="1.0")],
    ),
    Case(
        "Host forms: IPv6 literal with a port, IPv4, percent-encoded, empty",
        b"GET /1 HTTP/1.1\r\nHost: [2001:db8::1]:8000\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: xn--fiq228c.example%2E:\r\n\r\n"
        b"GET /4 HTTP/1.1\r\nHost:\r\n\r\n",
        [
            Seen("GET", b"/1", [(b"Host", b"[2001:db8::1]:8000")]),
            Seen("GET", b"/2", [(b"Host", b"127.0.0.1")]),
            Seen("GET", b"/3", [(b"Host", b"xn--fiq228c.example%2E:")]),
            Seen("GET", b"/4", [(b"Host", b"")]),
        ],
    ),
    Case(
        "trailer fields that may be trailers",
        b"POST /t HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nX-Checksum: 1\r\nServer-Timing: a\r\n\r\n",
        [Seen("POST", b"/t", [*H, (b"Transfer-Encoding", b"chunked")], b"x")],
    ),
    Case(
        "binary body",
        b"POST /b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\n\x00\r\n\xff\r\n",
        [Seen("POST", b"/b", [*H, (b"Content-Length", b"6")], b"\x00\r\n\xff\r\n")],
    ),
]


def bad(name: str, raw: bytes, status: int) -> Case:
    return Case(name, raw, status=status)


INVALID = [
    bad("bare LF line endings", b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    bad("bare LF after the request line", b"GET / HTTP/1.1\nHost: example.com\r\n\r\n", 400),
    bad("bare LF after one header", b"GET / HTTP/1.1\r\nHost: example.com\nX: y\r\n\r\n", 400),
    bad("bare LF ends the head", b"GET / HTTP/1.1\r\nHost: example.com\r\n\n", 400),
    bad("bare CR in a value", b"GET / HTTP/1.1\r\nHost: example.com\r\nX: a\rb\r\n\r\n", 400),
    bad("obs-fold", b"GET / HTTP/1.1\r\nHost: example.com\r\nX: a\r\n  folded\r\n\r\n", 400),
    bad("whitespace before the colon", b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", 400),
    bad("tab before the colon", b"GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n", 400),
    bad("NUL in a value", b"GET / HTTP/1.1\r\nHost: example.com\r\nX: a\x00b\r\n\r\n", 400),
    bad(
        "control character in a name",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX\x01Y: z\r\n\r\n",
        400,
    ),
    bad("empty field name", b"GET / HTTP/1.1\r\nHost: example.com\r\n: z\r\n\r\n", 400),
    bad(
        "Content-Length and Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    bad(
        "Transfer-Encoding then Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    bad(
        "TE gzip, chunked",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    bad(
        "TE identity",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: identity\r\n\r\n",
        501,
    ),
    bad(
        "TE chunked, gzip",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    bad(
        "two Transfer-Encoding fields",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    bad("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    bad(
        "duplicate Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    bad(
        "differing Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    bad(
        "Content-Length list",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3, 3\r\n\r\nabc",
        400,
    ),
    bad(
        "signed Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: +3\r\n\r\nabc",
        400,
    ),
    bad(
        "negative Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    bad(
        "hex Content-Length",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0x3\r\n\r\nabc",
        400,
    ),
    bad(
        "Content-Length overflow",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    *[
        bad(
            f"chunk size {size!r}",
            b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size
            + b"\r\nabc\r\n0\r\n\r\n",
            400,
        )
        for size in (b"0x3", b"+3", b"-3", b"3 ", b" 3", b"g", b"", b"fffffffffffffffff1")
    ],
    *[
        bad(
            f"chunk extension {ext!r}",
            b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3"
            + ext
            + b"\r\nabc\r\n0\r\n\r\n",
            400,
        )
        for ext in (b";", b";=v", b'; a="unterminated', b";a=b c", b";a\x01", b';a="\x00"')
    ],
    bad(
        "missing CRLF after chunk data",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        400,
    ),
    bad(
        "bare LF after chunk size",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        400,
    ),
    bad(
        "malformed trailer",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n",
        400,
    ),
    bad("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    bad("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    bad("two Host fields in HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    bad(
        "request line too long",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: example.com\r\n\r\n",
        414,
    ),
    bad(
        "header section too large",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n" + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n",
        431,
    ),
    bad(
        "one header field over 8190 bytes (the head under its limit)",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Long: " + b"v" * 8184 + b"\r\n\r\n",
        431,
    ),
    bad(
        "one header field over 8190 bytes, not the last",
        b"GET / HTTP/1.1\r\nCookie: " + b"c" * 8190 + b"\r\nHost: example.com\r\n\r\n",
        431,
    ),
    bad(
        "too many header fields",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(101))
        + b"\r\n",
        431,
    ),
    *[
        bad(f"Host {value!r}", b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n", 400)
        for value in (
            b"exa mple.com",  # a space inside
            b"a.example, b.example",  # two hosts joined
            b"a.example b.example",
            b"user@a.example",
            b"a.example/path",
            b"a.example:80x",
            b"[::1",
            b"a.example%zz",
            b"\xe4\xb8\xad.example",
        )
    ],
    bad(
        "absolute-form with user information",
        b"GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    ),
    bad(
        "absolute-form with a bad authority",
        b"GET http://a.example,b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    ),
    bad("http URI without a host", b"GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    bad("asterisk-form for GET", b"GET * HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    bad(
        "asterisk-form for POST",
        b"POST * HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
        400,
    ),
    bad("a target in no form", b"GET x/y HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    *[
        bad(
            f"{field.split(b':')[0].decode()} in a trailer",
            b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n" + field + b"\r\n\r\n",
            400,
        )
        for field in (
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
            b"Host: evil.example",
            b"Authorization: Basic eA==",
            b"content-type: text/plain",
            b"X-Fine: 1\r\nCookie: a=b",
        )
    ],
    *[
        bad(
            f"repeated {first.split(b':')[0].decode()}",
            b"POST / HTTP/1.1\r\nHost: example.com\r\n"
            + first
            + b"\r\nX: y\r\n"
            + second
            + b"\r\nContent-Length: 0\r\n\r\n",
            400,
        )
        for first, second in (
            (b"Content-Type: text/plain", b"Content-Type: application/json"),
            (b"Content-Type: text/plain", b"content-type: text/plain"),
            (b"User-Agent: a", b"User-Agent: b"),
            (b"Authorization: Basic eA==", b"Authorization: Basic eQ=="),
            (b"Range: bytes=0-1", b"Range: bytes=5-9"),
            (b"If-Modified-Since: x", b"If-Modified-Since: y"),
        )
    ],
    bad("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: example.com\r\n\r\n", 505),
    bad("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: example.com\r\n\r\n", 505),
    bad("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: example.com\r\n\r\n", 505),
    bad("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: example.com\r\n\r\n", 505),
    bad("lowercase http", b"GET / http/1.1\r\nHost: example.com\r\n\r\n", 400),
    bad(
        "garbage (TLS hello on a plain port)",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        400,
    ),
    bad(
        "control character in the target", b"GET /a\x01b HTTP/1.1\r\nHost: example.com\r\n\r\n", 400
    ),
    bad("space inside the target", b"GET /a b HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
]

#: Requests whose body exceeds a small limit (tests set max_body=10).
OVER_LIMIT = [
    bad(
        "Content-Length over the limit",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\n" + b"x" * 11,
        413,
    ),
    bad(
        "chunked body over the limit",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n",
        413,
    ),
]
