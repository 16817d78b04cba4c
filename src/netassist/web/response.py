"""Responses: :class:`Response` and the helpers that make one.

A ``Response`` is itself a WSGI application: called with the environ, it sends its status,
headers and body. So what depends on the request is settled then, not when the handler
builds it: ``Secure`` on cookies served over HTTPS, no body for HEAD, and for
:func:`send_file` the ranges and conditional requests of ``netassist.static``.
"""

from __future__ import annotations

import html
import json as _json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from netassist.web import cookies as _cookies
from netassist.web.errors import abort, reason
from netassist.web.structures import Headers, check_header

__all__ = [
    "FileResponse",
    "Response",
    "json",
    "make_response",
    "redirect",
    "send_file",
    "send_from_directory",
]

HTML = "text/html; charset=utf-8"
JSON = "application/json"
_KNOWN_TYPES = frozenset({HTML, JSON})


def _json_encoder() -> Callable[[Any], str]:
    """The fastest correct ``json.dumps(value, ensure_ascii=False)`` at hand.

    ``JSONEncoder.encode`` builds a C encoder object for every call (about a third of what
    a small JSON answer costs); this builds it once. Without circular-reference markers,
    so a value that contains itself ends in RecursionError (a 500) instead of ValueError.
    Where ``_json`` is missing, or the result differs from the stdlib's, the stdlib it is.
    """
    plain = _json.JSONEncoder(ensure_ascii=False)
    try:
        from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]

        made = c_make_encoder(
            None, plain.default, c_encode_basestring, None, ": ", ", ", False, False, True
        )

        def encode(value: Any) -> str:
            return "".join(made(value, 0))

        sample = {"a": [1, 2.5, None, True, '中\n"x'], "b": {}}
        if encode(sample) == plain.encode(sample):
            return encode
    except (ImportError, TypeError, ValueError):
        pass
    return plain.encode


_ENCODE_JSON = _json_encoder()
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
_URL_SAFE = "/:?#[]@!$&'()*+,;=%-._~"


