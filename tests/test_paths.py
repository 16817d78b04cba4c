"""The shared resolver: each rule refuses what it is for, and says which rule it was.

Every refusal is checked for its reason (and whether it showed only once percent-decoded),
so taking a rule out of ``netassist.paths`` fails a test here, rather than letting another
rule or a missing file refuse the name by chance.
"""

from __future__ import annotations

import os
import socket

import pytest

from netassist.paths import (
    CANNOT_HOLD,
    POSIX,
    WINDOWS,
    PathRefused,
    Reason,
    check_segment,
    enter_folder,
    has_encoded_separator,
    is_inside,
    make_folders,
    relative_parts,
    resolve,
    resolve_child,
    resolve_real,
)

R = Reason


def enc(reason: Reason) -> tuple[Reason, bool]:
    """A refusal that shows only once the name is percent-decoded."""
    return reason, True


def plain(reason: Reason | tuple[Reason, bool]) -> tuple[Reason, bool]:
    return reason if isinstance(reason, tuple) else (reason, False)


#: (name as a URL path gives it, reason on a POSIX server, reason on a Windows server).
#: Names are already percent-decoded once, as PATH_INFO is: "%2e%2e" is a second encoding.
REFUSED_EVERYWHERE = [
    ("../canary.txt", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("/../canary.txt", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("a/../../canary.txt", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("..", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("./../canary.txt", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("sub/../../canary.txt", R.DOT_SEGMENT, R.DOT_SEGMENT),
    ("%2e%2e/canary.txt", enc(R.DOT_SEGMENT), enc(R.DOT_SEGMENT)),
    ("%2E%2E/canary.txt", enc(R.DOT_SEGMENT), enc(R.DOT_SEGMENT)),
    (".%2e/canary.txt", enc(R.DOT_SEGMENT), enc(R.DOT_SEGMENT)),
    ("%2e./canary.txt", enc(R.DOT_SEGMENT), R.TRAILING_DOT_OR_SPACE),
    ("%252e%252e/canary.txt", enc(R.DOT_SEGMENT), enc(R.DOT_SEGMENT)),
    ("%25252e%25252e/canary.txt", enc(R.DOT_SEGMENT), enc(R.DOT_SEGMENT)),
    ("%" + "25" * 5 + "2e/canary.txt", enc(R.ENCODED_TOO_OFTEN), enc(R.ENCODED_TOO_OFTEN)),
    ("%c0%ae%c0%ae/canary.txt", enc(R.NOT_UTF8), enc(R.NOT_UTF8)),
    ("%c0%2e%c0%2e/canary.txt", enc(R.NOT_UTF8), enc(R.NOT_UTF8)),
    ("%e0%80%ae%e0%80%ae/canary.txt", enc(R.NOT_UTF8), enc(R.NOT_UTF8)),
    ("caf\udce9.txt", R.NOT_UTF8, R.NOT_UTF8),
    ("..%2fcanary.txt", enc(R.SEPARATOR), enc(R.SEPARATOR)),
    ("..%252fcanary.txt", enc(R.SEPARATOR), enc(R.SEPARATOR)),
    ("%2fetc%2fpasswd", enc(R.SEPARATOR), enc(R.SEPARATOR)),
    ("..%5ccanary.txt", R.HIDDEN, enc(R.SEPARATOR)),
    ("..\\canary.txt", R.HIDDEN, R.SEPARATOR),
    ("..%00/canary.txt", enc(R.NUL), enc(R.NUL)),
    ("a.txt\x00.png", R.NUL, R.NUL),
    ("a.txt%00.png", enc(R.NUL), enc(R.NUL)),
    ("C:/Windows/win.ini", R.DRIVE, R.DRIVE),
    ("C:\\Windows\\win.ini", R.DRIVE, R.SEPARATOR),
    ("c:canary.txt", R.DRIVE, R.DRIVE),
    ("%43:canary.txt", enc(R.DRIVE), R.WINDOWS_CHARACTER),
    (".secret/key", R.HIDDEN, R.HIDDEN),
    (".hidden", R.HIDDEN, R.HIDDEN),
    ("sub/.hidden", R.HIDDEN, R.HIDDEN),
    ("%2esecret/key", enc(R.HIDDEN), enc(R.HIDDEN)),
    ("link-out/canary.txt", R.OUTSIDE, R.OUTSIDE),
    ("link-out", R.OUTSIDE, R.OUTSIDE),
    ("file-link-out", R.OUTSIDE, R.OUTSIDE),
    ("link-hidden", R.HIDDEN_BEHIND_LINK, R.HIDDEN_BEHIND_LINK),
    ("fifo", R.SPECIAL, R.SPECIAL),
    ("sock", R.SPECIAL, R.SPECIAL),
    ("link-fifo", R.SPECIAL, R.SPECIAL),
    ("/dev/null", R.MISSING, R.MISSING),
    ("does-not-exist", R.MISSING, R.MISSING),
    ("a" * 300, R.NAME_TOO_LONG, R.NAME_TOO_LONG),
    ("x/" * 3000, R.PATH_TOO_LONG, R.PATH_TOO_LONG),
]

#: Ordinary names on POSIX (the tree holds each, and each resolves to itself), refused where
#: the server runs on Windows, with the reason given.
REFUSED_ON_WINDOWS = [
    ("meeting 10:30.txt", R.WINDOWS_CHARACTER),
    ("a.txt::$DATA", R.WINDOWS_CHARACTER),
    ("why?.txt", R.WINDOWS_CHARACTER),
    ('say "hi".txt', R.WINDOWS_CHARACTER),
    ("a|b*c<d>.txt", R.WINDOWS_CHARACTER),
    ("back\\slash.txt", R.SEPARATOR),
    ("sub\\..\\..\\canary.txt", R.SEPARATOR),
    ("x\x1b[2J.txt", R.CONTROL),
    ("Icon\r", R.CONTROL),
    ("CON", R.WINDOWS_DEVICE),
    ("con.txt", R.WINDOWS_DEVICE),
    ("aux.c", R.WINDOWS_DEVICE),
    ("nul.tar.gz", R.WINDOWS_DEVICE),
    ("com1", R.WINDOWS_DEVICE),
    ("LPT9.log", R.WINDOWS_DEVICE),
    ("COM¹.txt", R.WINDOWS_DEVICE),
    ("CON .txt", R.WINDOWS_DEVICE),
    ("trailing.", R.TRAILING_DOT_OR_SPACE),
    ("v1.", R.TRAILING_DOT_OR_SPACE),
    ("trailing ", R.TRAILING_DOT_OR_SPACE),
]

#: Every name some server must refuse (the integration suites throw them at real servers).
HOSTILE = [name for name, _, _ in REFUSED_EVERYWHERE] + [name for name, _ in REFUSED_ON_WINDOWS]


@pytest.fixture
def tree(tmp_path):
    """root/ with files, a hidden folder, links out and in, a FIFO, a socket, every name of
    REFUSED_ON_WINDOWS; a canary beside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "中文 #1%.txt").write_text("zh")
    (root / "sub" / "b.txt").write_text("b")
    (root / ".secret").mkdir()
    (root / ".secret" / "key").write_text("secret")
    (root / ".hidden").write_text("hidden")
    for name, _ in REFUSED_ON_WINDOWS:
        (root / name).write_bytes(name.encode())
    (tmp_path / "canary.txt").write_text("CANARY")
    os.symlink(tmp_path, root / "link-out")
    os.symlink(tmp_path / "canary.txt", root / "file-link-out")
    os.symlink(root / ".secret" / "key", root / "link-hidden")
    os.symlink(root / "sub" / "b.txt", root / "link-in")
    os.mkfifo(root / "fifo")
    os.symlink("fifo", root / "link-fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    yield root
    server.close()


def refusal(call) -> tuple[Reason, bool]:
    with pytest.raises(PathRefused) as raised:
        call()
    assert str(raised.value)  # a reason a person can read
    return raised.value.reason, raised.value.encoded


@pytest.mark.parametrize(("name", "reason"), [(n, r) for n, r, _ in REFUSED_EVERYWHERE])
def test_hostile_names_are_refused_on_posix_for_their_reason(tree, name, reason):
    assert refusal(lambda: resolve(tree, name, system=POSIX)) == plain(reason)


@pytest.mark.parametrize(("name", "reason"), [(n, r) for n, _, r in REFUSED_EVERYWHERE])
def test_hostile_names_are_refused_on_windows_for_their_reason(tree, name, reason):
    assert refusal(lambda: resolve(tree, name, system=WINDOWS)) == plain(reason)


@pytest.mark.parametrize(("name", "reason"), REFUSED_ON_WINDOWS)
def test_names_windows_cannot_hold_are_refused_there(tree, name, reason):
    assert refusal(lambda: resolve(tree, name, system=WINDOWS)) == (reason, False)
    assert reason in CANNOT_HOLD or reason is R.SEPARATOR


@pytest.mark.parametrize("name", [name for name, _ in REFUSED_ON_WINDOWS])
def test_the_same_names_are_ordinary_on_posix(tree, name):
    found = resolve(tree, name, system=POSIX)
    assert found == tree / name and found.read_bytes() == name.encode()


def test_every_rule_is_tested_here():
    tested = {plain(r)[0] for _, p, w in REFUSED_EVERYWHERE for r in (p, w)}
    tested |= {r for _, r in REFUSED_ON_WINDOWS}
    tested |= {R.EMPTY, R.ABSOLUTE, R.NOT_A_FOLDER}  # below: peers' names, folders made
    assert tested == set(Reason)


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
    assert resolve(tree, "link-hidden", show_hidden=True).read_text() == "secret"
    assert resolve(tree, "file-link-out", follow_symlinks=True).read_text() == "CANARY"
    # Following links is about leaving the root, not about hidden names inside it.
    reason = refusal(lambda: resolve(tree, "link-hidden", follow_symlinks=True))
    assert reason == (R.HIDDEN_BEHIND_LINK, False)


def test_a_listing_entry_resolves_as_a_request_for_it_would(tree):
    real_root = os.path.realpath(tree)
    for show_hidden in (False, True):
        for follow in (False, True):
            rules = {"show_hidden": show_hidden, "follow_symlinks": follow}
            for name in os.listdir(real_root):
                try:
                    expected = resolve_real(real_root, name, **rules)
                except PathRefused as exc:
                    expected = exc.reason
                try:
                    got = resolve_child(real_root, real_root, name, **rules)
                except PathRefused as exc:
                    got = exc.reason
                assert got == expected, (name, rules)


@pytest.mark.parametrize(
    ("name", "posix", "windows"),
    [
        ("../x", R.DOT_SEGMENT, R.DOT_SEGMENT),
        ("/etc/passwd", R.ABSOLUTE, R.ABSOLUTE),
        ("\\\\server\\share", None, R.ABSOLUTE),
        ("C:\\x", R.DRIVE, R.SEPARATOR),
        ("c:x", R.DRIVE, R.DRIVE),
        ("a/../../b", R.DOT_SEGMENT, R.DOT_SEGMENT),
        ("a/./b", R.DOT_SEGMENT, R.DOT_SEGMENT),
        ("", R.EMPTY, R.EMPTY),
        ("a\\b", None, R.SEPARATOR),
        ("x\x1b[2J", None, R.CONTROL),
        ("notes 10:30.md", None, R.WINDOWS_CHARACTER),
        ("dir/aux.c", None, R.WINDOWS_DEVICE),
    ],
)
def test_names_a_peer_sends_are_judged_by_the_receiving_system(name, posix, windows):
    for system, reason in ((POSIX, posix), (WINDOWS, windows)):
        if reason is None:
            assert "/".join(relative_parts(name, system=system)) == name
        else:
            assert refusal(lambda s=system: relative_parts(name, system=s)) == (reason, False)


def test_a_plain_relative_name_passes():
    assert relative_parts("dir//中文 #1.txt") == ("dir", "中文 #1.txt")
    assert relative_parts(".config/x") == (".config", "x")  # hidden: the caller decides
    assert refusal(lambda: relative_parts(".config/x", show_hidden=False)) == (R.HIDDEN, False)


def test_check_segment_refuses_a_slash_and_an_empty_name():
    assert refusal(lambda: check_segment("a/b")) == (R.SEPARATOR, False)
    assert refusal(lambda: check_segment("")) == (R.EMPTY, False)


def test_is_inside():
    assert is_inside("/a", "/a") and is_inside("/a", "/a/b") and is_inside("/a/", "/a/b")
    assert not is_inside("/a", "/ab") and not is_inside("/a/b", "/a")
    assert is_inside("/", "/etc")


def test_an_encoded_slash_in_a_request_target():
    assert has_encoded_separator("/a%2fb") and has_encoded_separator("/a%2Fb")
    assert not has_encoded_separator("/a%5cb") and not has_encoded_separator("/a/b")


@pytest.fixture
def out(tmp_path):
    """A download folder holding a link out, a link in, a link to a hidden folder, a file."""
    root = tmp_path / "out"
    (root / "real").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (tmp_path / "OUTSIDE").mkdir()
    (root / "docs").symlink_to(tmp_path / "OUTSIDE")
    (root / "inside").symlink_to(root / "real")
    (root / "to-hidden").symlink_to(root / ".hidden")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "file").write_text("x")
    return root


def test_folders_are_made_one_at_a_time_and_never_outside(out, tmp_path):
    real_root = os.path.realpath(out)
    assert refusal(lambda: make_folders(real_root, ["docs", "sub1", "sub2"])) == (R.OUTSIDE, False)
    assert os.listdir(tmp_path / "OUTSIDE") == []
    assert refusal(lambda: make_folders(real_root, ["file", "sub"])) == (R.NOT_A_FOLDER, False)
    assert refusal(lambda: make_folders(real_root, ["dangling", "x"])) == (R.MISSING, False)
    made = make_folders(real_root, ["inside", "a", "b"])
    assert os.path.isdir(out / "real" / "a" / "b") and os.path.samefile(made, out / "real/a/b")
    assert make_folders(real_root, ["to-hidden", "x"])  # a client's own link: fine
    reason = refusal(lambda: make_folders(real_root, ["to-hidden", "y"], show_hidden=False))
    assert reason == (R.HIDDEN_BEHIND_LINK, False)
    assert not (out / ".hidden" / "y").exists()


def test_enter_folder_says_whether_it_made_the_folder(out):
    real_root = os.path.realpath(out)
    path, made = enter_folder(real_root, real_root, "new")
    assert made and os.path.isdir(path)
    assert enter_folder(real_root, real_root, "new") == (path, False)
