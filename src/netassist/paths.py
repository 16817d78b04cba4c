"""The one place that decides whether a user-supplied path may touch the file system.

Both the static-file server and the file-transfer server pass every requested name through
:func:`resolve`; the transfer client passes every name a server sends through
:func:`check_relative`. A refusal is a :class:`PathRefused` whose reason is for logs only:
servers answer it as "not found", so a refusal reveals nothing about what exists.

The rules (each one a lesson another tool paid for):

- no ``..`` or ``.`` segment, however it is encoded: names are percent-decoded until they stop
  changing, so ``%2e%2e`` and ``%252e%252e`` count as ``..``; bytes that are not valid UTF-8
  (overlong forms such as ``%c0%ae``) are refused outright;
- no backslash, no NUL or other control character, no drive letter or ``:`` at all (NTFS
  streams), no Windows device name (``CON``, ``NUL``, ``COM1``...), no segment ending in a dot
  or a space (Windows drops them and so names another file);
- no hidden name (a segment starting with ``.``) unless allowed;
- the resolved path must stay inside the root: a symlink leading out is refused unless
  following symlinks was asked for;
- only regular files and directories: devices, FIFOs and sockets are refused.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_to_bytes

_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)
# Every character a name may not hold, found in one search; the reason is told by which.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\:\ud800-\udfff]")
_DRIVE = re.compile(r"[A-Za-z]:")
_MAX_DECODE_ROUNDS = 4
_CHECKED_PATHS: dict[tuple[str, bool], tuple[str, ...]] = {}
_CHECKED_PATHS_LIMIT = 4096
MAX_NAME_LENGTH = 255
MAX_PATH_LENGTH = 4096


class PathRefused(Exception):
    """A path that may not be touched; the message says why (for logs, not for clients)."""


def _fully_decoded(text: str) -> str:
    """Percent-decode until nothing changes; refuse what is not UTF-8 at any step."""
    for _ in range(_MAX_DECODE_ROUNDS):
        if "%" not in text:
            return text
        raw = unquote_to_bytes(text)
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused(
                "not valid UTF-8 once decoded (an overlong or broken sequence)"
            ) from None
        if decoded == text:
            return text
        text = decoded
    raise PathRefused("encoded too many times")


def check_segment(segment: str, *, show_hidden: bool = False) -> None:
    """Refuse one path segment (a single file or folder name) that breaks a rule."""
    if not segment:
        raise PathRefused("empty name")
    # A UTF-8 character takes at most 4 bytes: only a long name needs encoding to measure.
    if len(segment) * 4 > MAX_NAME_LENGTH and (
        len(segment.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH
    ):
        raise PathRefused("name too long")
    decoded = _fully_decoded(segment)
    for name in (segment,) if decoded == segment else (segment, decoded):
        if name in (".", ".."):
            raise PathRefused("dot segment")
        forbidden = _FORBIDDEN.search(name)
        if forbidden is not None:
            char = forbidden.group()
            if char in "/\\":
                raise PathRefused("encoded slash or backslash")
            if char == ":":
                raise PathRefused("drive letter or stream name")
            if "\ud800" <= char <= "\udfff":
                raise PathRefused("not valid UTF-8")
            raise PathRefused("NUL or control character")
        if name[-1] in ". ":
            raise PathRefused("name ending in a dot or a space")
        if name[0] == "." and not show_hidden:
            raise PathRefused("hidden name")
        stem = name.split(".", 1)[0]
        if len(stem) <= 7 and stem.upper() in _WINDOWS_DEVICES:
            raise PathRefused("Windows device name")


def split_path(text: str, *, show_hidden: bool = False) -> list[str]:
    """The checked segments of a slash-separated relative path (leading and repeated slashes
    are ignored, so ``/a//b/`` is ``["a", "b"]``)."""
    return list(_checked_segments(text, show_hidden))


def _checked_segments(text: str, show_hidden: bool) -> tuple[str, ...]:
    key = (text, show_hidden)
    known = _CHECKED_PATHS.get(key)
    if known is not None:
        return known
    if len(text) > MAX_PATH_LENGTH:
        raise PathRefused("path too long")
    if "\\" in text or "\x00" in text:
        raise PathRefused("backslash or NUL")
    segments = [s for s in text.split("/") if s]
    for segment in segments:
        check_segment(segment, show_hidden=show_hidden)
    # The verdict depends on the text alone, never on the file system: servers asked for
    # the same paths again and again remember it (bounded, since the paths are the client's).
    if len(_CHECKED_PATHS) >= _CHECKED_PATHS_LIMIT:
        _CHECKED_PATHS.clear()
    checked = _CHECKED_PATHS[key] = tuple(segments)
    return checked


def check_relative(name: str, *, show_hidden: bool = True) -> PurePosixPath:
    """Check a name that a peer chose (a file a server offers): it must be a plain relative
    path that cannot leave the folder it is written into. Returns it as a PurePosixPath."""
    return PurePosixPath(*relative_parts(name, show_hidden=show_hidden))


def relative_parts(name: str, *, show_hidden: bool = True) -> tuple[str, ...]:
    """:func:`check_relative` as a tuple of its segments (no PurePosixPath: a client
    checking thousands of offered names feels its cost)."""
    if not name or name[0] == "/" or _DRIVE.match(name):
        raise PathRefused("absolute path")
    return _checked_segments(name, show_hidden)


def resolve(
    root: str | os.PathLike[str],
    path: str,
    *,
    follow_symlinks: bool = False,
    show_hidden: bool = False,
) -> Path:
    """The existing file or folder that ``path`` names inside ``root``, or PathRefused.

    ``path`` is a slash-separated path as a request gives it (already percent-decoded once,
    as URL paths are); it may start with ``/``. The result is a regular file or a directory
    whose real location is inside the real ``root`` (or anywhere, with ``follow_symlinks``).
    """
    real, _ = resolve_real(
        os.path.realpath(root), path, follow_symlinks=follow_symlinks, show_hidden=show_hidden
    )
    return Path(real)


def resolve_real(
    real_root: str, path: str, *, follow_symlinks: bool = False, show_hidden: bool = False
) -> tuple[str, os.stat_result]:
    """:func:`resolve` for servers that call it per request: ``real_root`` must already be
    a real path (``os.path.realpath``); returns the real path and its stat."""
    segments = _checked_segments(path, show_hidden)
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
        raise PathRefused("does not exist") from None
    if st is not None:
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise PathRefused("not a regular file or folder")
        return current, st
    candidate = os.path.join(real_root, *segments)
    real = os.path.realpath(candidate)
    if real != candidate and not follow_symlinks:
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise PathRefused("leads outside the root")
        if not show_hidden:
            # A link inside the root may point at a hidden name inside it: refuse that too.
            inner = real[len(real_root) :].split(os.sep)
            if any(part.startswith(".") for part in inner):
                raise PathRefused("hidden name behind a link")
    try:
        st = os.stat(real)
    except (OSError, ValueError):  # missing, a loop of links, or unreadable
        raise PathRefused("does not exist") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise PathRefused("not a regular file or folder")
    return real, st
