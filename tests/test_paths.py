"""The shared resolver: hostile names never escape the root, ordinary ones resolve."""

from __future__ import annotations

import os

import pytest

from netassist.paths import PathRefused, check_relative, relative_parts, resolve

#: Every one must be refused, whatever is on disk. (Names as a URL path gives them: already
#: percent-decoded once by the server, so "%2e%2e" here is a second encoding.)
HOSTILE = [
    "../canary.txt",
    "/../canary.txt",
    "a/../../canary.txt",
    "..",
    "./../canary.txt",
    "sub/../../canary.txt",
    "%2e%2e/canary.txt",
    "%2E%2E/canary.txt",
    ".%2e/canary.txt",
    "%2e./canary.txt",
    "%252e%252e/canary.txt",
    "%25252e%25252e/canary.txt",
    "%c0%ae%c0%ae/canary.txt",
    "%c0%2e%c0%2e/canary.txt",
    "%e0%80%ae%e0%80%ae/canary.txt",
    "..%2fcanary.txt",
    "..%252fcanary.txt",
    "..%5ccanary.txt",
    "..\\canary.txt",
    "sub\\..\\..\\canary.txt",
    "%2fetc%2fpasswd",
    "..%00/canary.txt",
    "a.txt\x00.png",
    "a.txt%00.png",
    "C:/Windows/win.ini",
    "C:\\Windows\\win.ini",
    "c:canary.txt",
    "a.txt::$DATA",
    "CON",
    "nul.txt",
    "com1",
    "LPT9.log",
    ".secret/key",
    ".hidden",
    "sub/.hidden",
    "%2esecret/key",
    "trailing.",
    "trailing ",
    "link-out/canary.txt",
    "link-out",
    "file-link-out",
    "link-hidden",
    "fifo",
    "sock",
    "/dev/null",
    "does-not-exist",
    "a" * 300,
    "x/" * 3000,
]


@pytest.fixture
def tree(tmp_path):
    """root/ with files, a hidden folder, links out and in, a FIFO, a socket; a canary beside."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "中文 #1%.txt").write_text("zh")
    (root / "sub" / "b.txt").write_text("b")
    (root / ".secret").mkdir()
    (root / ".secret" / "key").write_text("secret")
    (root / ".hidden").write_text("hidden")
    (tmp_path / "canary.txt").write_text("CANARY")
    os.symlink(tmp_path, root / "link-out")
    os.symlink(tmp_path / "canary.txt", root / "file-link-out")
    os.symlink(root / ".secret" / "key", root / "link-hidden")
    os.symlink(root / "sub" / "b.txt", root / "link-in")
    os.mkfifo(root / "fifo")
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    yield root
    server.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(tree, name):
    with pytest.raises(PathRefused):
        resolve(tree, name)


def test_there_are_at_least_forty_hostile_names():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "a.txt"),
        ("/sub/b.txt", "sub/b.txt"),
        ("sub//b.txt", "sub/b.txt"),
        ("中文 #1%.txt", "中文 #1%.txt"),
        ("link-in", "sub/b.txt"),
        ("", ""),
        ("/", ""),
    ],
)
def test_ordinary_names_resolve_inside(tree, name, expected):
    assert resolve(tree, name) == (tree / expected).resolve()


def test_options_allow_hidden_and_links_out(tree):
    assert resolve(tree, ".secret/key", show_hidden=True).read_text() == "secret"
    assert resolve(tree, "file-link-out", follow_symlinks=True).read_text() == "CANARY"


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "C:\\x", "c:x", "a/../../b", "a\\b", "x\x1b[2J", "", "a/./b"]
)
def test_names_a_peer_sends_are_checked(name):
    with pytest.raises(PathRefused):
        check_relative(name)


def test_a_plain_relative_name_passes():
    assert str(check_relative("dir/中文 #1.txt")) == "dir/中文 #1.txt"
    assert relative_parts("dir//中文 #1.txt") == ("dir", "中文 #1.txt")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "c:x", "a/../../b", "a\\b", ""])
def test_relative_parts_refuses_what_check_relative_refuses(name):
    with pytest.raises(PathRefused):
        relative_parts(name)
