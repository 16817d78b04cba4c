"""``netassist serve`` and the names a Linux folder holds: every one is served except the
documented refusals, and the listing shows exactly what is served."""

from __future__ import annotations

import http.client
import os
import socket
import stat
from urllib.parse import quote

import pytest
import requests

pytestmark = pytest.mark.integration

#: Names Linux holds and ``python -m http.server`` serves (several are refused by Windows).
ORDINARY = [
    "meeting 10:30.txt",
    "con.txt",
    "LPT1.txt",
    "aux.c",
    "trailing-dot.",
    "trailing space ",
    "back\\slash.txt",
    "a.txt::$DATA",
    "tab\there.txt",
    "中文 #1?%.txt",
    "100%25.txt",
    "sub",
]
LINKS_INSIDE = ["link-rel", "link-abs", "link-dir", "link-chain", "link-root", "sub/up"]
LINKS_OUTSIDE = ["link-out", "dir-out"]
HIDDEN = [".env", ".config", "link-to-hidden"]
NEVER = ["fifo", "sock", "dangling", "c%2fd.txt", "%2e%2e"]  # special, broken, encoded


@pytest.fixture
def names(tmp_path):
    """A folder holding every kind of name; returns it."""
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    for name in ORDINARY[:-1]:
        (root / name).write_text(f"content of {name}\n")
    (root / "sub" / "inner.txt").write_text("inner\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / ".config").mkdir()
    (root / ".config" / "x").write_text("x\n")
    (root / "c%2fd.txt").write_text("looks encoded\n")
    (root / "%2e%2e").write_text("looks encoded\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    os.symlink("sub/inner.txt", root / "link-rel")
    os.symlink(root / "aux.c", root / "link-abs")
    os.symlink("sub", root / "link-dir")
    os.symlink("link-rel", root / "link-chain")
    os.symlink(".", root / "link-root")
    os.symlink("../aux.c", root / "sub" / "up")
    os.symlink(".env", root / "link-to-hidden")
    os.symlink(tmp_path / "outside.txt", root / "link-out")
    os.symlink(tmp_path, root / "dir-out")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "fifo")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(root / "sock"))
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"not UTF-8")  # a name no URL in UTF-8 can name
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        pass  # not root: the FIFO and the socket stand for the special files
    yield root
    unix.close()


def start(netassist, root, *options) -> str:
    proc = netassist("serve", str(root), "--bind", "127.0.0.1:0", *options)
    port = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)").group(1)
    return f"http://127.0.0.1:{port}"


def served(base: str, folder: str, name: str) -> bool:
    """Whether GET answers the name (a folder after its redirect) with 200."""
    url = f"{base}/{folder}{quote(os.fsencode(name), safe='')}"
    reply = requests.get(url, allow_redirects=False, timeout=10)
    if reply.status_code == 301:
        reply = requests.get(url + "/", allow_redirects=False, timeout=10)
    assert reply.status_code in (200, 404), (name, reply.status_code)
    return reply.status_code == 200


def listed(base: str, folder: str) -> set[str]:
    reply = requests.get(f"{base}/{folder}", headers={"Accept": "application/json"}, timeout=10)
    assert reply.status_code == 200
    return {entry["name"] for entry in reply.json()["entries"]}


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        ((), []),
        (("--show-hidden",), HIDDEN),
        (("--follow-symlinks",), LINKS_OUTSIDE),
        (("--show-hidden", "--follow-symlinks"), HIDDEN + LINKS_OUTSIDE),
    ],
)
def test_the_listing_shows_exactly_what_is_served(netassist, names, options, extra):
    base = start(netassist, names, *options)
    expected = {*ORDINARY, *(n for n in LINKS_INSIDE if "/" not in n), *extra}
    for folder in ("", "sub/"):
        on_disk = os.listdir(os.path.join(names, folder))
        answered = {name for name in on_disk if served(base, folder, name)}
        assert listed(base, folder) == answered, folder
        if not folder:
            assert answered == expected
    assert listed(base, "sub/") == {"inner.txt", "up"}


def test_ordinary_linux_names_are_served_with_their_content(netassist, names):
    # Issue 13 item 20: these were 404 and missing from the listing.
    base = start(netassist, names)
    for name in ORDINARY[:-1]:
        reply = requests.get(f"{base}/{quote(name, safe='')}", timeout=10)
        assert reply.status_code == 200, name
        assert reply.text == f"content of {name}\n"
    assert requests.get(f"{base}/link-rel", timeout=10).text == "inner\n"
    html = requests.get(base + "/", timeout=10).text
    assert 'href="back%5Cslash.txt"' in html and 'href="meeting%2010%3A30.txt"' in html
    assert 'href="link-rel"' in html and 'href="link-dir/"' in html


def test_traversal_stays_refused_with_backslashes_served(netassist, names):
    base = start(netassist, names)
    for raw in (
        "/..%2foutside.txt",
        "/sub%2f..%2f..%2foutside.txt",
        "/%2e%2e/outside.txt",
        "/..%252foutside.txt",
        "/C:/outside.txt",
        "/c:outside.txt",
        "/a%00b",
        "/link-out",
        "/dir-out/outside.txt",
    ):
        host, port = base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", raw)  # sent as written: no client normalises it
            reply = connection.getresponse()
            assert reply.status == 404, raw
            assert b"outside" not in reply.read()
        finally:
            connection.close()


def test_an_index_or_a_compressed_sibling_that_links_outside_is_not_served(netassist, tmp_path):
    # index.html and app.js.gz were opened with a plain stat, which follows a link anywhere.
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("OUTSIDE\n")
    (root / "docs" / "index.html").symlink_to(tmp_path / "outside.txt")
    (root / "app.js").write_text("console.log(1);\n")
    (root / "app.js.gz").symlink_to(tmp_path / "outside.txt")
    base = start(netassist, root)
    docs = requests.get(base + "/docs/", timeout=10)
    assert docs.status_code == 200 and "OUTSIDE" not in docs.text  # the listing instead
    script = requests.get(base + "/app.js", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert script.text == "console.log(1);\n" and "Content-Encoding" not in script.headers
    followed = start(netassist, root, "--follow-symlinks")
    assert requests.get(followed + "/docs/", timeout=10).text == "OUTSIDE\n"
