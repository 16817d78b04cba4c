"""``netassist serve`` as a process, against curl and requests."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess

import pytest
import requests

from tests.conftest import need
from tests.static.conftest import CANARY
from tests.test_paths import HOSTILE

pytestmark = pytest.mark.integration


def test_file_types_and_headers(serve):
    base = serve()
    reply = requests.get(base + "/a.txt")
    assert reply.content == b"hello\n"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert reply.headers["ETag"].startswith('"')
    assert reply.headers["Last-Modified"].endswith("GMT")
    assert reply.headers["Accept-Ranges"] == "bytes"
    assert requests.get(base + "/module.wasm").headers["Content-Type"] == "application/wasm"
    assert requests.get(base + "/app.js", headers={"Accept-Encoding": "identity"}).headers[
        "Content-Type"
    ] == ("text/javascript; charset=utf-8")
    empty = requests.get(base + "/empty.txt")
    assert (
        empty.status_code == 200 and empty.content == b"" and empty.headers["Content-Length"] == "0"
    )


def test_max_age(serve):
    assert (
        requests.get(serve("--max-age", "600") + "/a.txt").headers["Cache-Control"]
        == "public, max-age=600"
    )


def test_busy_poll_serves_files_over_one_keep_alive_connection(serve):
    base = serve("--busy-poll", "200")
    with requests.Session() as session:
        for _ in range(50):
            assert session.get(base + "/a.txt").content == b"hello\n"


def test_head_equals_get_minus_body(serve):
    base = serve()
    for path in ("/a.txt", "/data.bin", "/", "/sub/"):
        get = requests.get(base + path)
        head = requests.head(base + path)
        assert head.content == b""
        assert head.status_code == get.status_code
        for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_conditional_requests_give_304_without_body_headers(serve):
    base = serve()
    first = requests.get(base + "/a.txt")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
    ):
        reply = requests.get(base + "/a.txt", headers=headers)
        assert reply.status_code == 304, headers
        assert reply.content == b""
        assert "Content-Length" not in reply.headers and "Content-Type" not in reply.headers
        assert reply.headers["ETag"] == etag
    assert requests.get(base + "/a.txt", headers={"If-None-Match": '"stale"'}).status_code == 200
    # If-None-Match wins over If-Modified-Since
    assert (
        requests.get(
            base + "/a.txt", headers={"If-None-Match": '"stale"', "If-Modified-Since": modified}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("0-0", 0, 0),
        ("0-", 0, 10239),
        ("10239-", 10239, 10239),
        ("-1", 10239, 10239),
        ("-10240", 0, 10239),
        ("100-199", 100, 199),
        ("10000-99999", 10000, 10239),
    ],
)
def test_single_ranges_at_the_edges(serve, site, spec, start, end):
    data = (site / "data.bin").read_bytes()
    reply = requests.get(serve() + "/data.bin", headers={"Range": f"bytes={spec}"})
    assert reply.status_code == 206
    assert reply.headers["Content-Range"] == f"bytes {start}-{end}/10240"
    assert reply.content == data[start : end + 1]


def test_unsatisfiable_and_ignored_ranges(serve):
    base = serve()
    reply = requests.get(base + "/data.bin", headers={"Range": "bytes=10240-"})
    assert reply.status_code == 416
    assert reply.headers["Content-Range"] == "bytes */10240"
    assert requests.get(base + "/data.bin", headers={"Range": "bytes=5-1"}).status_code == 200
    assert requests.get(base + "/data.bin", headers={"Range": "lines=1-2"}).status_code == 200


def test_multiple_ranges_are_multipart(serve, site):
    data = (site / "data.bin").read_bytes()
    reply = requests.get(serve() + "/data.bin", headers={"Range": "bytes=0-9,100-109,-5"})
    assert reply.status_code == 206
    kind = reply.headers["Content-Type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    boundary = kind.split("boundary=")[1].encode()
    parts = [p for p in reply.content.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    bodies = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts]
    assert bodies == [data[0:10], data[100:110], data[-5:]]
    assert int(reply.headers["Content-Length"]) == len(reply.content)


def test_if_range(serve):
    base = serve()
    etag = requests.get(base + "/data.bin").headers["ETag"]
    assert (
        requests.get(
            base + "/data.bin", headers={"Range": "bytes=0-1", "If-Range": etag}
        ).status_code
        == 206
    )
    assert (
        requests.get(
            base + "/data.bin", headers={"Range": "bytes=0-1", "If-Range": '"old"'}
        ).status_code
        == 200
    )


def test_precompressed_sibling_and_on_the_fly_gzip(serve, site):
    base = serve()
    reply = requests.get(base + "/app.js", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert reply.headers["Content-Encoding"] == "gzip"
    assert reply.headers["Vary"] == "Accept-Encoding"
    assert reply.raw.read() == (site / "app.js.gz").read_bytes()
    plain = requests.get(base + "/app.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["ETag"] != reply.headers["ETag"]
    assert (
        "Content-Encoding"
        not in requests.get(base + "/style.css", headers={"Accept-Encoding": "gzip"}).headers
    )
    base = serve("--gzip")
    reply = requests.get(base + "/style.css", headers={"Accept-Encoding": "gzip"})
    assert reply.headers["Content-Encoding"] == "gzip"
    assert reply.content == (site / "style.css").read_bytes()  # requests decodes it


def test_directories(serve):
    base = serve()
    reply = requests.get(base + "/sub?x=1", allow_redirects=False)
    assert reply.status_code == 301
    assert reply.headers["Location"] == "/sub/?x=1"
    assert requests.get(base + "/docs/").text == "<!DOCTYPE html><title>docs</title>"
    listing = requests.get(base + "/").text
    assert '<meta charset="utf-8">' in listing
    assert 'href="%E4%B8%AD%E6%96%87%20%231%3F%25.txt"' in listing
    assert "中文 #1?%.txt" in listing
    assert listing.index('href="docs/"') < listing.index('href="a.txt"')  # folders first
    for hidden in (".secret", "link-out", "dir-out", "fifo"):
        assert hidden not in listing
    chinese = requests.get(base + "/%E4%B8%AD%E6%96%87%20%231%3F%25.txt")
    assert chinese.text == "中文内容\n"
    assert requests.get(base + "/sub/%E6%B7%B1%E5%B1%82/c.txt").text == "c\n"


def test_json_listing(serve):
    reply = requests.get(serve() + "/sub/", headers={"Accept": "application/json"})
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    entries = reply.json()["entries"]
    assert [(e["name"], e["type"]) for e in entries] == [("深层", "directory"), ("b.txt", "file")]


def test_no_listing_and_methods(serve):
    base = serve("--no-listing")
    assert requests.get(base + "/sub/").status_code == 404
    reply = requests.post(base + "/a.txt", data=b"x")
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "GET, HEAD"


def raw_get(base: str, raw_path: bytes) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def test_traversal_suite_never_serves_the_canary(serve):
    base = serve()
    from urllib.parse import quote

    tried = 0
    for hostile in HOSTILE:
        name = hostile.encode("utf-8", "surrogateescape")  # one is not UTF-8
        for raw in {quote(name, safe="/%:\\").encode(), ("/" + quote(name, safe="/%")).encode()}:
            if not raw.startswith(b"/"):
                raw = b"/" + raw
            status, data = raw_get(base, raw)
            tried += 1
            assert CANARY.encode() not in data, raw
            assert status in (400, 404, 301, 414), (raw, status)
    assert tried >= 40
    assert requests.get(base + "/a.txt").status_code == 200  # and the server still serves


def test_curl_resume_gives_an_identical_file(serve, site, tmp_path):
    curl = need("curl")
    big = site / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    partial = tmp_path / "download.bin"
    partial.write_bytes(big.read_bytes()[: 1024 * 1024 + 5])  # an interrupted earlier download
    result = subprocess.run(
        [curl, "-s", "-C", "-", "-o", str(partial), serve() + "/big.bin"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (
        hashlib.sha256(partial.read_bytes()).hexdigest()
        == hashlib.sha256(big.read_bytes()).hexdigest()
    )
