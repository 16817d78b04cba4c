"""The one place that decides whether a name may touch the file system.

Servers (``serve``, ``files serve``) pass every requested path through :func:`resolve_real`
and every folder entry they would list through :func:`resolve_child`, so a listing shows
exactly what a request can open. The transfer client checks every name a server offers with
:func:`relative_parts` and makes its folders with :func:`enter_folder`. Whether a real path
lies inside a root is decided by :func:`is_inside` alone. A refusal is a :class:`PathRefused`
whose :attr:`~PathRefused.reason` says which rule (a :class:`Reason`); servers answer it as
"not found", so a refusal reveals nothing about what exists.

A name is judged by the rules of the system that will hold it (``system``: :data:`POSIX` or
:data:`WINDOWS`, by default the one this runs on, asked at run time). On POSIX every name
the file system can hold is a name, except the documented refusals below; Windows adds its
own. The rules (each one a lesson another tool paid for):

- everywhere: no ``.`` or ``..`` segment, no NUL, no ``/`` inside a name, no name that
  starts with a drive letter (``C:``), no name that is not UTF-8, none over 255 bytes;
- the same again after percent-decoding until nothing changes (``%2e%2e``, ``%252e%252e``,
  ``..%2f``): a name that *becomes* a traversal once decoded is refused (``encoded``), and
  overlong UTF-8 (``%c0%ae``) is not UTF-8;
- on Windows also: no ``\\`` (a separator there), no control character, none of
  ``<>:"|?*``, no name ending in a dot or a space, no device name (``CON``, ``aux.c``,
  ``LPT1.txt``...);
- no hidden name (a segment starting with ``.``) unless allowed, not even behind a link;
- the resolved path must stay inside the root: a link leading out is refused unless
  following links was asked for;
- only regular files and folders: devices, FIFOs and sockets are refused.
"""

from __future__ import annotations

import os
import re
import stat
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote_to_bytes

POSIX = "posix"
WINDOWS = "windows"


class Reason(StrEnum):
    """Why a name was refused: one per rule (the value is a stable code)."""

    EMPTY = "empty"
    NAME_TOO_LONG = "name-too-long"
    PATH_TOO_LONG = "path-too-long"
    NOT_UTF8 = "not-utf8"
    ENCODED_TOO_OFTEN = "encoded-too-often"
    NUL = "nul"
    SEPARATOR = "separator"
    DOT_SEGMENT = "dot-segment"
    DRIVE = "drive"
    ABSOLUTE = "absolute"
    CONTROL = "control-character"
    WINDOWS_CHARACTER = "windows-character"
    TRAILING_DOT_OR_SPACE = "trailing-dot-or-space"
    WINDOWS_DEVICE = "windows-device"
    HIDDEN = "hidden"
    HIDDEN_BEHIND_LINK = "hidden-behind-link"
    OUTSIDE = "outside-root"
    MISSING = "missing"
    SPECIAL = "special-file"
    NOT_A_FOLDER = "not-a-folder"


_MESSAGES = {
    Reason.EMPTY: "an empty name",
    Reason.NAME_TOO_LONG: "a name over 255 bytes",
    Reason.PATH_TOO_LONG: "a path over 4096 characters",
    Reason.NOT_UTF8: "not valid UTF-8",
    Reason.ENCODED_TOO_OFTEN: "percent-encoded too many times",
    Reason.NUL: "a NUL character",
    Reason.SEPARATOR: "a path separator inside a name",
    Reason.DOT_SEGMENT: "a '.' or '..' segment",
    Reason.DRIVE: "a drive letter",
    Reason.ABSOLUTE: "an absolute path",
    Reason.CONTROL: "a control character, which Windows does not allow",
    Reason.WINDOWS_CHARACTER: 'one of < > : " | ? *, which Windows does not allow',
    Reason.TRAILING_DOT_OR_SPACE: "a name ending in a dot or a space, which Windows drops",
    Reason.WINDOWS_DEVICE: "a name reserved by Windows for a device (CON, AUX, NUL, COM1...)",
    Reason.HIDDEN: "a hidden name",
    Reason.HIDDEN_BEHIND_LINK: "a link to a hidden name",
    Reason.OUTSIDE: "leads outside the root (through a link)",
    Reason.MISSING: "does not exist",
    Reason.SPECIAL: "not a regular file or folder",
    Reason.NOT_A_FOLDER: "not a folder",
}

