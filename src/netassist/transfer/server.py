"""The file-transfer server: read-only by default, every name checked by ``netassist.paths``."""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import socket
import ssl
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from netassist import paths
from netassist.corking import corked
from netassist.paths import (
    PathRefused,
    Reason,
    make_folders,
    resolve_child,
    resolve_real,
)
from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.admission import HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, Admission, Ticket
from netassist.transfer.digest import THREAD_THRESHOLD, HashRange, positional_reads, prefix_digest
from netassist.transfer.plain import serve_plain
from netassist.transfer.serverlog import ServerLog
from netassist.transfer.stream import (
    FileSink,
    StreamCut,
    WriteFailed,
    drain,
    open_flags,
    open_no_follow,
    receive_stream,
)
from netassist.wire.codecs import escape_text
from netassist.wire.sockets import format_address, listen_tcp

SEND_BLOCK = 1 << 20
SMALL_SEND = 64 << 10  # up to this, a file with a known digest goes out with one send
HOLD_LIMIT = 256 << 10  # answers held for one send are sent once they reach this
MAX_LISTED_FILES = 100_000
#: Unreadable files a folder stream names in its closing REPLY (each up to a long path and
#: its reason, so the REPLY stays far below a frame's limit); more are only counted.
MAX_DENIED_NAMED = 1_000
BATCH_FILES = 512  # small files in one FILES frame of a folder stream, at most
PART_SUFFIX = ".netassist-part"  # an upload in progress is ".NAME.netassist-part"
# What a listing says it left out, by the rule that left each entry out.
_LEFT_OUT = {
    Reason.HIDDEN: "hidden",
    Reason.HIDDEN_BEHIND_LINK: "hidden",
    Reason.OUTSIDE: "outside",
    Reason.SPECIAL: "special",
    Reason.MISSING: "broken",
}
DRAIN_TIME = 10.0  # seconds to read an upload the server refused halfway, before closing


class DigestCache:
    """Digests of files by (algorithm, path, size, mtime_ns): a second download hashes
    nothing."""

    def __init__(self, limit: int = MAX_LISTED_FILES) -> None:
        self._digests: dict[tuple[str, str, int, int], str] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def known(self, algorithm: str, path: str, st: os.stat_result) -> str | None:
        """The cached digest of this version of the file, if any."""
        with self._lock:
            return self._digests.get((algorithm, path, st.st_size, st.st_mtime_ns))

    def remember(self, algorithm: str, path: str, st: os.stat_result, digest: str) -> None:
        """Cache the digest of this version of the file."""
        with self._lock:
            if len(self._digests) >= self._limit:
                self._digests.clear()
            self._digests[(algorithm, path, st.st_size, st.st_mtime_ns)] = digest


