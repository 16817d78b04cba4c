"""The file-transfer wire protocol, sans-IO: bytes in, frames and data out.

Specified in ``docs/transfer-protocol.md``. Every frame starts with an 8-byte header::

    magic b"NA" | type (1 byte) | flags (1 byte, 0) | length (4 bytes, big-endian)

followed by ``length`` bytes of a UTF-8 JSON object. A ``FILE`` frame announces a raw stream:
its JSON says ``"length": N`` and exactly N raw bytes follow the frame, unframed, so a file
can go out with ``sendfile`` and in with one ``recv_into`` loop. The reader below never
touches a socket: it is fed bytes and yields :class:`Frame`, :class:`StreamData` and
:class:`StreamEnd` events, and it refuses anything malformed with :class:`ProtocolError`.

Two versions are spoken. Version 2 negotiates the digest (``blake3`` by default, ``sha256``
on request), names it ``digest`` where version 1 said ``sha256``, and streams a folder's files
back to back (a ``FILES`` frame carries many small files and their data at once). A client
offers versions the way TLS 1.3 does: its HELLO keeps ``"version": 1``, which a version-1
server checks and accepts, and lists ``"versions": [1, 2]`` and its ``"digests"``, which that
server ignores; a version-2 server answers with the version and digest it chose
(:func:`agree`). So each side talks to the other's previous version, both ways.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 2  # the newest version this side speaks
VERSIONS = (1, 2)
LEGACY_VERSION = 1  # what a HELLO's "version" says, so that version-1 servers accept it
MAGIC = b"NA"
HEADER = struct.Struct(">2sBBI")
MAX_FRAME = 1 << 20  # a control frame's JSON, at most
DEFAULT_PORT = 9090


class FrameType(IntEnum):
    """What a frame is."""

    HELLO = 1
    REQUEST = 2
    REPLY = 3
    ERROR = 4
    FILE = 5
    FILES = 6  # version 2: several small files, their data back to back after the JSON


class ErrorCode:
    """The ``code`` of an ERROR frame."""

    NOT_FOUND = "not_found"
    REFUSED = "refused"
    EXISTS = "exists"
    AUTH = "auth"
    TOO_LARGE = "too_large"
    BAD_REQUEST = "bad_request"
    VERSION = "version"
    BUSY = "busy"
    CHANGED = "changed"
    NO_SPACE = "no_space"
    TLS_REQUIRED = "tls_required"


class ProtocolError(Exception):
    """The peer sent something that is not this protocol; the connection must end."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A control frame."""

    type: FrameType
    body: dict


@dataclass(frozen=True, slots=True)
class StreamData:
    """A piece of an announced raw stream."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The announced raw stream is complete."""


STREAM_END = StreamEnd()
_FRAME_TYPES = frozenset(FrameType)
_WITH_DATA = (FrameType.FILE, FrameType.FILES)


class Disagreement(Exception):
    """A client's HELLO and this server have no version or no digest in common."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """What a session speaks: the protocol ``version`` and the ``digest`` algorithm."""

    version: int
    digest: str

    @property
    def digest_field(self) -> str:
        """The JSON field that carries a whole file's digest in this version."""
        return "sha256" if self.version == 1 else "digest"

    @property
    def prefix_field(self) -> str:
        """The JSON field of a resumed get that carries the digest of what is held."""
        return "prefix_sha256" if self.version == 1 else "prefix_digest"


V1 = Agreement(1, "sha256")  # version 1 knows SHA-256 alone


def client_hello(digests: tuple[str, ...] | list[str], token: str | None = None) -> dict:
    """A client's HELLO body offering every version and ``digests`` (preferred first)."""
    body: dict = {"version": LEGACY_VERSION, "versions": list(VERSIONS), "digests": list(digests)}
    if token is not None:
        body["token"] = token
    return body


