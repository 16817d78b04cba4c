"""``Request``: one WSGI environ, read lazily.

Nothing is parsed until asked for: the query string on the first ``args``, the body on the
first ``body``, ``form``, ``files`` or ``json``, cookies on the first ``cookies``. The body is
read once, up to ``CONTENT_LENGTH`` (or to the end of a chunked body the server marks as
terminated), and never beyond ``max_content_length``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from netassist.web import cookies as _cookies
from netassist.web.errors import HTTPError
from netassist.web.forms import FormLimits, UploadFile, parse_multipart, parse_urlencoded
from netassist.web.structures import EnvironHeaders, MultiDict

if TYPE_CHECKING:
    from netassist.web.app import App

__all__ = ["Request"]

_NOT_READ: Any = object()
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


def parse_options(header: str) -> tuple[str, dict[str, str]]:
    """``text/html; charset=utf-8`` as ("text/html", {"charset": "utf-8"})."""
    value, _, rest = header.partition(";")
    options = {}
    for piece in rest.split(";"):
        key, sep, item = piece.partition("=")
        if sep:
            item = item.strip()
            if len(item) >= 2 and item[0] == item[-1] == '"':
                item = item[1:-1].replace('\\"', '"')
            options[key.strip().lower()] = item
    return value.strip().lower(), options


class _LimitedInput:
    """``wsgi.input`` read no further than the body's end, and not past ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], length: int | None, limit: int | None) -> None:
        self.stream = stream
        self.left = length  # None: read to the end (a terminated, chunked body)
        self.limit = limit
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:  # everything: the stream may hand it over in pieces
            pieces = []
            while piece := self.read(1 << 16):
                pieces.append(piece)
            return b"".join(pieces)
        if self.left is not None:
            if self.left <= 0:
                return b""
            size = min(size, self.left)
        data = self.stream.read(size)
        if self.left is not None:
            if not data:
                raise HTTPError(400, "the request body ended before its Content-Length")
            self.left -= len(data)
        self.seen += len(data)
        if self.limit is not None and self.seen > self.limit:
            raise HTTPError(413, f"the request body is larger than {self.limit} bytes")
        return data