class FileServer:
    """Serves ``root`` to file-transfer clients, one thread each.

    Who may hold a connection is :class:`~netassist.transfer.admission.Admission`'s call:
    at most ``max_clients`` sessions, ``max_per_address`` of them from one address, and a
    handshake within ``handshake_timeout`` seconds of the accept."""

    def __init__(
        self,
        root: str,
        host: str = "127.0.0.1",
        port: int = protocol.DEFAULT_PORT,
        *,
        token: str | None = None,
        max_clients: int = 64,
        max_per_address: int = 16,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        allow_upload: bool = False,
        max_upload: int | None = None,
        tls: ssl.SSLContext | None = None,
        show_hidden: bool = False,
        system: str | None = None,
        plain: bool = False,
        log: ServerLog | None = None,
        digest_algorithms: tuple[str, ...] | None = None,
    ) -> None:
        if plain and (allow_upload or token is not None or tls is not None):
            raise ValueError("the plain protocol has no uploads, tokens or TLS")
        self.plain = plain
        self.log = log or ServerLog()
        self.tls = tls
        # The names it shares and takes: hidden ones only when asked, and those the file
        # system of ``system`` (by default this one's) can hold. Both are told to clients.
        self.show_hidden = show_hidden
        self.system = system or paths.local_system()
        self.allow_upload = allow_upload
        self.max_upload = max_upload
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"{root} is not a folder")
        self.token = token
        self.admission = Admission(
            max_sessions=max_clients,
            per_address=max_per_address,
            handshake_timeout=handshake_timeout,
        )
        self.sock = listen_tcp(host, port)
        self.digests = DigestCache()
        #: The digests it computes for version-2 clients, the preferred first.
        self.digest_algorithms = digest_algorithms or digests.available()
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        """The listening address, ``host:port``."""
        return format_address(self.sock.getsockname())

    def segments(self, path: str) -> list[str]:
        """The checked segments of a client's ``path`` under this server's naming rules."""
        segments = paths.split_path(path, show_hidden=self.show_hidden, system=self.system)
        if self.show_hidden and any(_is_part(segment) for segment in segments):
            raise PathRefused(Reason.HIDDEN)  # an upload in progress is never anyone's name
        return segments

    def resolve(self, path: str) -> tuple[str, os.stat_result]:
        """The real path and stat of the file or folder a client's ``path`` names."""
        if self.show_hidden:  # otherwise the resolver's hidden rule covers upload names
            self.segments(path)
        return resolve_real(self.root, path, show_hidden=self.show_hidden, system=self.system)

    def serve(self) -> None:
        """Accept clients until :meth:`stop`."""
        threading.Thread(target=self._watch, name="netassist-files-deadlines", daemon=True).start()
        while not self._stopped.is_set():
            try:
                conn, addr = self.sock.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            ticket, evicted = self.admission.arrive(addr[0])
            ticket.conn, ticket.peer = conn, format_address(addr)
            for old in evicted:
                self._cut(old)
            threading.Thread(target=self._client, args=(conn, ticket), daemon=True).start()

    def stop(self) -> None:
        """Stop accepting; clients in progress finish on their own threads."""
        self._stopped.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _watch(self) -> None:
        """End the connections whose handshake is overdue, until the server stops."""
        while not self._stopped.wait(0.25):
            for ticket in self.admission.overdue():
                self._cut(ticket)

    def _cut(self, ticket: Ticket) -> None:
        """End a pending connection the admission dropped (from any thread: its own thread,
        blocked in a read, sees the end and leaves)."""
        self.log.info("%s dropped: %s", ticket.peer, ticket.dropped)
        with contextlib.suppress(OSError):
            # The socket's own shutdown, under a TLS layer too: the handshake in progress
            # on the other thread then fails instead of waiting.
            socket.socket.shutdown(ticket.conn, socket.SHUT_RDWR)

    def _tls_required(self, conn: socket.socket, peer: str) -> None:
        """Tell a client that spoke the protocol without TLS to a TLS server, in the clear,
        so that it can say which option is missing."""
        message = "this server speaks TLS: connect with --tls (or --tls-ca FILE)"
        self.log.info("%s refused: it spoke without TLS", peer)
        conn.sendall(protocol.error(protocol.ErrorCode.TLS_REQUIRED, message))
        conn.shutdown(socket.SHUT_WR)
        drain(conn, 2.0)  # its HELLO, unread, would turn our close into a reset

    def _client(self, conn: socket.socket, ticket: Ticket) -> None:
        peer = ticket.peer
        try:
            # A backstop only: the deadline watch ends a slow handshake sooner.
            conn.settimeout(self.admission.handshake_timeout + 1)
            # Small frames must not wait for the peer's delayed ACK (Nagle): 40 ms per file.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.plain:
                serve_plain(conn, ticket, self.root, self.admission, self.log)
                return
            if self.tls is not None:
                first = conn.recv(1, socket.MSG_PEEK)
                if not first:
                    return  # gone (or dropped) before a byte
                if first == protocol.MAGIC[:1]:
                    self._tls_required(conn, peer)
                    return
                conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                ticket.conn = conn  # what the deadline watch shuts down from now on
                conn.do_handshake()  # on this thread, within the handshake deadline
            session = Session(self, conn, peer)
            try:
                if session.handshake(ticket):
                    conn.settimeout(IDLE_TIMEOUT)
                    session.serve()
            finally:
                # Answers held for a batch still go out when a later request fails.
                with contextlib.suppress(OSError):
                    session.flush()
        except (OSError, protocol.ProtocolError) as exc:
            if ticket.dropped is None:  # a dropped one was said already
                self.log.info("%s: %s", peer, exc)
        finally:
            conn.close()  # now, whoever else still holds the socket (the ticket does)
            self.admission.leave(ticket)


