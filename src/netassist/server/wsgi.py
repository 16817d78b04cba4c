"""PEP 3333: the environ built from a request, ``start_response``, ``wsgi.input`` (empty,
buffered, spooled or live) and ``wsgi.file_wrapper``. Nothing here knows about sockets or
threads: the worker hands in the request, the body reader and the peer's address, and gets
back what the app answered."""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from netassist.server import forwarded
from netassist.server.protocol import NEED_DATA, Data, EndOfMessage, Request, ServerConnection

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server may send with ``os.sendfile``.

    Iterating it reads ``blksize`` blocks, so it also works wherever sendfile does not.
    """

    def __init__(self, filelike: IO[bytes], blksize: int = 1 << 20) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block


class EmptyInput:
    """``wsgi.input`` of a request without a body: stateless, so one instance serves all."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        """Nothing to release."""


EMPTY_INPUT = EmptyInput()


def spool(body: io.BytesIO) -> IO[bytes]:
    """Move a body that grew too large for memory into a temporary file (deleted when
    closed), positioned at its end so that writing goes on."""
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - the worker closes it
    spooled.write(body.getbuffer())
    return spooled


class LiveInput(io.RawIOBase):
    """``wsgi.input`` for ``Expect: 100-continue``: sends ``100 Continue`` on the first
    read, then reads the body as the app asks for it.

    ``send(data)`` and ``receive()`` are the worker's blocking calls on the connection,
    made from the app's thread; a ProtocolError or timeout reaches the app as an error.
    """

    def __init__(
        self,
        proto: ServerConnection,
        send: Callable[[bytes], None],
        receive: Callable[[], bytes],
    ) -> None:
        self._proto = proto
        self._send = send
        self._receive = receive
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Get the next piece of body into the buffer; False at the end."""
        if self._done:
            return False
        proto = self._proto
        continue_bytes = proto.continue_response()
        if continue_bytes:
            self._send(continue_bytes)
        while True:
            event = proto.next_event()
            if isinstance(event, Data):
                self._buffer += event.data
                return True
            if isinstance(event, EndOfMessage) or event is not NEED_DATA:
                self._done = True
                return False
            proto.receive_data(self._receive())

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            if not self._fill():
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self._buffer and (size is None or size < 0 or len(self._buffer) < size):
            if not self._fill():
                break
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line


# Header name (as received) -> environ key, or None for a name to drop, or _PROXY. Names
# repeat from request to request, so each is worked out once (bounded, in case a client
# invents many).
_KEYS: dict[bytes, str | bool | None] = {}
_UNKNOWN = object()
# A proxy header (forwarded.py): falsy, like the names the loop skips, so it costs the
# usual request nothing; the builder of the connection decides what becomes of it.
_PROXY = False
_PROXY_NAMES = {b"X-FORWARDED-FOR": forwarded.FOR, b"X-FORWARDED-PROTO": forwarded.PROTO}
_PROXY_NAMES[b"FORWARDED"] = forwarded.FORWARDED
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_KEYS_LIMIT = 4096


def _environ_key(name: bytes) -> str | bool | None:
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        upper = name.upper()
        if b"_" in upper:
            key = None  # X_Forwarded_For would land on X-Forwarded-For's key: drop it
        elif upper in _PROXY_NAMES:
            key = _PROXY
        elif upper == b"CONTENT-TYPE":
            key = "CONTENT_TYPE"
        elif upper == b"CONTENT-LENGTH":
            key = ""  # set from what was actually received
        else:
            key = "HTTP_" + upper.decode("latin-1").replace("-", "_")
        if len(_KEYS) < _KEYS_LIMIT:
            _KEYS[name] = key
    return key


class StartResponse:
    """The ``start_response`` callable of one request, with PEP 3333's ``exc_info`` rules."""

    __slots__ = ("headers", "headers_sent", "status", "write")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] | None = None
        self.headers_sent = False
        self.write = write

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        if type(status) is not str or type(headers) is not list:
            raise TypeError("start_response takes a str status and a list of (str, str) headers")
        # Each (name, value) is checked where the head is built, once per distinct head.
        self.status = status
        self.headers = headers
        return self.write


