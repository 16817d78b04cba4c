"""``StaticFiles``: a WSGI application that serves a folder, as ``netassist serve`` does.

It is plain WSGI (it never imports the server, nor asks which one runs it), so it runs under
any WSGI server and inside the framework. A large file goes out through the server's
``wsgi.file_wrapper`` where there is one (netassist's sends it with ``os.sendfile``).
"""

from __future__ import annotations

import gzip
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

from netassist.paths import PathRefused, has_encoded_separator, resolve_child, resolve_real
from netassist.static import listing
from netassist.static.cache import CachedFile, SmallFileCache, stat_key
from netassist.static.conditional import (
    Unsatisfiable,
    etag_for,
    if_range_matches,
    last_modified,
    none_match,
    not_modified_since,
    parse_ranges,
)
from netassist.static.types import check_charset, content_type, is_textual

BLOCK = 1 << 20
SMALL_FILE = 64 * 1024  # read whole and sent with the head; larger files stream
GZIP_LIMIT = 4 << 20  # on-the-fly gzip only for text files smaller than this
HOT_PATHS = 4096


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: Iterable[bytes]) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class FileRange:
    """``length`` bytes of an open file from ``start``, as an iterable and as a file
    (``read``, ``fileno``, ``tell``): a server's ``wsgi.file_wrapper`` that reads it stops at
    the range's end, and one that sends the file itself starts at ``tell()`` and stops at
    the Content-Length, as PEP 3333 asks. Closing it closes the file."""

    def __init__(self, handle: IO[bytes], start: int, length: int) -> None:
        self.handle = handle
        self._left = length
        handle.seek(start)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left with -1), never past the range."""
        if size < 0 or size > self._left:
            size = self._left
        data = self.handle.read(size) if size else b""
        self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(BLOCK):
            yield block

    def fileno(self) -> int:
        """The file's descriptor."""
        return self.handle.fileno()

    def tell(self) -> int:
        """Where in the file the next byte comes from."""
        return self.handle.tell()

    def close(self) -> None:
        """Close the file."""
        self.handle.close()