def tls_context(cert: str, key: str | None = None) -> ssl.SSLContext:
    """A server TLS context from a certificate (and key) file, with clear errors."""
    from netassist.errors import NetassistError, explain

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise NetassistError(
            f"cannot use {cert} as a TLS certificate: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise explain(exc, f"opening {cert}") from None
    return context


class _Over(Exception):
    """The session ends here; the log has said why."""


@dataclass(frozen=True, slots=True)
class _Held:
    """Where an upload resumed and the digest of everything it now holds."""

    offset: int
    hasher: object


class Session:
    """One client connection: handshake, then requests until it closes."""

    def __init__(self, server: FileServer, conn: socket.socket, peer: str = "") -> None:
        self.server = server
        self.conn = conn
        self.peer = peer
        self.first_bytes = b""  # what the client sent first, to tell what it is
        self.reader = protocol.Reader()
        #: The version and digest agreed in the handshake (version 1 until then).
        self.agreed = protocol.V1
        self._held: list[bytes] = []  # answers not sent yet (see _answer)
        self._held_size = 0

    def _answer(self, data: bytes) -> None:
        """Send a small answer, or hold it while the client's next request is already
        here: the answers to a batch of pipelined requests then share one send (a folder
        of small files no longer costs a send, and a wake-up of the client, per file)."""
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size < HOLD_LIMIT and self.reader.frame_ready():
            return
        self.flush()

    def _send(self, data: bytes) -> None:
        """Send ``data`` after whatever answers are held."""
        if self._held:
            self._held.append(data)
            data = b"".join(self._held)
            self._held.clear()
            self._held_size = 0
        self.conn.sendall(data)

    def flush(self) -> None:
        """Send the answers held so far."""
        if self._held:
            self._send(b"")

    def read_frame(self) -> protocol.Frame | None:
        while True:
            event = self.reader.next_event()
            if isinstance(event, protocol.Frame):
                return event
            if event is not None:
                raise protocol.ProtocolError("a client may not send raw data here")
            self.flush()  # nothing held may wait for a request the client will not send
            data = self.conn.recv(65536)
            if not data:
                return None
            if not self.first_bytes:
                self.first_bytes = data[:64]
            self.reader.feed(data)

    def run(self) -> None:
        """The handshake, then requests until the client leaves."""
        if self.handshake():
            self.serve()

    def handshake(self, ticket: Ticket | None = None) -> bool:
        """Read the client's HELLO and answer it; with a ``ticket``, the session also needs
        the admission's consent. Whether requests may follow."""
        try:
            hello = self.read_frame()
        except protocol.ProtocolError:
            self.server.log.info("%s refused: %s", self.peer, self._stranger())
            return False
        if hello is None:
            return False
        try:
            if hello.type is not protocol.FrameType.HELLO:
                raise protocol.Disagreement("expected a HELLO")
            self.agreed = protocol.agree(hello.body, self.server.digest_algorithms)
        except protocol.Disagreement as exc:
            self._refuse(protocol.ErrorCode.VERSION, str(exc))
            return False
        token = self.server.token
        given = hello.body.get("token")
        if token is not None and not (
            isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())
        ):
            self._refuse(protocol.ErrorCode.AUTH, "wrong or missing token")
            return False
        if ticket is not None and (busy := self.server.admission.admit(ticket)) is not None:
            self._refuse(protocol.ErrorCode.BUSY, f"{busy}; try again later")
            return False
        answer = {
            "version": self.agreed.version,
            "server": "netassist",
            "upload": self.server.allow_upload,
            "hidden": self.server.show_hidden,
            "names": self.server.system,
        }
        if self.agreed.version >= 2:
            answer["digest"] = self.agreed.digest
        self._send(protocol.encode(protocol.FrameType.HELLO, answer))
        spoken = f"version {self.agreed.version}, {self.agreed.digest}"
        tls = ", TLS" if self.server.tls else ""
        self.server.log.info("%s connected (%s%s)", self.peer, spoken, tls)
        return True

    def _stranger(self) -> str:
        """What a client that does not speak this protocol seems to be, from its first
        bytes (for the log)."""
        first = self.first_bytes
        if first[:1] == b"\x16":
            return "a TLS client, and this server has no --tls-cert"
        said = escape_text(first[:40].decode("utf-8", "replace"))
        return (
            f"not a netassist client (it sent {said!r}; a client as in the tutorial, which "
            "sends a bare name, needs files serve --plain)"
        )

    def _refuse(self, code: str, message: str, what: str = "", why: str = "") -> None:
        """Tell the client why it is refused, and the log (``why``, for the log only, says
        more than the client may know)."""
        self.server.log.info(
            "%s %srefused: %s%s",
            self.peer,
            f"{what} " if what else "",
            escape_text(message),
            f" ({why})" if why else "",
        )
        self._send(protocol.error(code, message))

    def serve(self) -> None:
        """Answer requests until the client leaves."""
        handlers = {"ls": self.ls, "get": self.get, "put": self.put}
        while (frame := self.read_frame()) is not None:
            if frame.type is not protocol.FrameType.REQUEST:
                raise protocol.ProtocolError("expected a request")
            op, path = frame.body.get("op"), frame.body.get("path", "")
            what = f"{escape_text(str(op))} {escape_text(str(path)) or '/'}"
            handler = handlers.get(op) if isinstance(op, str) else None
            if handler is None or not isinstance(path, str):
                problem = "path must be a string" if handler else f"unknown operation {op!r}"
                self._refuse(protocol.ErrorCode.BAD_REQUEST, problem, what)
                continue
            try:
                handler(path, frame.body)
            except PathRefused as exc:
                # Not found and refused look the same: a refusal must not reveal what exists.
                self._refuse(
                    protocol.ErrorCode.NOT_FOUND,
                    f"no such file or folder: {escape_text(path)}",
                    what,
                    str(exc),
                )
            except _Over:
                return  # the log has said why
            except (OSError, protocol.ProtocolError) as exc:
                self.server.log.info("%s %s: failed: %s", self.peer, what, exc)
                return

    def _done(self, what: str, text: str) -> None:
        """One line in the log for a request served."""
        self.server.log.info("%s %s: %s", self.peer, what, text)

    def put(self, path: str, body: dict) -> None:
        """Receive a file into ``path``: resumable, verified, and over an existing file only
        when the client says ``force`` (one with the same digest is already there)."""
        server = self.server
        what = f"put {escape_text(path)}"
        if not server.allow_upload:
            self._refuse(
                protocol.ErrorCode.REFUSED,
                "this server is read-only (start it with --allow-upload)",
                what,
            )
            return
        field = self.agreed.digest_field
        size, digest, mtime_ns = body.get("size"), body.get(field), body.get("mtime_ns")
        if not (
            isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
            and isinstance(digest, str)
        ):
            self._refuse(protocol.ErrorCode.BAD_REQUEST, f"put needs a size and a {field}", what)
            return
        if server.max_upload is not None and size > server.max_upload:
            self._refuse(
                protocol.ErrorCode.TOO_LARGE,
                f"files above {server.max_upload} bytes are refused",
                what,
            )
            return
        segments = server.segments(path)
        if not segments:
            raise PathRefused(Reason.EMPTY)
        try:
            folder = make_folders(server.root, segments[:-1], show_hidden=server.show_hidden)
        except OSError as exc:
            # A folder the server may not make (or a full disk): this put fails, not the
            # connection (it was cut, and the client advised a resume that never works).
            why = (exc.strerror or str(exc)).lower()
            self.server.log.warning("%s %s: cannot make its folder: %s", self.peer, what, exc)
            message = f"{path} cannot be written here (its folder cannot be made: {why})"
            self._refuse(protocol.ErrorCode.REFUSED, message, what)
            return
        target = os.path.join(folder, segments[-1])
        force = body.get("force") is True
        if os.path.lexists(target):
            if self._already_there(target, size, digest):
                reply = {"path": path, "size": size, field: digest, "already": True}
                self._send(protocol.encode(protocol.FrameType.REPLY, reply))
                self._done(what, f"already there (the same {self.agreed.digest}); nothing sent")
                return
            if os.path.isdir(target):
                self._refuse(protocol.ErrorCode.EXISTS, f"{path} is a folder on the server", what)
                return
            if not force:
                message = f"{path} exists on the server and differs (put --force replaces it)"
                self._refuse(protocol.ErrorCode.EXISTS, message, what)
                return
        # A hidden name: the resolver never serves a half-received upload to anyone.
        part = os.path.join(folder, f".{segments[-1]}{PART_SUFFIX}")
        try:
            # Never through a link: one planted under the .part name would lead the upload anywhere.
            fd = open_no_follow(part, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            self.server.log.warning("%s %s: cannot open %s: %s", self.peer, what, part, exc)
            self._refuse(protocol.ErrorCode.REFUSED, f"{path} cannot be written here", what)
            return
        started = time.monotonic()
        try:
            held = self._receive_upload(fd, part, path, what, size)
        finally:
            os.close(fd)
        if held.hasher.hexdigest() != digest:
            os.remove(part)
            self._refuse(
                protocol.ErrorCode.BAD_REQUEST,
                f"the data did not match its {self.agreed.digest}; nothing kept",
                what,
                "the partial upload was removed",
            )
            return
        if force:
            try:
                os.replace(part, target)  # a file, or a link itself: never what it points to
            except IsADirectoryError:
                message = f"{path} became a folder on the server meanwhile; nothing replaced"
                self._refuse(protocol.ErrorCode.EXISTS, message, what, "the upload is kept hidden")
                return
        elif os.path.lexists(target):
            self._refuse(
                protocol.ErrorCode.EXISTS,
                f"{path} appeared on the server meanwhile (what arrived is kept there, "
                "hidden, for a later put --force)",
                what,
            )
            return
        else:
            os.rename(part, target)
        if isinstance(mtime_ns, int) and not isinstance(mtime_ns, bool):
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(target, ns=(mtime_ns, mtime_ns))
        self._send(
            protocol.encode(protocol.FrameType.REPLY, {"path": path, "size": size, field: digest})
        )
        resumed = f" (resumed from {held.offset:,})" if held.offset else ""
        took = time.monotonic() - started
        replaced = ", replacing the file there" if force else ""
        self._done(
            what,
            f"received {size - held.offset:,} bytes{resumed} in {took:.2f} s, verified{replaced}",
        )

    def _already_there(self, target: str, size: int, digest: str) -> bool:
        """Whether ``target`` is a regular file of ``size`` bytes with the digest ``digest``
        (hashed only when the size matches; the digest cache remembers it)."""
        algorithm = self.agreed.digest
        try:
            st = os.lstat(target)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        known = self.server.digests.known(algorithm, target, st)
        if known is None:
            try:
                with open(target, "rb") as handle:
                    known = prefix_digest(handle, size, algorithm).hexdigest()
            except OSError:
                return False
            if not _changed_since_path(target, st):
                self.server.digests.remember(algorithm, target, st, known)
        return hmac.compare_digest(known, digest)

    def _receive_upload(self, fd: int, part: str, path: str, what: str, size: int) -> _Held:
        """Offer the client what ``part`` (open as ``fd``) already holds, then receive the
        rest into it. Whatever stops it early, the log and the client hear what became of
        the part: kept for a resume when the client left, removed when it could not be
        written (a full disk must not stay filled by it)."""
        held = os.fstat(fd).st_size
        if held > size:
            held = 0
        with open(fd, "rb", buffering=0, closefd=False) as reading:
            hasher = prefix_digest(reading, held, self.agreed.digest)
        os.ftruncate(fd, held)
        os.lseek(fd, held, os.SEEK_SET)
        self._send(protocol.encode(protocol.FrameType.REPLY, {"path": path, "offset": held}))
        announce = self.read_frame()
        if announce is None:
            self._done(what, f"the client left before the data; kept {part} ({held:,} bytes)")
            raise _Over
        if announce.type is not protocol.FrameType.FILE or announce.body.get("length") != (
            size - held
        ):
            raise protocol.ProtocolError("expected the announced file data")
        try:
            receive_stream(self.conn, self.reader, FileSink(fd, part), hasher, size - held)
        except WriteFailed as failed:
            got = os.fstat(fd).st_size
            os.remove(part)
            reason = (failed.error.strerror or str(failed.error)).lower()
            self.server.log.warning(
                "%s %s: %s after %s bytes; removed the partial upload %s",
                self.peer,
                what,
                reason,
                f"{got:,}",
                part,
            )
            code = (
                protocol.ErrorCode.NO_SPACE
                if failed.error.errno == errno.ENOSPC
                else protocol.ErrorCode.REFUSED
            )
            message = f"the server could not store {path}: {reason}; the partial upload was removed"
            self._send(protocol.error(code, message))
            drain(self.conn, DRAIN_TIME)
            raise _Over from None
        except (StreamCut, OSError) as exc:
            why = "the client left" if isinstance(exc, StreamCut) else f"failed ({exc})"
            got = os.fstat(fd).st_size
            self._done(what, f"{why} after {got:,} of {size:,} bytes; kept {part} for a resume")
            raise _Over from None
        self.reader.next_event()  # the end of the stream
        return _Held(held, hasher)

    def ls(self, path: str, body: dict) -> None:
        """Answer an ls: the entries of a folder, or the one entry of a file."""
        real, st = self.server.resolve(path)
        left_out: Counter[str] = Counter()
        if not stat.S_ISDIR(st.st_mode):
            entries = [_entry(os.path.basename(real), st)]
        else:
            entries = [
                _entry(name, child) for name, child in _children(real, self.server, left_out)
            ]
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
        reply = {"path": path, "type": kind, "entries": entries, "left_out": left_out}
        self._send(protocol.encode(protocol.FrameType.REPLY, reply))
        count = len(entries)
        said = f"{count} entr{'y' if count == 1 else 'ies'}{_left_out_text(left_out)}"
        self._done(f"ls {escape_text(path) or '/'}", said)

    def get(self, path: str, body: dict) -> None:
        """Answer a get: a folder's list of files and folders (or, in version 2 when the
        client asks for it, the folder's files themselves), or a file's bytes."""
        what = f"get {escape_text(path) or '/'}"
        real, st = self.server.resolve(path)
        if stat.S_ISDIR(st.st_mode):
            if self.agreed.version >= 2 and body.get("stream") is True:
                self._stream_folder(path, real, what)
            else:
                self._list_folder(path, real, what)
            return
        offset = body.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            self._refuse(protocol.ErrorCode.BAD_REQUEST, "offset must be a whole number", what)
            return
        # A bare descriptor: a file object (its own fstat, its set-up) costs more than a small
        # file takes to send. Large and resumed files get an unbuffered one on top of it.
        started = time.monotonic()
        try:
            fd = os.open(real, open_flags(os.O_RDONLY))
        except OSError as exc:
            # A file the server's user may not read: this file fails, not the connection
            # (it was cut, and the client advised a resume that could never work).
            why = (exc.strerror or str(exc)).lower()
            message = f"the server cannot read {escape_text(path)} ({why})"
            self._refuse(protocol.ErrorCode.REFUSED, message, what)
            return
        try:
            sent = self._send_file(path, body, real, fd, offset)
        finally:
            os.close(fd)
        if sent is not None:
            length, start = sent
            resumed = f" (resumed from {start:,})" if start else ""
            took = time.monotonic() - started
            self._done(what, f"sent {length:,} bytes{resumed} in {took:.2f} s")

    def _list_folder(self, path: str, real: str, what: str) -> None:
        """Answer a get of a folder with every file and folder below it (the client then
        gets each file)."""
        files = []
        folders: list[str] = []
        left_out: Counter[str] = Counter()
        for relative, child in _walk(real, self.server, folders=folders, left_out=left_out):
            files.append({"path": relative, "size": child.st_size, "mtime_ns": child.st_mtime_ns})
            if len(files) > MAX_LISTED_FILES:
                self._refuse(protocol.ErrorCode.TOO_LARGE, "folder has too many files", what)
                return
        reply = {
            "path": path,
            "type": "directory",
            "files": files,
            "folders": folders,
            "left_out": left_out,
        }
        try:
            listing = protocol.encode(protocol.FrameType.REPLY, reply)
        except ValueError:  # over a frame's limit: said, not a dead session
            message = f"the listing of {path or '/'} is over {protocol.MAX_FRAME:,} bytes"
            self._refuse(protocol.ErrorCode.TOO_LARGE, message, what)
            return
        self._send(listing)
        said = f"a folder of {len(files)} files and {len(folders)} folders"
        self._done(what, said + _left_out_text(left_out))

    def _stream_folder(self, path: str, real: str, what: str) -> None:
        """Version 2: send every file and folder below ``real`` back to back, as the walk
        finds them. Small files go many to a FILES frame (their digests in it, their data
        after it, one send for up to :data:`HOLD_LIMIT` bytes); a large one goes as the
        FILE frame of a get. A REPLY with the counts ends the stream."""
        started = time.monotonic()
        batch = _Batch()
        files = folders = sent = 0
        left_out: Counter[str] = Counter()
        denied: list[dict[str, str]] = []
        for found in _tree(real, self.server, left_out):
            if found.folder:
                folders += 1
                batch.add({"path": found.relative, "type": "directory"}, b"")
                if batch.full():
                    self._send(batch.frame())
                continue
            files += 1  # no limit: nothing is held per file (a listing is held whole)
            try:
                opened = found.open()
            except PermissionError as exc:
                # This file fails, not the stream: named in the closing REPLY (up to a
                # bound, so the REPLY fits a frame; the rest counted).
                if len(denied) < MAX_DENIED_NAMED:
                    why = (exc.strerror or str(exc)).lower()
                    named = f"{path}/{found.relative}" if path else found.relative
                    reason = f"the server cannot read {escape_text(named)} ({why})"
                    denied.append({"path": found.relative, "reason": reason})
                else:
                    left_out["denied"] += 1
                continue
            if opened is None:  # replaced since the walk judged it: left out, said so
                left_out["changed"] += 1
                continue
            fd, st = opened
            try:
                if st.st_size > SMALL_SEND:
                    if batch.entries:
                        self._send(batch.frame())
                    done = self._send_file(found.relative, {}, found.path, fd, 0)
                    size = None if done is None else done[0]
                else:
                    size = self._batch_small(batch, found.relative, found.path, fd, st)
            finally:
                os.close(fd)
            if size is None:
                return  # it changed while it was read: the client has been told
            sent += size
            if batch.full():
                self._send(batch.frame())
        end = {"path": path, "type": "directory", "files": files, "folders": folders}
        end["left_out"] = left_out
        if denied:
            end["refused"] = denied
        self._send(batch.frame() + protocol.encode(protocol.FrameType.REPLY, end))
        took = time.monotonic() - started
        said = left_out + Counter(denied=len(denied))  # the log counts the named ones too
        self._done(
            what,
            f"streamed {files} files and {folders} folders, {sent:,} bytes in {took:.2f} s"
            + _left_out_text(said),
        )

    def _batch_small(
        self, batch: _Batch, relative: str, real: str, fd: int, st: os.stat_result
    ) -> int | None:
        """Add the small file open as ``fd`` (``st`` its fstat) to ``batch``; its size, or
        None (the client told) when it changed while it was read."""
        algorithm = self.agreed.digest
        data = _read_at(fd, st.st_size, 0) if st.st_size else b""
        if len(data) != st.st_size or _changed_since(fd, st):
            self._send(batch.frame())
            message = f"{relative} changed while it was read; try again"
            self._refuse(protocol.ErrorCode.CHANGED, message, f"get {escape_text(relative)}")
            return None
        digest = self.server.digests.known(algorithm, real, st)
        if digest is None:
            digest = digests.of(algorithm, data)
            self.server.digests.remember(algorithm, real, st, digest)
        batch.add(
            {
                "path": relative,
                "type": "file",
                "size": st.st_size,
                "mode": stat.S_IMODE(st.st_mode),
                "mtime_ns": st.st_mtime_ns,
                "digest": digest,
            },
            data,
        )
        return st.st_size

    def _send_file(
        self, path: str, body: dict, real: str, fd: int, offset: int
    ) -> tuple[int, int] | None:
        """Answer a get of the file open as ``fd`` from ``offset`` (the resolver's ``real``
        path keys the digest cache). Returns how many bytes went from which offset, or None
        when the file changed while it was read (the client is told)."""
        st = os.fstat(fd)  # what is announced and sent is this, not later changes
        size = st.st_size
        algorithm = self.agreed.digest
        digest = self.server.digests.known(algorithm, real, st)
        hasher = None
        # closefd=False: the descriptor is closed by the caller, whatever happens here.
        handle = (
            open(fd, "rb", buffering=0, closefd=False)  # noqa: SIM115
            if offset or size > SMALL_SEND
            else None
        )
        if offset:
            prefix = body.get(self.agreed.prefix_field)
            hasher = prefix_digest(handle, offset, algorithm) if offset <= size else None
            if hasher is None or not isinstance(prefix, str) or hasher.hexdigest() != prefix:
                offset, hasher = 0, None  # not a prefix of this file: start over
        small = None
        if digest is None and not offset and size <= SMALL_SEND:
            # A small file unknown to the cache: read and hash it first, so its digest rides
            # in the announcement (no trailer frame to build and parse).
            small = _read_at(fd, size, 0)
            if len(small) != size or _changed_since(fd, st):
                message = f"{path} changed while it was read; try again"
                self._refuse(protocol.ErrorCode.CHANGED, message, f"get {escape_text(path)}")
                return None
            digest = digests.of(algorithm, small)
            self.server.digests.remember(algorithm, real, st, digest)
        header = {
            "path": path,
            "size": size,
            "offset": offset,
            "length": size - offset,
            self.agreed.digest_field: digest,
            "mtime_ns": st.st_mtime_ns,
        }
        if self.agreed.version >= 2:
            header["mode"] = stat.S_IMODE(st.st_mode)
        announce = protocol.encode(protocol.FrameType.FILE, header)
        if digest is not None and size - offset <= SMALL_SEND:
            # A small file with a known digest: with its announcement in one send (no
            # sendfile set-up, one syscall fewer).
            data = small if small is not None else _read_at(fd, size - offset, offset)
            if len(data) != size - offset:
                raise protocol.ProtocolError(f"{path} shrank while it was sent")
            self._answer(announce + data)
            return size - offset, offset
        assert handle is not None  # every path below is a large file or a resumed one
        if digest is not None:
            # A known digest: the data can go without passing through this process.
            with corked(self.conn, size - offset):
                self._send(announce)
                sent = self.conn.sendfile(handle, offset, size - offset) if size > offset else 0
            if sent != size - offset:
                raise protocol.ProtocolError(f"{path} shrank while it was sent")
            return size - offset, offset
        # An unknown digest: hash while sending (one pass over the file, not two) and send it
        # in a trailer. The announcement rides with the first block and the last block waits
        # for the trailer, so a small file goes out in a single send.
        if hasher is None:
            hasher = digests.new(algorithm)
        handle.seek(offset)
        pending = self._send_hashed(handle, hasher, announce, size - offset, path)
        if _changed_since(fd, st):
            # The bytes sent were hashed as sent, so the digest would match a mixed file: say
            # it changed instead, and cache nothing.
            message = f"{path} changed while it was sent; try again"
            self.server.log.info("%s get %s refused: %s", self.peer, escape_text(path), message)
            self._send(pending + protocol.error(protocol.ErrorCode.CHANGED, message))
            return None
        digest = hasher.hexdigest()
        self.server.digests.remember(algorithm, real, st, digest)
        trailer = {"path": path, self.agreed.digest_field: digest}
        self._send(pending + protocol.encode(protocol.FrameType.REPLY, trailer))
        return size - offset, offset

    def _send_hashed(self, handle, hasher, announce: bytes, left: int, path: str) -> bytes:
        """Send ``left`` bytes of ``handle`` (after ``announce``) while hashing them; the
        last block is returned unsent, to go out with what follows it."""
        if left < THREAD_THRESHOLD or not positional_reads():
            pending = announce
            while left > 0:
                block = handle.read(min(SEND_BLOCK, left))
                if not block:
                    raise protocol.ProtocolError(f"{path} shrank while it was sent")
                hasher.update(block)
                left -= len(block)
                if left:
                    self._send(pending + block if pending else block)
                    pending = b""
                else:
                    pending += block
            return pending
        # Large: the data goes by sendfile (no copy through this process) while a second
        # thread reads the same range and hashes it; the trailer waits for both.
        start = handle.tell()
        hashing = HashRange(handle.fileno(), start, left, hasher)
        try:
            with corked(self.conn, left):
                self._send(announce)
                sent = self.conn.sendfile(handle, start, left)
        except BaseException:
            hashing.cancel()  # no use hashing the rest for a client that is gone
            hashing.wait()
            raise
        hashed = hashing.wait()
        if sent != left or hashed != left:
            raise protocol.ProtocolError(f"{path} shrank while it was sent")
        return b""


class _Batch:
    """The small files of a folder stream waiting to go out in one FILES frame."""

    __slots__ = ("data", "entries", "size", "text")

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.data: list[bytes] = []
        self.size = 0
        self.text = 0  # what the entries' JSON can take at most, in bytes

    def add(self, entry: dict, data: bytes) -> None:
        """One more file (or folder, without data): its entry and its bytes."""
        self.entries.append(entry)
        if data:
            self.data.append(data)
            self.size += len(data)
        # A character of a name takes 6 bytes at most in JSON (a \uXXXX escape); the other
        # fields of an entry fewer than 200.
        self.text += 6 * len(entry["path"]) + 200

    def full(self) -> bool:
        """Whether the batch is due: enough data for one send, enough files, or entries
        whose JSON could approach a frame's limit (deep trees of long names)."""
        return (
            self.size >= HOLD_LIMIT
            or len(self.entries) >= BATCH_FILES
            or self.text >= protocol.MAX_FRAME // 2
        )

    def frame(self) -> bytes:
        """The FILES frame of what was added, data included (nothing when empty); the batch
        is empty again after it."""
        if not self.entries:
            return b""
        body = {"entries": self.entries, "length": self.size}
        framed = protocol.encode(protocol.FrameType.FILES, body) + b"".join(self.data)
        self.entries, self.data, self.size, self.text = [], [], 0, 0
        return framed


@dataclass(frozen=True, slots=True)
class _Found:
    """A file or folder a folder stream met: ``relative`` to the folder streamed, ``path``
    to open, and the inode the walk judged (the file opened must be that one)."""

    relative: str
    path: str
    folder: bool
    inode: int
    through_link: bool

    def open(self) -> tuple[int, os.stat_result] | None:
        """The file open for reading and its fstat; None when what is there now is not the
        regular file the walk judged (swapped for a link, a FIFO, another file)."""
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block us
        if not self.through_link:
            flags |= getattr(os, "O_NOFOLLOW", 0)  # looked up here: Windows has none
        try:
            fd = os.open(self.path, open_flags(flags))
        except PermissionError:
            raise  # the server's user may not read it: the stream names it
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (self.inode and st.st_ino != self.inode):
            os.close(fd)
            return None
        return fd, st


def _tree(folder: str, server: FileServer, left_out: Counter[str]) -> Iterator[_Found]:
    """Every folder and file below ``folder`` a client may touch, each folder before what it
    holds, folders first and by name, as the walk meets them (a stream sends the first files
    while the walk goes on). Names are judged by ``netassist.paths`` as :func:`_children`
    judges them; an entry the directory says is a plain file or folder needs no lstat (its
    inode is checked when it is opened), a link or anything else goes through
    :func:`~netassist.paths.resolve_child`. What is left out is counted in ``left_out``.

    A stack of folders, not recursion: a tree a thousand folders deep (a path of 2,000
    characters) would pass Python's recursion limit and end the session."""
    top = os.stat(folder)
    seen = {(top.st_dev, top.st_ino)}
    stack = [iter(_tree_level(folder, server, left_out))]
    while stack:
        found = next(stack[-1], None)
        if found is None:
            stack.pop()
            continue
        is_file, _, path, inode, linked, key, relative = found
        if is_file:
            yield _Found(relative, path, False, inode, linked)
            continue
        if key is None:
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        yield _Found(relative, path, True, inode, linked)
        stack.append(iter(_tree_level(path, server, left_out, relative + "/")))


def _tree_level(
    folder: str, server: FileServer, left_out: Counter[str], prefix: str = ""
) -> list[tuple]:
    """The entries of one folder for :func:`_tree`, judged and sorted (folders first, then
    by name): (is_file, name, path, inode, through_link, (dev, inode) or None, relative)."""
    found = []
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        left_out["unreadable"] += 1  # it goes as an empty folder: said, as a listing says
        return found
    for entry in entries:
        name = entry.name
        try:
            if _is_part(name):
                raise PathRefused(Reason.HIDDEN)
            if entry.is_symlink() or not (
                entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)
            ):
                _, st = resolve_child(
                    server.root, folder, name, show_hidden=server.show_hidden, system=server.system
                )
                is_dir, inode, linked = stat.S_ISDIR(st.st_mode), st.st_ino, True
                key = (st.st_dev, st.st_ino)
            else:
                paths.check_segment(name, show_hidden=server.show_hidden, system=server.system)
                is_dir, inode, linked = entry.is_dir(follow_symlinks=False), entry.inode(), False
                key = None
        except (PathRefused, OSError) as exc:
            reason = exc.reason if isinstance(exc, PathRefused) else Reason.MISSING
            left_out[_LEFT_OUT.get(reason, "names")] += 1
            continue
        found.append((not is_dir, name, entry.path, inode, linked, key, f"{prefix}{name}"))
    found.sort()
    return found


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer only at the end of the file):
    ``os.pread`` where it exists, a seek and reads elsewhere (Windows)."""
    if positional_reads():
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    pieces = []
    while size > 0 and (piece := os.read(fd, size)):
        pieces.append(piece)
        size -= len(piece)
    return b"".join(pieces)


def _changed_since_path(path: str, st: os.stat_result) -> bool:
    """Whether the file at ``path`` is not the one ``st`` described any more."""
    try:
        now = os.lstat(path)
    except OSError:
        return True
    return (now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns)


def _changed_since(fd: int, st: os.stat_result) -> bool:
    """Whether the open file's size or modification time moved since ``st`` was taken."""
    now = os.fstat(fd)
    return (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns)