def agree(hello: dict, digests: tuple[str, ...]) -> Agreement:
    """What a server that computes ``digests`` speaks with the client whose HELLO body is
    ``hello``: the highest version both speak and, in version 2, the first of the client's
    digests the server has. Raises :class:`Disagreement` (the message is for the client)."""
    offered = hello.get("versions")
    versions = {v for v in offered if v in VERSIONS} if isinstance(offered, list) else set()
    if hello.get("version") in VERSIONS:
        versions.add(hello["version"])
    if not versions:
        raise Disagreement(f"this server speaks versions {', '.join(map(str, VERSIONS))}")
    if max(versions) == 1:
        return V1
    wanted = hello.get("digests")
    wanted = [d for d in wanted if isinstance(d, str)] if isinstance(wanted, list) else []
    for digest in wanted or ["sha256"]:
        if digest in digests:
            return Agreement(2, digest)
    raise Disagreement(
        f"no digest in common: this server computes {', '.join(digests)}, the client asked "
        f"for {', '.join(wanted)}"
    )


def encode(frame_type: FrameType, body: dict) -> bytes:
    """One frame as bytes."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(payload) > MAX_FRAME:
        raise ValueError("frame too large")
    return HEADER.pack(MAGIC, int(frame_type), 0, len(payload)) + payload


def error(code: str, message: str) -> bytes:
    """An ERROR frame."""
    return encode(FrameType.ERROR, {"code": code, "message": message})


class Reader:
    """Turns received bytes into events. ``max_frame`` bounds a control frame."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._stream_left = 0
        self._in_stream = False

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buffer += data

    def next_event(self) -> Frame | StreamData | StreamEnd | None:
        """The next event, or None when more bytes are needed."""
        buffer = self._buffer
        if self._in_stream:
            if self._stream_left == 0:
                self._in_stream = False
                return STREAM_END
            if not buffer:
                return None
            take = min(len(buffer), self._stream_left)
            data = bytes(buffer[:take])
            del buffer[:take]
            self._stream_left -= take
            return StreamData(data)
        if len(buffer) < HEADER.size:
            # Said at once, not after 8 bytes: a peer speaking something else (a name sent
            # as in the tutorial) may never send 8.
            if buffer[:2] != MAGIC[: len(buffer)]:
                raise ProtocolError("not a netassist transfer peer (bad magic)")
            if len(buffer) > 2 and buffer[2] not in _FRAME_TYPES:
                raise ProtocolError(f"unknown frame type {buffer[2]}")
            return None
        magic, kind, flags, length = HEADER.unpack_from(buffer)
        if magic != MAGIC:
            raise ProtocolError("not a netassist transfer peer (bad magic)")
        if flags != 0:
            raise ProtocolError("unknown frame flags")
        if length > self.max_frame:
            raise ProtocolError(f"frame of {length} bytes is over the {self.max_frame}-byte limit")
        try:
            frame_type = FrameType(kind)
        except ValueError:
            raise ProtocolError(f"unknown frame type {kind}") from None
        if len(buffer) < HEADER.size + length:
            return None
        payload = bytes(buffer[HEADER.size : HEADER.size + length])
        del buffer[: HEADER.size + length]
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError("frame is not UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise ProtocolError("frame is not a JSON object")
        if frame_type in _WITH_DATA:
            stream = body.get("length")
            if not isinstance(stream, int) or isinstance(stream, bool) or stream < 0:
                raise ProtocolError(f"{frame_type.name} frame without a valid length")
            self._stream_left = stream
            self._in_stream = True
        return Frame(frame_type, body)

    def frame_ready(self) -> bool:
        """Whether a whole control frame is already buffered, so that :meth:`next_event`
        needs no more bytes to return it (or to refuse it)."""
        buffer = self._buffer
        if self._in_stream or len(buffer) < HEADER.size:
            return False
        return len(buffer) >= HEADER.size + HEADER.unpack_from(buffer)[3]

    def take_stream(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the current stream straight from the buffer (for callers
        that then read the rest from the socket themselves)."""
        take = min(limit, self._stream_left, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._stream_left -= take
        return data

    def consumed_stream(self, size: int) -> None:
        """Note that ``size`` stream bytes were read directly from the socket."""
        if size > self._stream_left:
            raise ProtocolError("more stream bytes than announced")
        self._stream_left -= size

    @property
    def buffered(self) -> int:
        """Bytes held but not yet returned as events."""
        return len(self._buffer)
