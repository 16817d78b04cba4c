"""``Client(app)``: call any WSGI application in-process, without sockets, as a browser would.

    client = Client(app)
    answer = client.post("/login", data={"username": "zhangsan", "password": "..."})
    assert answer.status_code == 303
    assert client.get("/info").text.count("zhangsan") == 1   # the cookie came along

The client keeps the cookies the app sets (as a browser, by name), encodes forms, files
(``multipart/form-data``) and JSON, and follows redirects when asked. Each call builds a
PEP 3333 environ, runs the app, reads the whole body and closes it, so teardown hooks run
before the call returns.
"""

from __future__ import annotations

import io
import json as _json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from netassist.web.cookies import parse_cookie_header
from netassist.web.structures import Headers

__all__ = ["Client", "TestResponse"]

FileSpec = bytes | IO[bytes] | tuple[str, bytes | IO[bytes]] | tuple[str, bytes | IO[bytes], str]


class TestResponse:
    """What the app answered: ``status_code``, ``status``, ``headers``, ``data`` (bytes),
    ``text``, ``json()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self.status = status
        self.status_code = int(status.split(" ", 1)[0])
        self.headers = Headers(headers)
        self.data = data
        #: The responses redirects led through, first to last (with follow_redirects).
        self.history: list[TestResponse] = []

    def __repr__(self) -> str:
        return f"<TestResponse {self.status}>"

    @property
    def text(self) -> str:
        """The body as text (UTF-8)."""
        return self.data.decode("utf-8")

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header."""
        return self.headers.get("Content-Type")

    @property
    def location(self) -> str | None:
        """The ``Location`` header of a redirect."""
        return self.headers.get("Location")

    def json(self) -> Any:
        """The body as JSON."""
        return _json.loads(self.data)


class Client:
    """An in-process client of ``app`` (any WSGI application)."""

    __test__ = False

    def __init__(self, app: Callable, base_url: str = "http://localhost") -> None:
        self.app = app
        parts = urlsplit(base_url)
        self.scheme = parts.scheme or "http"
        self.host = parts.netloc or "localhost"
        #: The cookies the app has set, by name.
        self.cookies: dict[str, str] = {}

    # --- the verbs ----------------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        """HEAD ``path``."""
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> TestResponse:
        """OPTIONS ``path``."""
        return self.request("OPTIONS", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """POST to ``path``."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        """PUT to ``path``."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        """PATCH ``path``."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        headers: Mapping[str, str] | None = None,
        environ: Mapping[str, Any] | None = None,
        follow_redirects: bool = False,
    ) -> TestResponse:
        """Send one request. ``data``: a dict (a urlencoded form, or multipart with
        ``files``: name -> bytes, a file, or (filename, content[, type])) or raw bytes;
        ``json``: a value sent as JSON; ``environ``: keys to set in the environ (such as
        ``REMOTE_ADDR``)."""
        body, content_type = _encode_body(data, json, files)
        response = self._send(method, path, params, body, content_type, headers, environ)
        history = []
        while follow_redirects and response.status_code in (301, 302, 303, 307, 308):
            if len(history) >= 10:
                raise RuntimeError(f"more than 10 redirects from {method} {path}")
            history.append(response)
            path = urljoin(f"{self.scheme}://{self.host}{path}", response.location or "")
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method, body, content_type = "GET", b"", None
            response = self._send(method, path, None, body, content_type, headers, environ)
        response.history = history
        return response

    # --- doing it -----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None,
        extra: Mapping[str, Any] | None,
    ) -> TestResponse:
        parts = urlsplit(url)
        query = parts.query
        if params:
            added = urlencode(list(params.items() if isinstance(params, Mapping) else params))
            query = f"{query}&{added}" if query else added
        host = parts.netloc or self.host
        name, _, port = host.partition(":")
        scheme = parts.scheme or self.scheme
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(parts.path or "/", "utf-8").encode("utf-8").decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": (parts.path or "/") + (f"?{query}" if query else ""),
            "SERVER_NAME": name,
            "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": host,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            environ["CONTENT_LENGTH"] = str(len(body))
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for key, value in (headers or {}).items():
            wsgi_key = key.upper().replace("-", "_")
            if wsgi_key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                wsgi_key = "HTTP_" + wsgi_key
            environ[wsgi_key] = value
        environ.update(extra or {})
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: list, exc_info: Any = None) -> Callable:
            if exc_info is not None and captured:
                raise exc_info[1].with_traceback(exc_info[2])
            captured["status"], captured["headers"] = status, response_headers
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.app(environ, start_response)
        try:
            chunks = [*captured.get("written", []), *result]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        response = TestResponse(captured["status"], captured["headers"], b"".join(chunks))
        self._keep_cookies(response)
        return response

    def _keep_cookies(self, response: TestResponse) -> None:
        for header in response.headers.getlist("Set-Cookie"):
            first, *attributes = header.split(";")
            name, _, value = first.strip().partition("=")
            gone = any(
                a.strip().lower() in ("max-age=0", "expires=thu, 01 jan 1970 00:00:00 gmt")
                for a in attributes
            )
            if gone:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def cookie(self, name: str) -> str | None:
        """The value of a cookie the client holds, decoded."""
        if name not in self.cookies:
            return None
        return parse_cookie_header(f"{name}={self.cookies[name]}")[name]


def _encode_body(
    data: Mapping[str, Any] | bytes | str | None,
    json_value: Any,
    files: Mapping[str, FileSpec] | None,
) -> tuple[bytes, str | None]:
    if json_value is not None:
        return _json.dumps(json_value).encode(), "application/json"
    if files:
        return _multipart(data if isinstance(data, Mapping) else {}, files)
    if isinstance(data, str):
        return data.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(data, bytes):
        return data, None
    if data:
        pairs = [
            (key, item)
            for key, value in data.items()
            for item in (value if isinstance(value, list | tuple) else [value])
        ]
        return urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    return b"", None


def _multipart(fields: Mapping[str, Any], files: Mapping[str, FileSpec]) -> tuple[bytes, str]:
    boundary = "netassist" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            )
            out.write(str(item).encode("utf-8") + b"\r\n")
    for name, spec in files.items():
        filename, content, kind = _file_parts(name, spec)
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _file_parts(name: str, spec: FileSpec) -> tuple[str, bytes, str]:
    kind = "application/octet-stream"
    if isinstance(spec, tuple):
        filename, content = spec[0], spec[1]
        if len(spec) > 2:
            kind = spec[2]  # type: ignore[misc]
    else:
        filename, content = os.path.basename(getattr(spec, "name", name)), spec
    data = content if isinstance(content, bytes) else content.read()
    return filename, data, kind