def _entry(name: str, st: os.stat_result) -> dict:
    return {
        "name": name,
        "type": "directory" if stat.S_ISDIR(st.st_mode) else "file",
        "size": 0 if stat.S_ISDIR(st.st_mode) else st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


#: How the log line of a listing names each kind of entry left out.
_LEFT_OUT_SAID = {
    "hidden": "hidden",
    "outside": "links leading outside",
    "broken": "broken links",
    "special": "devices, FIFOs or sockets",
    "names": "refused by name (not UTF-8, or shaped like a path)",
    "unreadable": "unreadable folder(s), sent empty",
    "denied": "unreadable file(s)",
    "changed": "file(s) replaced while sent",
}


def _left_out_text(left_out: Counter[str]) -> str:
    """``; left out 1 hidden, 2 refused by name (...)`` for the log line of a listing, so
    the one serving sees what a client did not get, and why; empty when nothing was."""
    said = ", ".join(f"{n} {_LEFT_OUT_SAID.get(why, why)}" for why, n in sorted(left_out.items()))
    return f"; left out {said}" if said else ""


def _children(
    folder: str, server: FileServer, left_out: Counter[str]
) -> Iterator[tuple[str, os.stat_result]]:
    """The entries of ``folder`` (a folder the resolver let through) a client may touch,
    sorted, folders first: each one a request for it would be answered for. What is left
    out is counted in ``left_out`` by why (hidden, a link outside, a device...)."""
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        left_out["unreadable"] += 1  # it was sent as an empty folder, and nobody knew
        return iter(())
    for name in names:
        try:
            if _is_part(name):
                raise PathRefused(Reason.HIDDEN)
            _, st = resolve_child(
                server.root, folder, name, show_hidden=server.show_hidden, system=server.system
            )
        except PathRefused as exc:
            left_out[_LEFT_OUT.get(exc.reason, "names")] += 1
            continue
        found.append((name, st))
    found.sort(key=lambda item: (not stat.S_ISDIR(item[1].st_mode), item[0]))
    return iter(found)


def _is_part(name: str) -> bool:
    """Whether ``name`` is an upload in progress, never shared, even with hidden names."""
    return name.endswith(PART_SUFFIX) and name[0] == "."


def _walk(
    folder: str,
    server: FileServer,
    folders: list[str] | None = None,
    left_out: Counter[str] | None = None,
) -> Iterator[tuple[str, os.stat_result]]:
    """Every file below ``folder`` a client may touch, as paths relative to it (a folder
    reached twice through links is walked once, so a link to an ancestor cannot loop).
    ``folders``, when given, collects every folder below it the same way; ``left_out``
    counts what was left out. A stack of folders, not recursion: a tree a thousand folders
    deep would pass Python's recursion limit and end the session."""
    top = os.stat(folder)
    seen = {(top.st_dev, top.st_ino)}
    if left_out is None:
        left_out = Counter()
    stack = [(folder, "", _children(folder, server, left_out))]
    while stack:
        where, prefix, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        name, st = child
        relative = f"{prefix}{name}"
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if folders is not None:
                folders.append(relative)
            path = os.path.join(where, name)
            stack.append((path, relative + "/", _children(path, server, left_out)))
        else:
            yield relative, st
