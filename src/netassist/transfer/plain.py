"""The tutorial's file protocol, both sides: ``files serve --plain`` and ``files get --plain``.

The tutorial's download programs speak the smallest protocol there is: the client connects
and sends a file name (UTF-8, no end mark), the server sends the file's bytes and closes; a
missing file gets nothing at all. netassist speaks it so that a reader's own programs work
against netassist and the other way round. Here, as everywhere, every name goes through
``netassist.paths`` (nothing outside the shared folder, no hidden names, no devices), and
the server only reads.

What the protocol cannot do is said where it matters: there is no digest, so nothing is
verified; there is no size, so a server that closes early looks like the end of the file;
there is no offset, so nothing resumes; and an empty file cannot be told from a missing one.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from collections.abc import Callable

from netassist.corking import corked
from netassist.errors import ExitCode, NetassistError, explain
from netassist.paths import PathRefused, relative_parts, resolve_real
from netassist.transfer import protocol
from netassist.transfer.admission import IDLE_TIMEOUT, Admission, Ticket
from netassist.transfer.client import (
    PART,
    RECV_BLOCK,
    Result,
    TransferError,
    network_error,
    settle_part,
    shown,
    write_error,
)
from netassist.transfer.serverlog import ServerLog
from netassist.transfer.stream import FileSink, WriteFailed, drain, open_flags, open_no_follow
from netassist.wire.codecs import escape_text
from netassist.wire.sockets import connect_tcp, format_address

MAX_NAME = 4096  # bytes of a name, at most (the tutorial's server reads 1024)


def name_from(data: bytes) -> str | None:
    """The file name in what a plain client sent: UTF-8 without one trailing newline
    (``echo NAME | nc`` sends one). None while its last character is still incomplete;
    PathRefused for what can be no name."""
    if len(data) > MAX_NAME:
        raise PathRefused("name too long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return None  # the rest of a character is on its way
        raise PathRefused("not UTF-8") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise PathRefused("no name")
    return text


def serve_plain(
    conn: socket.socket, ticket: Ticket, root: str, admission: Admission, log: ServerLog
) -> None:
    """Answer one plain client on ``conn``: read its name, send that file of ``root``, and
    close. Whatever is refused gets nothing, as the tutorial's server answers a missing
    file; ``log`` says why."""
    peer = ticket.peer
    data = b""
    name = None
    try:
        while name is None:
            chunk = conn.recv(MAX_NAME)
            if not chunk:
                log.info("%s plain: left without naming a file", peer)
                return
            data += chunk
            name = name_from(data)
    except PathRefused as exc:
        log.info("%s plain: refused %r (%s)", peer, escape_text(data[:80].decode("latin-1")), exc)
        return
    if data.startswith(protocol.MAGIC + bytes([protocol.FrameType.HELLO])):
        log.info("%s refused: a netassist client, and this server is --plain", peer)
        return
    what = f"plain get {escape_text(name)}"
    if (busy := admission.admit(ticket)) is not None:
        log.info("%s %s refused: %s", peer, what, busy)
        return
    try:
        real, st = resolve_real(root, name)
    except PathRefused as exc:
        log.info("%s %s refused: no such file (%s)", peer, what, exc)
        return
    if stat.S_ISDIR(st.st_mode):
        log.info("%s %s refused: a folder (the plain protocol sends files only)", peer, what)
        return
    conn.settimeout(IDLE_TIMEOUT)
    started = time.monotonic()
    with open(os.open(real, open_flags(os.O_RDONLY)), "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size  # what is sent is this, not later changes
        with corked(conn, size):
            sent = conn.sendfile(handle, 0, size) if size else 0
    conn.shutdown(socket.SHUT_WR)  # the end of the file, in this protocol
    drain(conn, 2.0)  # until the client has it all and closes: no reset on unread bytes
    took = time.monotonic() - started
    log.info("%s %s: sent %s bytes in %.2f s (plain: no digest)", peer, what, f"{sent:,}", took)


def fetch_plain(
    host: str,
    port: int,
    remote: str,
    out_dir: str,
    *,
    force: bool = False,
    timeout: float = 30.0,
    on_progress: Callable[[str, int, int | None], None] | None = None,
) -> Result:
    """Fetch ``remote`` from a plain server into ``out_dir``, under its last name (through
    ``NAME.part``, which takes the name only once the server has closed). An existing file
    is kept unless ``force``. Nothing verifies the bytes and nothing resumes (see the module
    docstring); what arrives is hashed for the Result all the same."""
    try:
        name = relative_parts(remote.strip("/"))[-1]
    except (PathRefused, IndexError) as exc:
        raise NetassistError(f"bad remote name {shown(remote)!r}: {exc}", ExitCode.USAGE) from None
    local = os.path.join(out_dir, name)
    if os.path.exists(local) and not force:
        return Result(remote, local, os.path.getsize(local), 0, 0, "", skipped=True)
    peer = format_address((host, port))
    part = local + PART
    with connect_tcp(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(remote.encode("utf-8"))
        except OSError as exc:
            raise network_error(exc, f"sending to {peer}", timeout) from None
        try:
            fd = open_no_follow(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as exc:
            raise explain(exc, f"opening {part}") from None
        try:
            received, digest = _receive_all(sock, FileSink(fd, part), remote, on_progress)
        except BaseException as exc:
            os.close(fd)
            os.remove(part)  # nothing resumes in this protocol: a part would only mislead
            raise _failure(exc, peer, part, timeout) from None
        os.close(fd)
    if not received:
        os.remove(part)
        raise TransferError(
            f"{peer} sent nothing for {shown(remote)!r}: no such file there, or an empty one "
            "(the plain protocol cannot tell); nothing written",
            ExitCode.FILE,
        )
    try:
        settle_part(part, local, force)
    except OSError as exc:
        raise explain(exc, f"renaming {part} to {local}") from None
    return Result(remote, local, received, received, 0, digest, algorithm="sha256")


def _receive_all(
    sock: socket.socket,
    sink: FileSink,
    remote: str,
    on_progress: Callable[[str, int, int | None], None] | None,
) -> tuple[int, str]:
    """Everything the server sends until it closes, into ``sink``: the size and SHA-256."""
    hasher = hashlib.sha256()
    buffer = bytearray(RECV_BLOCK)
    view = memoryview(buffer)
    received = 0
    while count := sock.recv_into(buffer):
        sink.write(view[:count])
        hasher.update(view[:count])
        received += count
        if on_progress is not None:
            on_progress(remote, received, None)
    return received, hasher.hexdigest()


def _failure(exc: BaseException, peer: str, part: str, timeout: float) -> BaseException:
    """What to raise for ``exc``, met while a plain file arrived (its part now removed)."""
    if isinstance(exc, WriteFailed):
        return write_error(exc, f"{part} was removed (the plain protocol cannot resume)")
    if isinstance(exc, OSError):
        error = network_error(exc, f"receiving from {peer}", timeout)
        return NetassistError(
            f"{error}; {part} was removed (the plain protocol cannot resume)", error.exit_code
        )
    return exc  # Ctrl-C and the like pass on, the part removed