def split_target(target: bytes, script_name: str = "") -> tuple[str, str, str]:
    """``(SCRIPT_NAME, PATH_INFO, QUERY_STRING)`` for a request target.

    PATH_INFO is percent-decoded and then read as latin-1, as PEP 3333 asks (so a UTF-8
    path arrives as its bytes, one character each); an absolute-form target loses its
    scheme and authority.
    """
    if target[:1] != b"/" and target != b"*":
        scheme_end = target.find(b"://")
        if scheme_end > 0:
            slash = target.find(b"/", scheme_end + 3)
            target = target[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    if b"%" in path:
        path = unquote_to_bytes(path)
    path_info = path.decode("latin-1")
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        return script_name, path_info[len(script_name) :], query.decode("latin-1")
    return "", path_info, query.decode("latin-1")


def _name_the_server(environ: dict, target: str) -> None:
    """SERVER_NAME and SERVER_PORT from an absolute-form target, which names the host (the
    protocol already put its authority in the Host field, so HTTP_HOST agrees)."""
    scheme, _, rest = target.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port:  # no port, or the colon was inside an IPv6 literal
        host, port = authority, ""
    environ["SERVER_NAME"] = host
    environ["SERVER_PORT"] = port or ("443" if scheme.lower() == "https" else "80")


class EnvironBuilder:
    """Builds environs fast: the per-worker part is computed once and copied per request."""

    def __init__(
        self,
        *,
        server_name: str,
        server_port: str,
        url_scheme: str = "http",
        multithread: bool = False,
        multiprocess: bool = False,
        script_name: str = "",
        errors: IO[str] | None = None,
        proxies: forwarded.TrustedPeers | None = None,
    ) -> None:
        self.script_name = script_name
        #: None: the connections this builder serves are not believed (their proxy headers
        #: never reach the environ); else the peers of --forwarded-allow-ips.
        self.proxies = proxies
        self.base = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SCRIPT_NAME": script_name,
            "SERVER_SOFTWARE": "netassist",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            # Set per request (build); here so each copy is born big enough and never grows.
            "PATH_INFO": "",
            "QUERY_STRING": "",
            "REQUEST_METHOD": "GET",
            "RAW_URI": "",
            "REQUEST_URI": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.input": EMPTY_INPUT,
        }

    def connection_base(self, remote: tuple[str, int] | None) -> dict:
        """The part of every environ that is the same for one connection; built once, at
        accept, and copied per request."""
        base = self.base.copy()
        if remote is not None:
            base["REMOTE_ADDR"] = remote[0]
            base["REMOTE_PORT"] = str(remote[1])
        else:
            base["REMOTE_ADDR"] = ""
        return base

    def build(
        self,
        base: dict,
        request: Request,
        body: IO[bytes],
        content_length: int | None,
    ) -> dict:
        """The environ for ``request`` from a :meth:`connection_base`; ``body`` is its
        wsgi.input."""
        environ = base.copy()
        target = request.target
        raw_uri = target.decode("latin-1")
        # Tests on the str, and a slice, not startswith(): both cost less (bench/README.md).
        if raw_uri[:1] == "/" and "%" not in raw_uri and not self.script_name:
            # The common case, without the general path: the target is already PATH_INFO.
            path, _, query = raw_uri.partition("?")
            environ["PATH_INFO"] = path
            environ["QUERY_STRING"] = query
        else:
            script, path_info, query = split_target(target, self.script_name)
            environ["SCRIPT_NAME"] = script
            environ["PATH_INFO"] = path_info
            environ["QUERY_STRING"] = query
            if raw_uri[:1] != "/" and "://" in raw_uri:
                _name_the_server(environ, raw_uri)
        environ["REQUEST_METHOD"] = request.method
        environ["RAW_URI"] = environ["REQUEST_URI"] = raw_uri
        environ["SERVER_PROTOCOL"] = _PROTOCOLS[request.version]
        environ["wsgi.input"] = body
        if content_length is not None:
            environ["CONTENT_LENGTH"] = str(content_length)
        keys = _KEYS
        for name, value in request.headers:
            key = keys.get(name, _UNKNOWN)
            if key is _UNKNOWN:
                key = _environ_key(name)
            if not key:
                if key is _PROXY and self.proxies is not None:
                    self._believe(environ, base, name, value)
                continue
            if key in environ:
                separator = "; " if key == "HTTP_COOKIE" else ","
                environ[key] += separator + value.decode("latin-1")
            else:
                environ[key] = value.decode("latin-1")
        return environ

    def trusting(self, proxies: forwarded.TrustedPeers) -> EnvironBuilder:
        """The same builder for connections from a proxy we believe."""
        twin = EnvironBuilder.__new__(EnvironBuilder)
        twin.__dict__.update(self.__dict__)
        twin.proxies = proxies
        return twin

    def _believe(self, environ: dict, base: dict, name: bytes, value: bytes) -> None:
        """A proxy header from a believed peer: in the environ, and applied (again, from the
        connection's own values, so the order of the headers does not matter)."""
        key = _PROXY_NAMES[name.upper()]
        text = value.decode("latin-1")
        environ[key] = environ[key] + "," + text if key in environ else text
        for own in ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme"):
            if own in base:
                environ[own] = base[own]
            else:
                environ.pop(own, None)
        forwarded.apply(environ, self.proxies)  # type: ignore[arg-type]
