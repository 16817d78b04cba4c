"""Receiving an announced raw stream into a file and a hash, for client and server alike,
with what both need around it: opening a partial file safely, writing it whole, draining a
peer that was told to stop.

A large stream is hashed on a second thread (see :class:`BackgroundHasher`) while this loop
receives and writes the next block.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import time
from collections.abc import Callable

from netassist.transfer.digest import BLOCK, THREAD_THRESHOLD, BackgroundHasher
from netassist.transfer.protocol import Reader


class StreamCut(Exception):
    """The peer closed the connection before the whole stream arrived; ``received`` says
    how many of its bytes did (all written and hashed)."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the stream stopped after {received} bytes")
        self.received = received


class WriteFailed(Exception):
    """The file a stream goes into could not take it (a full disk): the peer is not to
    blame. ``error`` is the OSError, ``path`` the file."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(f"writing {path}: {error.strerror or error}")
        self.path = path
        self.error = error


class FileSink:
    """Writes all of each buffer to the descriptor ``fd`` of the file ``path`` (what
    :func:`receive_stream` needs of a file); a failure is :class:`WriteFailed`."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def write(self, data) -> None:
        """Write every byte of ``data``, however many calls it takes."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            raise WriteFailed(self.path, exc) from None


def open_flags(flags: int) -> int:
    """``flags`` and what a private binary descriptor needs where the system has it:
    ``O_CLOEXEC`` (no child inherits it) and ``O_BINARY`` (Windows: no newline translation).
    Looked up on each call, not at import: each is missing somewhere."""
    return flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def open_no_follow(path: str, flags: int, mode: int = 0o666) -> int:
    """Open ``path`` (a partial file) with ``flags``, refusing a symbolic link there: anyone
    who can write into the folder could plant one to lead the data anywhere. ``O_NOFOLLOW``
    where the system has it; elsewhere a look before the open and a check after it that the
    file opened is the one looked at."""
    nofollow = getattr(os, "O_NOFOLLOW", None)
    if nofollow is not None:
        return os.open(path, open_flags(flags) | nofollow, mode)
    refused = OSError(errno.ELOOP, "a symbolic link is in the way", path)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise refused
    except FileNotFoundError:
        pass
    fd = os.open(path, open_flags(flags), mode)
    try:
        now, opened = os.lstat(path), os.fstat(fd)
        if stat.S_ISLNK(now.st_mode) or (now.st_dev, now.st_ino) != (
            opened.st_dev,
            opened.st_ino,
        ):
            raise refused
    except BaseException:
        os.close(fd)
        raise
    return fd


_RENAME_NOREPLACE = 1  # renameat2's flag: fail with EEXIST rather than replace
_AT_FDCWD = -100
_renameat2: object = None  # looked up on first use: None (not yet), False (not here)


def rename_no_replace(source: str, target: str) -> bool:
    """Rename ``source`` to ``target`` unless something is at ``target``
    (FileExistsError), in one system call where the system has one (Linux's renameat2,
    through ctypes: the os module lacks it). False where it has none, or where the file
    system refuses the flag: the caller then does it another way."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = _find_renameat2()
    if not _renameat2:
        return False
    if _renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
    ):
        import ctypes  # here: a rename that succeeds (once per file) needs no lookup

        number = ctypes.get_errno()
        if number == errno.EEXIST:
            raise FileExistsError(number, os.strerror(number), target)
        if number in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            return False  # a file system (or kernel) without the flag
        raise OSError(number, os.strerror(number), source)
    return True


def _find_renameat2():
    """libc's renameat2 with its argument types, or False where there is none."""
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (ImportError, OSError, AttributeError, TypeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def receive_stream(
    sock: socket.socket,
    reader: Reader,
    out,
    hasher,
    length: int,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Copy exactly ``length`` stream bytes (first those ``reader`` already holds, then the
    socket's) into ``out`` and ``hasher``. It never reads past the stream, so the next frame
    stays on the socket. Raises StreamCut if the peer leaves early; OSError (of the socket)
    and the errors of ``out`` pass through. Whatever happens, every byte received has been
    hashed when it returns."""
    received = 0
    held = reader.take_stream(length)
    if held:
        out.write(held)
        hasher.update(held)
        received = len(held)
    if length - received < THREAD_THRESHOLD:
        if received == length:
            return received  # all of it came with the frame before it (a small file)
        # No bigger than the rest: a 1 MiB buffer per small file costs more than the file.
        buffer = bytearray(min(BLOCK, length - received))
        view = memoryview(buffer)
        while received < length:
            count = sock.recv_into(buffer, min(BLOCK, length - received))
            if not count:
                raise StreamCut(received)
            chunk = view[:count]
            out.write(chunk)
            hasher.update(chunk)
            reader.consumed_stream(count)
            received += count
            if progress is not None:
                progress(received)
        return received
    background = BackgroundHasher(hasher)
    try:
        while received < length:
            block = background.block()
            count = sock.recv_into(block, min(BLOCK, length - received))
            if not count:
                background.hash(block, 0)
                raise StreamCut(received)
            out.write(memoryview(block)[:count])
            background.hash(block, count)
            reader.consumed_stream(count)
            received += count
            if progress is not None:
                progress(received)
    finally:
        background.finish()
    return received


def drain(conn: socket.socket, seconds: float) -> None:
    """Read and drop what the client still sends after it was told to stop (the rest of an
    upload, a HELLO), for up to ``seconds`` or until it closes: closing on unread data would
    reset the connection, and the client would see a reset instead of the reason."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(1 << 16):
                return