#: Reasons that mean "this system's file system cannot hold the name": a name that another
#: system holds (a peer's ``aux.c`` on Windows), as opposed to one built to escape a folder.
CANNOT_HOLD = frozenset(
    {
        Reason.NAME_TOO_LONG,
        Reason.PATH_TOO_LONG,
        Reason.CONTROL,
        Reason.WINDOWS_CHARACTER,
        Reason.TRAILING_DOT_OR_SPACE,
        Reason.WINDOWS_DEVICE,
    }
)


class PathRefused(Exception):
    """A name that may not be touched. :attr:`reason` says which rule; :attr:`encoded` says
    that the name broke it only once percent-decoded. The message is for logs and for the
    user of a client, never for the peer of a server."""

    def __init__(self, reason: Reason, *, encoded: bool = False) -> None:
        self.reason = reason
        self.encoded = encoded
        super().__init__(_MESSAGES[reason] + (" once percent-decoded" if encoded else ""))


def local_system() -> str:
    """The naming rules of the system this runs on (asked at run time, not at import)."""
    return WINDOWS if os.name == "nt" else POSIX


_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DRIVE = re.compile(r"[A-Za-z]:")
_WINDOWS_FORBIDDEN = re.compile(r'[\x01-\x1f<>:"|?*]')
_MAX_DECODE_ROUNDS = 4
_CHECKED_PATHS: dict[tuple[str, bool, str], tuple[str, ...]] = {}
_CHECKED_PATHS_LIMIT = 4096
MAX_NAME_LENGTH = 255
MAX_PATH_LENGTH = 4096


def _fully_decoded(text: str) -> str:
    """Percent-decode until nothing changes; refuse what is not UTF-8 at any step."""
    for _ in range(_MAX_DECODE_ROUNDS):
        if "%" not in text:
            return text
        try:
            decoded = unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:  # an overlong or broken sequence
            raise PathRefused(Reason.NOT_UTF8, encoded=True) from None
        if decoded == text:
            return text
        text = decoded
    raise PathRefused(Reason.ENCODED_TOO_OFTEN, encoded=True)


def _problem(name: str, system: str) -> Reason | None:
    """The first rule ``name`` (one segment) breaks on ``system``, hidden names aside."""
    if _SURROGATE.search(name):
        return Reason.NOT_UTF8
    if "\x00" in name:
        return Reason.NUL
    if "/" in name or (system == WINDOWS and "\\" in name):
        return Reason.SEPARATOR
    if name in (".", ".."):
        return Reason.DOT_SEGMENT
    if _DRIVE.match(name):
        return Reason.DRIVE
    if system == WINDOWS:
        forbidden = _WINDOWS_FORBIDDEN.search(name)
        if forbidden is not None:
            return Reason.CONTROL if forbidden.group() < " " else Reason.WINDOWS_CHARACTER
        if name[-1] in ". ":
            return Reason.TRAILING_DOT_OR_SPACE
        # Windows reserves CON and CON.txt alike (and ignores spaces before the dot).
        if name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
            return Reason.WINDOWS_DEVICE
    return None


