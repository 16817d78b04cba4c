"""The small-file cache: hits only while the file is unchanged, never for a fresh file."""

from __future__ import annotations

import gzip
import os
import time

from netassist.static import StaticFiles


def _get(app: StaticFiles, path: str, **headers: str) -> tuple[str, dict, bytes]:
    return _get_raw(app, path, path, **headers)


def _get_raw(app: StaticFiles, path: str, raw: str, **headers: str) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "RAW_URI": raw,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    got = {}

    def start_response(status, response_headers, exc_info=None):
        got["status"], got["headers"] = status, dict(response_headers)

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close:
            close()
    return got["status"], got["headers"], data


def _caching_app(root, **options) -> StaticFiles:
    """An app that caches every file it serves, whatever the file's age."""
    app = StaticFiles(root, **options)
    app._cache.may_keep = lambda st: True
    return app


def _settle(path, age: float = 60) -> None:
    """Date the file back, as if it had been quiet for ``age`` seconds."""
    past = time.time() - age
    os.utime(path, (past, past))


def test_settled_file_is_served_from_memory_until_it_changes(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(b"first version")
    _settle(page)
    app = StaticFiles(tmp_path)
    # The change time cannot be dated back, and waiting out the settle time would cost
    # seconds: admit the file now (the settle rule has its own test below).
    app._cache.may_keep = lambda st: st.st_size <= app._cache.max_file
    status, _headers, body = _get(app, "/page.txt")
    assert (status, body) == ("200 OK", b"first version")
    assert len(app._cache) == 1
    assert _get(app, "/page.txt")[2] == b"first version"

    # Same size and the old modification time put back: only the change time tells.
    mtime = os.stat(page).st_mtime_ns
    time.sleep(0.05)  # past the file-system clock's tick, which the settle rule waits out
    page.write_bytes(b"later version")
    os.utime(page, ns=(mtime, mtime))
    status, headers2, body = _get(app, "/page.txt")
    assert body == b"later version"
    assert headers2["Content-Length"] == "13"


def test_recently_modified_file_is_not_cached(tmp_path):
    (tmp_path / "new.txt").write_bytes(b"just written")
    app = StaticFiles(tmp_path)
    assert _get(app, "/new.txt")[2] == b"just written"
    assert len(app._cache) == 0


def test_cached_answer_still_honours_ranges_conditionals_and_compression(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(b"0123456789" * 10)
    _settle(page)
    app = _caching_app(tmp_path, gzip=True)
    _, headers, _ = _get(app, "/page.txt")
    assert len(app._cache) == 1
    assert _get(app, "/page.txt", range="bytes=0-3")[:3:2] == ("206 Partial Content", b"0123")
    assert _get(app, "/page.txt", if_none_match=headers["ETag"])[0] == "304 Not Modified"
    _status, zipped_headers, zipped = _get(app, "/page.txt", accept_encoding="gzip")
    assert zipped_headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped) == b"0123456789" * 10


class FakeClock:
    """Stands in for the ``time`` module of the static app: a monotonic clock the test moves,
    the wall clock as it is."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.time = time.time

    def monotonic(self) -> float:
        return self.now


def test_precompressed_sibling_that_appears_is_noticed_within_a_second(tmp_path, monkeypatch):
    from netassist.static import app as app_module
    from netassist.static import cache as cache_module

    clock = FakeClock()
    monkeypatch.setattr(app_module, "time", clock)
    monkeypatch.setattr(cache_module, "time", clock)
    page = tmp_path / "app.js"
    page.write_bytes(b"console.log(1)")
    _settle(page)
    app = _caching_app(tmp_path)
    _get(app, "/app.js")
    assert len(app._cache) == 1
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(b"console.log(1)"))
    clock.now += 0.5  # within the same second the cached copy is still served...
    _status, headers, _ = _get(app, "/app.js", accept_encoding="gzip")
    assert "Content-Encoding" not in headers
    clock.now += 0.5  # ...and in the next the sibling is looked for again
    _status, headers, body = _get(app, "/app.js", accept_encoding="gzip")
    assert headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"console.log(1)"


def test_a_cached_path_asked_for_with_an_encoded_slash_is_still_refused(tmp_path):
    (tmp_path / "dir").mkdir()
    page = tmp_path / "dir" / "page.txt"
    page.write_bytes(b"inside")
    _settle(page)
    app = _caching_app(tmp_path)
    assert _get(app, "/dir/page.txt")[2] == b"inside"
    assert _get(app, "/dir/page.txt")[2] == b"inside"  # the repeat takes the short way
    assert _get_raw(app, "/dir/page.txt", "/dir%2fpage.txt")[0] == "404 Not Found"


def test_a_cached_path_whose_file_was_replaced_serves_the_new_file(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(b"old file")
    _settle(page)
    app = _caching_app(tmp_path)
    _get(app, "/page.txt")
    assert _get(app, "/page.txt")[2] == b"old file"
    replacement = tmp_path / "new.txt"
    replacement.write_bytes(b"new file")  # same size, another inode
    os.replace(replacement, page)
    assert _get(app, "/page.txt")[2] == b"new file"