class Response:
    """Status, headers and body. ``body`` is bytes, str (sent as UTF-8) or an iterable of
    either (streamed, with no ``Content-Length``). ``status=None`` means 200, or for an
    error handler's answer, the error's status."""

    def __init__(
        self,
        body: bytes | str | Iterable[bytes | str] = b"",
        status: int | None = None,
        headers: Headers | Iterable[tuple[str, str]] | dict[str, str] | None = None,
        content_type: str | None = HTML,
    ) -> None:
        if status is not None and not 100 <= status <= 999:
            raise ValueError(f"an HTTP status is three digits, not {status}")
        self.status_code = status
        if headers is None:  # the common case, kept cheap: one request makes one of these
            if content_type is None:
                self.headers = Headers.checked([], set())
            else:
                if content_type not in _KNOWN_TYPES:
                    check_header("Content-Type", content_type)
                self.headers = Headers.checked([("Content-Type", content_type)], {"content-type"})
        else:
            self.headers = headers if isinstance(headers, Headers) else Headers(headers)
            if content_type is not None and "content-type" not in self.headers:
                self.headers["Content-Type"] = content_type
        self.body = body
        self.cookies: list[_cookies.Cookie] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"

    @property
    def status(self) -> str:
        """The status line: ``200 OK``."""
        code = self.status_code or 200
        line = _STATUS_LINES.get(code)
        return line if line is not None else f"{code} {reason(code)}"

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header."""
        return self.headers.get("Content-Type")

    def set_cookie(
        self,
        name: str,
        value: Any,
        *,
        secret: str | bytes | None = None,
        max_age: int | timedelta | None = None,
        expires: int | float | timedelta | datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = "Lax",
    ) -> None:
        """Send a cookie. The defaults are the safe ones: ``HttpOnly`` (scripts cannot read
        it), ``SameSite=Lax`` (other sites' forms do not carry it), ``Secure`` when the request
        came over HTTPS (``secure=None``; say True or False to decide yourself).

        With ``secret``, ``value`` may be anything JSON can write, and is signed (HMAC-SHA256);
        ``request.get_cookie(name, secret=...)`` gives it back, or the default if it was
        altered. Without it, ``value`` is text, percent-encoded where a cookie needs it.
        """
        if secret is not None:
            value = _cookies.sign(value, secret, name)
        elif not isinstance(value, str):
            raise TypeError(f"cookie {name!r}: a value is text (or pass secret= to sign JSON)")
        if isinstance(max_age, timedelta):
            max_age = int(max_age.total_seconds())
        self.cookies.append(
            _cookies.Cookie(
                name,
                value,
                max_age=max_age,
                expires=_cookies.expires_from(expires),
                path=path,
                domain=domain,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
            )
        )

    def delete_cookie(
        self, name: str, *, path: str | None = "/", domain: str | None = None
    ) -> None:
        """Tell the client to forget a cookie (the same ``path`` and ``domain`` it was set
        with)."""
        self.set_cookie(name, "", max_age=0, expires=0, path=path, domain=domain)

    def header_items(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The headers to send for ``environ``: this response's, then its cookies."""
        return self.headers.items() + self._cookie_headers(environ)

    def _cookie_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        https = environ.get("wsgi.url_scheme") == "https"
        return [("Set-Cookie", cookie.header(https)) for cookie in self.cookies]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Send this response (WSGI)."""
        body = self.body
        kind = type(body)
        if kind is str:
            body, kind = body.encode("utf-8"), bytes
        elif kind is not bytes and isinstance(body, str | bytes | bytearray):
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            kind = bytes
        if kind is bytes:
            headers = self.headers
            items = headers._items
            code = self.status_code
            if "content-length" not in headers._names and (
                code is None or (code >= 200 and code != 204 and code != 304)
            ):
                items = [*items, ("Content-Length", str(len(body)))]
            if self.cookies:
                items = [*items, *self._cookie_headers(environ)]
            line = _STATUS_LINES.get(code or 200)
            start_response(line if line is not None else self.status, items)
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        start_response(self.status, self.header_items(environ))
        if environ["REQUEST_METHOD"] == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return _Encoded(body)


def _may_have_body(status: int | None) -> bool:
    return status is None or not (100 <= status < 200 or status in (204, 304))


class _Encoded:
    """An iterable body, str items sent as UTF-8; closing it closes the handler's iterable."""

    def __init__(self, body: Iterable[bytes | str]) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        for item in self.body:
            if isinstance(item, str):
                item = item.encode("utf-8")
            if item:
                yield item

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def json(
    data: Any, status: int | None = None, headers: Iterable[tuple[str, str]] | None = None
) -> Response:
    """``data`` as an ``application/json`` response (UTF-8, non-ASCII text left readable)."""
    body = _ENCODE_JSON(data).encode("utf-8")
    return Response(body, status, headers, content_type=JSON)


def _json_response(body: bytes) -> Response:
    """``Response(body, content_type=JSON)`` without the checks it does not need: a
    handler's dict becomes one of these on every request."""
    response = Response.__new__(Response)
    response.status_code = None
    headers = Headers.__new__(Headers)
    headers._items = [("Content-Type", JSON)]
    headers._names = {"content-type"}
    response.headers = headers
    response.body = body
    response.cookies = []
    return response


def redirect(location: str, status: int = 302) -> Response:
    """Send the client to ``location`` (303 after a form's POST; 301/308 for moved for good,
    302/307 for now; 307 and 308 keep the method and body)."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"a redirect is 301, 302, 303, 307 or 308, not {status}")
    target = (
        quote(location, safe=_URL_SAFE) if not location.isascii() or " " in location else location
    )
    # A line of HTML for clients that do not follow redirects (and a Content-Type with it).
    link = html.escape(target)
    response = Response(f'<p>Redirecting to <a href="{link}">{link}</a></p>\n', status)
    response.headers["Location"] = target
    return response


def make_response(value: Any) -> Response:
    """What a handler returned, as a :class:`Response`: a Response as it is; str and bytes as
    HTML; a dict or list as JSON; another iterable streamed; a tuple of (body, status),
    (body, headers) or (body, status, headers)."""
    kind = type(value)
    if kind is dict:
        return _json_response(_ENCODE_JSON(value).encode("utf-8"))
    if kind is str or kind is bytes:
        return Response(value)
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        if not 2 <= len(value) <= 3:
            raise TypeError(f"a handler returns (body, status[, headers]), not {len(value)} items")
        body, *rest = value
        response = make_response(body)
        for item in rest:
            if isinstance(item, int):
                response.status_code = item
            else:
                pairs = item.items() if isinstance(item, dict) else item
                for name, header in pairs:
                    response.headers[name] = header
        return response
    if isinstance(value, str | bytes | bytearray):
        return Response(value)
    if isinstance(value, dict | list):
        return json(value)
    if value is None:
        raise TypeError("the handler returned None; return a body, a dict or a Response")
    if isinstance(value, Iterable):
        return Response(value)
    raise TypeError(f"a handler cannot return {type(value).__name__}")


# --- files --------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _static_app(folder: str, trusted: bool, max_age: int | None) -> Any:
    from netassist.static import StaticFiles

    return StaticFiles(
        folder,
        listing=False,
        show_hidden=trusted,
        follow_symlinks=trusted,
        max_age=max_age,
    )


class FileResponse(Response):
    """A file, served by ``netassist.static.StaticFiles`` when the response is sent: its
    content type, ETag and Last-Modified, 304 for conditional requests, single and multiple
    ranges, and ``sendfile`` under netassist's server."""

    def __init__(
        self,
        folder: str,
        name: str,
        *,
        trusted: bool,
        max_age: int | None = None,
        download_name: str | None = None,
        as_attachment: bool = False,
    ) -> None:
        super().__init__(b"", None, content_type=None)
        self.folder = folder
        self.name = name
        self.trusted = trusted
        self.max_age = max_age
        if as_attachment or download_name is not None:
            shown = download_name or os.path.basename(name)
            kind = "attachment" if as_attachment else "inline"
            self.headers["Content-Disposition"] = _disposition(kind, shown)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Send the file (WSGI)."""
        static = _static_app(self.folder, self.trusted, self.max_age)
        path = "/" + self.name.replace(os.sep, "/").lstrip("/")
        wire = path.encode("utf-8").decode("latin-1")
        inner = dict(environ, PATH_INFO=wire, SCRIPT_NAME="")
        inner["RAW_URI"] = inner["REQUEST_URI"] = quote(path)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            # A file sent as the answer to a POST: the whole file, no conditions or ranges.
            inner["REQUEST_METHOD"] = "GET"
            for key in (
                "HTTP_RANGE",
                "HTTP_IF_RANGE",
                "HTTP_IF_NONE_MATCH",
                "HTTP_IF_MODIFIED_SINCE",
            ):
                inner.pop(key, None)
        ours = self.header_items(environ)
        status_override = self.status_code

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status_override is not None and status.startswith("200"):
                status = f"{status_override} {reason(status_override)}"
            mine = {name.lower() for name, _ in ours if name.lower() != "set-cookie"}
            kept = [(n, v) for n, v in headers if n.lower() not in mine]
            if not status.startswith(("200", "206", "304")):
                ours_now = [(n, v) for n, v in ours if n.lower() != "content-disposition"]
            else:
                ours_now = ours
            return start_response(status, kept + ours_now, exc_info)

        return static(inner, respond)


def _disposition(kind: str, filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    ascii_name = "".join(c if 32 <= ord(c) < 127 else "_" for c in ascii_name)
    header = f'{kind}; filename="{ascii_name}"'
    if ascii_name != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def send_file(
    path: str | os.PathLike[str],
    *,
    max_age: int | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
) -> FileResponse:
    """Answer with the file at ``path``, a path your code chose (for a name from the
    client use :func:`send_from_directory`). Ranges and conditional requests come with it.
    ``max_age`` sets ``Cache-Control`` (default ``no-cache``: browsers revalidate);
    ``as_attachment`` asks the browser to download it, as ``download_name``."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"send_file: {path} is not a file")
    return FileResponse(
        str(file.parent),
        file.name,
        trusted=True,
        max_age=max_age,
        download_name=download_name,
        as_attachment=as_attachment,
    )


def send_from_directory(
    folder: str | os.PathLike[str],
    name: str,
    *,
    max_age: int | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
) -> FileResponse:
    """Answer with the file ``name`` (which a client may have chosen) inside ``folder``, by
    the rules of ``netassist serve``: no ``..``, no dot-files, no links leading out, and 404
    for anything else."""
    from netassist.paths import PathRefused, resolve_real

    root = Path(folder).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"send_from_directory: {folder} is not a folder")
    # Judged now, so that a refusal is a 404 that error handlers see; the static app
    # judges the name again when it opens the file.
    try:
        _, st = resolve_real(str(root), "/" + name, follow_symlinks=False, show_hidden=False)
    except (PathRefused, ValueError):
        abort(404)
    if not stat.S_ISREG(st.st_mode):
        abort(404)
    return FileResponse(
        str(root),
        name,
        trusted=False,
        max_age=max_age,
        download_name=download_name,
        as_attachment=as_attachment,
    )