def check_segment(segment: str, *, show_hidden: bool = False, system: str | None = None) -> None:
    """Refuse one path segment (a single file or folder name) that breaks a rule."""
    if not segment:
        raise PathRefused(Reason.EMPTY)
    # A UTF-8 character takes at most 4 bytes: only a long name needs encoding to measure.
    if len(segment) * 4 > MAX_NAME_LENGTH and (
        len(segment.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH
    ):
        raise PathRefused(Reason.NAME_TOO_LONG)
    system = system or local_system()
    reason = _problem(segment, system)
    if reason is not None:
        raise PathRefused(reason)
    decoded = _fully_decoded(segment) if "%" in segment else segment
    if decoded != segment:
        reason = _problem(decoded, system) if decoded else Reason.EMPTY
        if reason is not None:
            raise PathRefused(reason, encoded=True)
    if not show_hidden and (segment[0] == "." or decoded[:1] == "."):
        raise PathRefused(Reason.HIDDEN, encoded=segment[0] != ".")


def split_path(text: str, *, show_hidden: bool = False, system: str | None = None) -> list[str]:
    """The checked segments of a slash-separated relative path (leading and repeated slashes
    are ignored, so ``/a//b/`` is ``["a", "b"]``)."""
    return list(_checked_segments(text, show_hidden, system or local_system()))


def _checked_segments(text: str, show_hidden: bool, system: str) -> tuple[str, ...]:
    key = (text, show_hidden, system)
    known = _CHECKED_PATHS.get(key)
    if known is not None:
        return known
    if len(text) > MAX_PATH_LENGTH:
        raise PathRefused(Reason.PATH_TOO_LONG)
    segments = [s for s in text.split("/") if s]
    for segment in segments:
        check_segment(segment, show_hidden=show_hidden, system=system)
    # The verdict depends on the text alone, never on the file system: servers asked for
    # the same paths again and again remember it (bounded, since the paths are the client's).
    if len(_CHECKED_PATHS) >= _CHECKED_PATHS_LIMIT:
        _CHECKED_PATHS.clear()
    checked = _CHECKED_PATHS[key] = tuple(segments)
    return checked


def relative_parts(
    name: str, *, show_hidden: bool = True, system: str | None = None
) -> tuple[str, ...]:
    """The segments of a name a peer chose (a file a server offers): it must be a plain
    relative path that cannot leave the folder it is written into. Hidden names pass unless
    ``show_hidden`` is False: whether a hidden name was asked for is the caller's to know."""
    if not name:
        raise PathRefused(Reason.EMPTY)
    system = system or local_system()
    if name[0] == "/" or (system == WINDOWS and name[0] == "\\"):
        raise PathRefused(Reason.ABSOLUTE)
    return _checked_segments(name, show_hidden, system)


def has_encoded_separator(raw_path: str) -> bool:
    """Whether a request target as sent (before any decoding) encodes a ``/`` (``%2f``):
    decoded once into a path, it would be one separator more than the client wrote."""
    return "%" in raw_path and "%2f" in raw_path.lower()


def is_inside(real_root: str, real: str) -> bool:
    """Whether the real path ``real`` is ``real_root`` or lies below it (both real paths,
    from ``os.path.realpath``). The one implementation of "inside the root"."""
    root, path = os.path.normcase(real_root), os.path.normcase(real)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _through_link(
    real_root: str, candidate: str, *, follow_symlinks: bool, show_hidden: bool
) -> str:
    """The real path of ``candidate`` (a path below ``real_root`` with a link on the way),
    refused when it leads outside the root or to a hidden name inside it."""
    real = os.path.realpath(candidate)
    inside = is_inside(real_root, real)
    if not inside and not follow_symlinks:
        raise PathRefused(Reason.OUTSIDE)
    if inside and not show_hidden:
        # A link inside the root may point at a hidden name inside it: refuse that too.
        below = real[len(real_root.rstrip(os.sep)) :].split(os.sep)
        if any(part.startswith(".") for part in below):
            raise PathRefused(Reason.HIDDEN_BEHIND_LINK)
    return real


def _servable(path: str) -> os.stat_result:
    """The stat of what ``path`` leads to, which must be a regular file or a folder."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # missing, a loop of links, or unreadable
        raise PathRefused(Reason.MISSING) from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise PathRefused(Reason.SPECIAL)
    return st


def resolve(
    root: str | os.PathLike[str],
    path: str,
    *,
    follow_symlinks: bool = False,
    show_hidden: bool = False,
    system: str | None = None,
) -> Path:
    """The existing file or folder that ``path`` names inside ``root``, or PathRefused.

    ``path`` is a slash-separated path as a request gives it (already percent-decoded once,
    as URL paths are); it may start with ``/``. The result is a regular file or a directory
    whose real location is inside the real ``root`` (or anywhere, with ``follow_symlinks``).
    """
    real, _ = resolve_real(
        os.path.realpath(root),
        path,
        follow_symlinks=follow_symlinks,
        show_hidden=show_hidden,
        system=system,
    )
    return Path(real)


def resolve_real(
    real_root: str,
    path: str,
    *,
    follow_symlinks: bool = False,
    show_hidden: bool = False,
    system: str | None = None,
) -> tuple[str, os.stat_result]:
    """:func:`resolve` for servers that call it per request: ``real_root`` must already be
    a real path (``os.path.realpath``); returns the real path and its stat."""
    segments = _checked_segments(path, show_hidden, system or local_system())
    # The root is real already: walk only what lies below it, one lstat per segment. Without
    # a symlink on the way, the last lstat is the answer; with one, realpath decides.
    current = real_root.rstrip(os.sep) if segments else real_root  # "/" itself becomes ""
    st: os.stat_result | None = None
    try:
        for segment in segments:
            current += os.sep + segment
            st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                st = None
                break
        else:
            st = st if segments else os.stat(real_root)
    except (OSError, ValueError):
        raise PathRefused(Reason.MISSING) from None
    if st is not None:
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise PathRefused(Reason.SPECIAL)
        return current, st
    real = _through_link(
        real_root,
        os.path.join(real_root, *segments),
        follow_symlinks=follow_symlinks,
        show_hidden=show_hidden,
    )
    return real, _servable(real)


def resolve_child(
    real_root: str,
    folder: str,
    name: str,
    *,
    follow_symlinks: bool = False,
    show_hidden: bool = False,
    system: str | None = None,
) -> tuple[str, os.stat_result]:
    """The entry ``name`` of ``folder`` (a folder :func:`resolve_real` let through) as a
    request for it would resolve: its real path and stat, or PathRefused. Listings use it,
    so they show exactly what can be opened."""
    check_segment(name, show_hidden=show_hidden, system=system)
    path = os.path.join(folder, name)
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        raise PathRefused(Reason.MISSING) from None
    if stat.S_ISLNK(st.st_mode):
        real = _through_link(
            real_root, path, follow_symlinks=follow_symlinks, show_hidden=show_hidden
        )
        return real, _servable(real)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise PathRefused(Reason.SPECIAL)
    return path, st


def enter_folder(
    real_root: str, folder: str, name: str, *, show_hidden: bool = True
) -> tuple[str, bool]:
    """The folder ``name`` inside ``folder`` (a folder already known to lie inside the real
    ``real_root``), made when missing; returns its path and whether it was made now.

    An existing entry must be a folder, or a link to a folder inside the root: it is checked
    before anything is made below it, so nothing is ever created outside the root. Callers
    check ``name`` itself first (their rules differ: a server's, or the local system's)."""
    path = os.path.join(folder, name)
    try:
        os.mkdir(path)
        return path, True
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        real = _through_link(real_root, path, follow_symlinks=False, show_hidden=show_hidden)
        try:
            st = os.stat(real)
        except OSError:
            raise PathRefused(Reason.MISSING) from None
    if not stat.S_ISDIR(st.st_mode):
        raise PathRefused(Reason.NOT_A_FOLDER)
    return path, False


def make_folders(real_root: str, segments: list[str] | tuple[str, ...], **rules: bool) -> str:
    """The folder ``segments`` name below ``real_root``, each one made only after the one
    above it was found inside the root (see :func:`enter_folder`)."""
    current = real_root
    for segment in segments:
        current, _ = enter_folder(real_root, current, segment, **rules)
    return current


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for a message: "a FIFO", "a folder"..."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")