class StaticFiles:
    """Serve the files under ``root``.

    ``listing`` shows folders without an ``index.html``; ``show_hidden`` serves dot-names;
    ``follow_symlinks`` serves links that lead outside ``root``; ``max_age`` sets
    ``Cache-Control: max-age`` (default ``no-cache``: browsers revalidate with the ETag);
    ``gzip`` compresses text files on the fly when the client accepts it; ``charset`` labels
    every text file, HTML included (by default text is utf-8 and HTML unlabelled, so that a
    page's own ``<meta charset>`` decides).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        listing: bool = True,
        show_hidden: bool = False,
        follow_symlinks: bool = False,
        max_age: int | None = None,
        gzip: bool = False,
        index: str = "index.html",
        charset: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root} is not a folder")
        if max_age is not None and max_age < 0:
            raise ValueError(f"max_age must not be negative, not {max_age}")
        self.charset = None if charset is None else check_charset(charset)
        self._real_root = str(self.root)
        self.listing = listing
        self.show_hidden = show_hidden
        self.follow_symlinks = follow_symlinks
        self.cache_control = "no-cache" if max_age is None else f"public, max-age={int(max_age)}"
        self.gzip = gzip
        self.index = index
        self._cache = SmallFileCache(max_file=SMALL_FILE)
        # PATH_INFO -> the real path it resolved to, for paths whose file is cached: a repeat
        # request needs one lstat, whose device and inode must still be the cached file's.
        self._hot: dict[str, str] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The WSGI entry point."""
        response = None
        real = self._hot.get(environ.get("PATH_INFO", ""))
        if real is not None:
            response = self._hot_response(environ, real)
        if response is None:
            response = self.respond(environ)
        start_response(response.status, response.headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            close = getattr(response.body, "close", None)
            if close is not None:
                close()
            return []
        return response.body

    # --- deciding -----------------------------------------------------------------------------

    def respond(self, environ: dict) -> _Response:
        """What to answer ``environ`` with (status, headers, body)."""
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            return self._plain(
                "405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")]
            )
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if has_encoded_separator(raw.partition("?")[0]):
            return self._not_found()
        try:
            path_info = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
            real, st = resolve_real(
                self._real_root,
                path_info,
                follow_symlinks=self.follow_symlinks,
                show_hidden=self.show_hidden,
            )
        except (PathRefused, UnicodeError):
            return self._not_found()
        if stat.S_ISDIR(st.st_mode):
            if not path_info.endswith("/"):
                location = quote((environ.get("SCRIPT_NAME", "") + path_info).encode("utf-8")) + "/"
                query = environ.get("QUERY_STRING")
                if query:
                    location += "?" + query
                return _Response(
                    "301 Moved Permanently", [("Location", location), ("Content-Length", "0")], []
                )
            index = self._entry(real, self.index)
            if index is not None and stat.S_ISREG(index[1].st_mode):
                return self._file(environ, index[0])
            if not self.listing:
                return self._not_found()
            return self._listing(environ, real, path_info)
        cached = self._cache.get(real, st)
        if cached is not None:
            if len(self._hot) >= HOT_PATHS:
                self._hot.clear()
            self._hot[path_info] = real
            response = self._from_cache(environ, real, cached)
            if response is not None:
                return response
        return self._file(environ, real, st)

    def _not_found(self) -> _Response:
        return self._plain("404 Not Found", "not found")

    @staticmethod
    def _plain(status: str, text: str, extra: list[tuple[str, str]] | None = None) -> _Response:
        body = (text + "\n").encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        headers += [("X-Content-Type-Options", "nosniff"), *(extra or [])]
        return _Response(status, headers, [body])

    def _listing(self, environ: dict, folder: str, url_path: str) -> _Response:
        items = listing.entries(
            folder,
            self._real_root,
            show_hidden=self.show_hidden,
            follow_symlinks=self.follow_symlinks,
        )
        accept = environ.get("HTTP_ACCEPT", "")
        if "application/json" in accept and "text/html" not in accept:
            body, kind = listing.as_json(url_path, items), "application/json; charset=utf-8"
        else:
            body, kind = listing.as_html(url_path, items), "text/html; charset=utf-8"
        headers = [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Vary", "Accept"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        return _Response("200 OK", headers, [body])

    def _entry(self, folder: str, name: str) -> tuple[str, os.stat_result] | None:
        """``name`` inside the real ``folder`` as a request for it would resolve (its real
        path and stat), or None: an index or a sibling is held to the same rules."""
        try:
            return resolve_child(
                self._real_root,
                folder,
                name,
                show_hidden=self.show_hidden,
                follow_symlinks=self.follow_symlinks,
            )
        except PathRefused:
            return None

    def _siblings(self, path: str) -> dict[str, str]:
        """The precompressed siblings of a file: encoding -> path (``.br``, ``.gz``)."""
        found = {}
        folder, name = os.path.split(path)
        for encoding, suffix in (("br", ".br"), ("gzip", ".gz")):
            sibling = self._entry(folder, name + suffix)
            if sibling is not None and stat.S_ISREG(sibling[1].st_mode):
                found[encoding] = sibling[0]
        return found

    def _hot_response(self, environ: dict, real: str) -> _Response | None:
        """The cached answer for a path seen before, when it still applies; None sends the
        request the whole way. The path's verdict cannot have changed (it depends on its
        text alone), and a file reached some other way now has another device or inode."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw is None or "%" in raw:
            return None  # encoded names take the full checks
        try:
            st = os.lstat(real)
        except OSError:
            return None
        cached = self._cache.get(real, st)
        if cached is None:
            return None
        return self._from_cache(environ, real, cached)

    def _from_cache(self, environ: dict, path: str, cached: CachedFile) -> _Response | None:
        """The plain 200 from a cached copy, or None when this request needs more (a range,
        a conditional, a compressed variant) or a precompressed sibling has appeared."""
        if (
            "HTTP_RANGE" in environ
            or "HTTP_IF_NONE_MATCH" in environ
            or "HTTP_IF_MODIFIED_SINCE" in environ
        ):
            return None
        if cached.gzip_candidate and "gzip" in _accepted_encodings(
            environ.get("HTTP_ACCEPT_ENCODING", "")
        ):
            return None
        now = int(time.monotonic())
        if cached.checked != now:  # siblings are looked for at most once a second
            if self._siblings(path):
                return None
            cached.checked = now
        return _Response("200 OK", list(cached.headers), [cached.data])

    def _file(self, environ: dict, path: str, path_stat: os.stat_result | None = None) -> _Response:
        kind = content_type(os.path.basename(path), self.charset)
        siblings = self._siblings(path)
        has_siblings = bool(siblings)
        chosen, encoding = path, None
        if siblings:
            accepted = _accepted_encodings(environ.get("HTTP_ACCEPT_ENCODING", ""))
            encoding = next((e for e in ("br", "gzip") if e in siblings and e in accepted), None)
            if encoding is not None:
                chosen = siblings[encoding]
        try:
            handle = open(chosen, "rb")  # noqa: SIM115 - the response closes it
        except OSError:
            return self._not_found()
        try:
            st = os.fstat(
                handle.fileno()
            )  # what is sent is what was stat'ed, not what is there later
            if not stat.S_ISREG(st.st_mode):
                handle.close()
                return self._not_found()
            on_the_fly = (
                encoding is None
                and self.gzip
                and is_textual(kind)
                and st.st_size <= GZIP_LIMIT
                and "gzip" in _accepted_encodings(environ.get("HTTP_ACCEPT_ENCODING", ""))
            )
            etag = etag_for(
                st,
                "-" + (encoding or ("gzip" if on_the_fly else ""))
                if (encoding or on_the_fly)
                else "",
            )
            headers = [
                ("ETag", etag),
                ("Last-Modified", last_modified(st)),
                ("Cache-Control", self.cache_control),
                ("X-Content-Type-Options", "nosniff"),
            ]
            if encoding or on_the_fly or has_siblings or self.gzip:
                headers.append(("Vary", "Accept-Encoding"))
            if _is_not_modified(environ, etag, st):
                handle.close()
                return _Response("304 Not Modified", headers, [])
            headers.append(("Content-Type", kind))
            if encoding:
                headers.append(("Content-Encoding", encoding))
            if on_the_fly:
                data = gzip.compress(handle.read(st.st_size), compresslevel=6, mtime=0)
                handle.close()
                headers += [("Content-Encoding", "gzip"), ("Content-Length", str(len(data)))]
                return _Response("200 OK", headers, [data])
            response = self._ranged(environ, handle, st, etag, headers)
            if (
                path_stat is not None
                and encoding is None
                and not on_the_fly
                and not has_siblings
                and response.status == "200 OK"
                and type(response.body) is list
                and self._cache.may_keep(st)
                and stat_key(st) == stat_key(path_stat)
            ):
                gzip_candidate = self.gzip and is_textual(kind) and st.st_size <= GZIP_LIMIT
                entry = CachedFile(stat_key(st), response.body[0], list(headers), gzip_candidate)
                self._cache.put(path, entry)
            return response
        except BaseException:
            handle.close()
            raise

    def _ranged(
        self, environ: dict, handle: IO[bytes], st: os.stat_result, etag: str, headers: list
    ) -> _Response:
        size = st.st_size
        headers.append(("Accept-Ranges", "bytes"))
        header = environ.get("HTTP_RANGE")
        ranges = None
        if header and (
            not environ.get("HTTP_IF_RANGE") or if_range_matches(environ["HTTP_IF_RANGE"], etag, st)
        ):
            try:
                ranges = parse_ranges(header, size)
            except Unsatisfiable:
                handle.close()
                return _Response(
                    "416 Range Not Satisfiable",
                    [*headers[:2], ("Content-Range", f"bytes */{size}"), ("Content-Length", "0")],
                    [],
                )
        if not ranges:
            headers.append(("Content-Length", str(size)))
            if size <= SMALL_FILE:
                # One read and one send with the head beat the sendfile set-up for small files.
                data = handle.read(size)
                handle.close()
                return _Response("200 OK", headers, [data])
            return _Response("200 OK", headers, self._send(environ, handle, 0, size))
        if len(ranges) == 1:
            start, end = ranges[0]
            headers += [
                ("Content-Range", f"bytes {start}-{end}/{size}"),
                ("Content-Length", str(end - start + 1)),
            ]
            return _Response(
                "206 Partial Content",
                headers,
                self._send(environ, handle, start, end - start + 1),
            )
        kind = next(v for n, v in headers if n == "Content-Type")
        boundary = os.urandom(12).hex()
        parts: list[tuple[bytes, int, int]] = []
        total = 0
        for start, end in ranges:
            part_head = (
                f"\r\n--{boundary}\r\nContent-Type: {kind}\r\n"
                f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
            ).encode("latin-1")
            parts.append((part_head, start, end - start + 1))
            total += len(part_head) + end - start + 1
        closing = f"\r\n--{boundary}--\r\n".encode("latin-1")
        total += len(closing)
        headers = [(n, v) for n, v in headers if n != "Content-Type"]
        headers += [
            ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
            ("Content-Length", str(total)),
        ]
        return _Response("206 Partial Content", headers, _Multipart(handle, parts, closing))

    @staticmethod
    def _send(environ: dict, handle: IO[bytes], start: int, length: int) -> Iterable[bytes]:
        """The body of a file range: through the server's ``wsgi.file_wrapper`` when it has
        one (the server may send it its own way), else read in blocks."""
        body = FileRange(handle, start, length)
        wrapper = environ.get("wsgi.file_wrapper")
        return body if wrapper is None else wrapper(body, BLOCK)


class _Multipart:
    """The body of a multipart/byteranges response."""

    def __init__(
        self, handle: IO[bytes], parts: list[tuple[bytes, int, int]], closing: bytes
    ) -> None:
        self.handle = handle
        self.parts = parts
        self.closing = closing

    def __iter__(self) -> Iterator[bytes]:
        for head, start, length in self.parts:
            yield head
            yield from FileRange(self.handle, start, length)
        yield self.closing

    def close(self) -> None:
        self.handle.close()


def _accepted_encodings(header: str) -> set[str]:
    accepted = set()
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name and q > 0:
            accepted.add(name)
    return accepted


def _is_not_modified(environ: dict, etag: str, st: os.stat_result) -> bool:
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    return since is not None and not_modified_since(since, st)