class Request:
    """What the client asked for: method, path, headers, query, body, cookies.

    A handler gets it as its first argument: ``def user(request, id): ...``.
    """

    # What is read lazily starts as these class attributes: a request that never asks for
    # its body, form or cookies costs two attribute stores to make.
    _body: bytes = _NOT_READ
    _stream: _LimitedInput | None = None
    _form: MultiDict | None = None
    _files: MultiDict | None = None
    _json: Any = _NOT_READ
    _args: MultiDict | None = None
    _cookies: dict[str, str] | None = None
    _path: str | None = None
    #: The route's converted parameters, and its endpoint name (None before routing).
    params: Mapping[str, Any] = MappingProxyType({})  # the route's dict replaces it
    endpoint: str | None = None

    def __init__(self, environ: dict[str, Any], app: App | None = None) -> None:
        self.environ = environ
        self.app = app

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path!r}>"

    # --- the request line ---------------------------------------------------------------------

    @property
    def method(self) -> str:
        """``GET``, ``POST``, ... in capitals."""
        return self.environ["REQUEST_METHOD"]

    @property
    def path(self) -> str:
        """The path below the application's mount point, decoded: ``/用户/1``. A path that is
        not UTF-8 is a 400."""
        if self._path is None:
            raw = self.environ.get("PATH_INFO", "")
            if raw.isascii():
                self._path = raw or "/"
            else:
                try:
                    self._path = raw.encode("latin-1").decode("utf-8")
                except UnicodeError:
                    raise HTTPError(400, "the path is not UTF-8") from None
        return self._path

    @property
    def script_root(self) -> str:
        """Where the application is mounted (``SCRIPT_NAME``), ``""`` at the top."""
        raw = self.environ.get("SCRIPT_NAME", "")
        return raw if raw.isascii() else raw.encode("latin-1").decode("utf-8", "replace")

    @property
    def query_string(self) -> str:
        """The raw query string, without the ``?``."""
        return self.environ.get("QUERY_STRING", "")

    @property
    def args(self) -> MultiDict:
        """The query string's fields: ``?tag=a&tag=b`` gives ``args["tag"] == "a"`` and
        ``args.getlist("tag") == ["a", "b"]``."""
        if self._args is None:
            query = self.query_string
            if not query.isascii():
                query = query.encode("latin-1").decode("utf-8", "replace")
            limit = self._limits().max_parts
            try:
                pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=limit)
            except ValueError:
                raise HTTPError(413, f"the query string has more than {limit} fields") from None
            self._args = MultiDict(pairs)
        return self._args

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""
        return self.environ.get("wsgi.url_scheme", "http")

    @property
    def host(self) -> str:
        """The ``Host`` header, or the server's name and port."""
        host = self.environ.get("HTTP_HOST")
        if host:
            return host
        name, port = (
            self.environ.get("SERVER_NAME", "localhost"),
            self.environ.get("SERVER_PORT", ""),
        )
        default = "443" if self.scheme == "https" else "80"
        return name if port in ("", default) else f"{name}:{port}"

    @property
    def host_url(self) -> str:
        """``scheme://host``."""
        return f"{self.scheme}://{self.host}"

    @property
    def url(self) -> str:
        """The whole URL the client asked for, percent-encoded as on the wire."""
        path = quote((self.script_root + self.path).encode("utf-8"), safe=_PATH_SAFE)
        query = self.query_string
        return f"{self.host_url}{path}" + (f"?{query}" if query else "")

    @property
    def remote_addr(self) -> str | None:
        """The client's address as the server saw it (a proxy's, behind one)."""
        return self.environ.get("REMOTE_ADDR")

    # --- headers ------------------------------------------------------------------------------

    @property
    def headers(self) -> EnvironHeaders:
        """The headers, by name in any case: ``request.headers["user-agent"]``."""
        return EnvironHeaders(self.environ)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header as sent (``""`` without one)."""
        return self.environ.get("CONTENT_TYPE", "")

    @property
    def mimetype(self) -> str:
        """The content type without its parameters, in lower case: ``application/json``."""
        return parse_options(self.content_type)[0]

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` as a number, or None."""
        text = self.environ.get("CONTENT_LENGTH")
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise HTTPError(400, f"Content-Length {text!r} is not a number") from None

    # --- cookies ------------------------------------------------------------------------------

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies the client sent, by name (values percent-decoded)."""
        if self._cookies is None:
            self._cookies = _cookies.parse_cookie_header(self.environ.get("HTTP_COOKIE", ""))
        return self._cookies

    def get_cookie(
        self,
        name: str,
        default: Any = None,
        *,
        secret: str | bytes | None = None,
        max_age: float | None = None,
    ) -> Any:
        """The cookie ``name``; with ``secret``, the JSON value that ``set_cookie(...,
        secret=)`` signed, or ``default`` if the cookie was altered, signed for another name or
        with another secret, or is older than ``max_age`` seconds."""
        value = self.cookies.get(name)
        if value is None:
            return default
        if secret is None:
            return value
        try:
            return _cookies.unsign(value, secret, name, max_age=max_age)
        except _cookies.BadSignature:
            return default

    # --- the body -----------------------------------------------------------------------------

    def _limits(self) -> FormLimits:
        return self.app.form_limits if self.app is not None else FormLimits()

    @property
    def stream(self) -> _LimitedInput:
        """The body as a stream: ``request.stream.read(n)``, to the body's end and no further.
        Reading it yourself leaves nothing for ``body``, ``form``, ``files`` and ``json``."""
        if self._stream is None:
            length = self.content_length
            terminated = self.environ.get("wsgi.input_terminated", False)
            if length is None and not terminated:
                length = 0  # no Content-Length and no end marked: no body (PEP 3333)
            limit = self.app.max_content_length if self.app is not None else None
            if limit is not None and length is not None and length > limit:
                raise HTTPError(413, f"the request body is larger than {limit} bytes")
            self._stream = _LimitedInput(self.environ["wsgi.input"], length, limit)
        return self._stream

    @property
    def body(self) -> bytes:
        """The whole body, read on first use."""
        if self._body is _NOT_READ:
            if self._form is not None:
                raise RuntimeError("the body went to request.form; read request.body first")
            self._body = self.stream.read()
        return self._body

    @property
    def form(self) -> MultiDict:
        """The fields of a urlencoded or multipart form (files are in ``files``)."""
        if self._form is None:
            self._parse_form()
        return self._form  # type: ignore[return-value]

    @property
    def files(self) -> MultiDict:
        """The files of a multipart form, as :class:`UploadFile` by field name."""
        if self._files is None:
            self._parse_form()
        return self._files  # type: ignore[return-value]

    def _parse_form(self) -> None:
        mimetype, options = parse_options(self.content_type)
        limits = self._limits()
        if mimetype == "multipart/form-data" and self._body is _NOT_READ:
            self._form, self._files = parse_multipart(
                self.stream.read, options.get("boundary"), limits
            )
            return
        if mimetype == "application/x-www-form-urlencoded":
            if self._body is _NOT_READ:
                length = self.content_length
                if length is not None and length > limits.max_field:
                    raise HTTPError(413, f"the form is larger than {limits.max_field} bytes")
                data = self.stream.read(limits.max_field + 1)
                if len(data) > limits.max_field:
                    raise HTTPError(413, f"the form is larger than {limits.max_field} bytes")
                self._body = data
            self._form, self._files = parse_urlencoded(self._body, limits), MultiDict()
            return
        if mimetype == "multipart/form-data":
            from io import BytesIO

            self._form, self._files = parse_multipart(
                BytesIO(self._body).read, options.get("boundary"), limits
            )
            return
        self._form, self._files = MultiDict(), MultiDict()

    @property
    def is_json(self) -> bool:
        """Whether the body says it is JSON (``application/json`` or ``...+json``)."""
        mimetype = self.mimetype
        return mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )

    @property
    def json(self) -> Any:
        """The body as JSON. A body of another type is a 415, JSON that does not parse a 400,
        each saying why."""
        if self._json is _NOT_READ:
            if not self.is_json:
                sent = self.content_type or "none"
                raise HTTPError(
                    415, f"expected a Content-Type of application/json, the request sent {sent}"
                )
            body = self.body
            try:
                self._json = json.loads(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPError(400, "the JSON body is not UTF-8") from None
            except json.JSONDecodeError as exc:
                raise HTTPError(400, f"the body is not valid JSON: {exc}") from None
        return self._json

    # --- building URLs ------------------------------------------------------------------------

    def url_for(self, endpoint: str, *, _external: bool = False, **values: Any) -> str:
        """The URL of the route named ``endpoint`` with ``values``, below this request's mount
        point; ``_external=True`` adds the scheme and host."""
        if self.app is None:
            raise RuntimeError("this request belongs to no App")
        root = quote(self.script_root.encode("utf-8"), safe=_PATH_SAFE)
        path = root + self.app.router.build(endpoint, values)
        return self.host_url + path if _external else path

    def close(self) -> None:
        """Close the uploaded files (their temporary files go)."""
        if self._files:
            for _, upload in self._files.items(multi=True):
                if isinstance(upload, UploadFile):
                    upload.close()
