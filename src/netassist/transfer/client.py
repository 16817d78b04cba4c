"""The file-transfer client: it writes only what it asked for, inside its target folder,
and only after the digest the server announced (BLAKE3 or SHA-256, as agreed in the
handshake) matches what arrived.

Names are judged before anything is made or sent. A name built to escape (``..``, an
absolute path, a drive) ends the job; a name this system's file system cannot hold (``aux.c``
on Windows), a hidden name nobody asked for, or a name the server could not hold is skipped,
and the skip is a :class:`Result` with ``refused`` saying why, so nothing goes silently.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import stat
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING

from netassist import paths
from netassist.errors import ExitCode, NetassistError, TimeoutExpired, UsageError, explain
from netassist.paths import CANNOT_HOLD, PathRefused, check_segment, enter_folder, relative_parts
from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.digest import prefix_digest
from netassist.transfer.stream import (
    FileSink,
    StreamCut,
    WriteFailed,
    open_no_follow,
    receive_stream,
    rename_no_replace,
)
from netassist.wire.codecs import escape_text
from netassist.wire.sockets import connect_tcp, format_address

if TYPE_CHECKING:
    import ssl

RECV_BLOCK = 1 << 20
PIPELINE = 32  # file requests in flight while a folder downloads file by file
REFILL = 8  # requests sent at once to fill the window again
MAX_BATCH = 64 << 20  # the data of one FILES frame, at most (a server sends far less)
PUT_STEP = 8 << 20  # bytes sent between two looks at progress and at the server's answer
PART = ".part"


class TransferError(NetassistError):
    """A transfer that could not be completed; the message says what and what to do.
    ``code`` is the server's ERROR code when it said one."""

    exit_code = ExitCode.NETWORK
    code = ""  # the server's ERROR code, when it sent one
    reason = ""  # and its message


#: ERROR answers to a get that concern that one file: a folder's other files still come.
_ONE_FILE = frozenset({protocol.ErrorCode.NOT_FOUND, protocol.ErrorCode.REFUSED})


@dataclass
class Result:
    """One file that was fetched or sent, or one name that was skipped.

    ``skipped`` with an empty ``refused``: the file exists here already (``--force``
    replaces it). ``refused`` says why a name was skipped instead (a name ending in ``/`` is
    a folder, skipped with its ``files`` files); a name that is not UTF-8 is shown escaped.
    ``digest`` is the verified digest of the whole file, by ``algorithm`` (``blake3`` or
    ``sha256``; empty when nothing was verified)."""

    remote: str
    local: str
    size: int
    received: int
    resumed_from: int
    digest: str
    skipped: bool = False
    refused: str = ""
    files: int = 1
    algorithm: str = ""

    def as_json(self) -> dict:
        """The result as ``--json`` prints it: every field, and ``sha256`` (the digest when
        it is a SHA-256, else null: ``--digest sha256`` asks for one)."""
        return {**self.__dict__, "sha256": self.digest if self.algorithm == "sha256" else None}


class _Skips:
    """Names skipped while a job is planned, gathered per skipped name (a skipped folder
    once, with its files counted), in the order met."""

    def __init__(self) -> None:
        self._found: dict[str, Result] = {}

    def add(self, name: str, reason: str, size: int = 0, files: int = 1) -> None:
        """Skip ``name`` (``/``-terminated for a folder) for ``reason``."""
        known = self._found.get(name)
        if known is None:
            self._found[name] = Result(shown(name), "", size, 0, 0, "", True, reason, files)
        else:
            known.size += size
            known.files += files

    def results(self) -> list[Result]:
        """One Result per skipped name."""
        return list(self._found.values())


def _size(item: dict) -> int:
    size = item.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0


def client_tls(ca_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the system's trust store, or ``ca_file`` (a CA or the server's
    own self-signed certificate). Host names are always checked."""
    import ssl  # here: a client without TLS starts without it

    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def shown(name: str) -> str:
    """A name that came from the network, safe to print."""
    return escape_text(name)


class Client:
    """A connected, authenticated client. Use as a context manager."""

    def __init__(
        self,
        host: str,
        port: int = protocol.DEFAULT_PORT,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
        system: str | None = None,
        digest: str | None = None,
    ):
        """Connect and greet the server. ``digest`` insists on one algorithm (``blake3`` or
        ``sha256``); without it the client offers every one it has, BLAKE3 first, and takes
        SHA-256 from a server of protocol version 1."""
        self.peer = format_address((host, port))
        offered = (digest,) if digest else digests.available()
        if digest is not None and digest not in digests.available():
            raise NetassistError(f"--digest {digest}: {digests.MISSING_NOTICE}", ExitCode.USAGE)
        #: The version and digest agreed with the server.
        self.agreed = protocol.V1
        # Whose names this side can hold: this system's, asked now (a parameter for tests).
        self.system = system or paths.local_system()
        # Counts of what servers left out of folders this client listed or fetched, by why.
        self.left_out: Counter[str] = Counter()
        self.timeout = timeout
        self.sock = connect_tcp(host, port, timeout)
        self.sock.settimeout(timeout)
        if tls is not None:
            import ssl

            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                self.sock.close()
                raise TransferError(
                    f"{self.peer}: TLS certificate not trusted ({exc.verify_message}); "
                    "give the server's certificate with --tls-ca",
                    ExitCode.PERMISSION_DENIED,
                ) from None
            except (ssl.SSLError, OSError) as exc:
                self.sock.close()
                # ssl's own text ("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in
                # violation of protocol (_ssl.c:1006)") is for its developers; its reason is
                # enough: a server without TLS closes (EOF) or answers in the clear.
                why = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
                raise TransferError(
                    f"{self.peer}: TLS failed ({why.lower().replace('_', ' ')}): the server "
                    "does not seem to speak TLS (then leave out --tls and --tls-ca)"
                ) from None
        self.reader = protocol.Reader()
        self._inbox = bytearray(RECV_BLOCK)
        self._inbox_view = memoryview(self._inbox)
        self._greeted = False
        self._first_bytes = b""  # what the server said first, to tell what it is
        #: The file in the middle of a transfer, for a caller that is interrupted: the
        #: local .part of a get, or the remote name of a put.
        self.receiving: str | None = None
        self.sending: str | None = None
        try:
            hello = protocol.client_hello(offered, token)
            self._send(protocol.encode(protocol.FrameType.HELLO, hello))
            answer = self._frame()
            if answer.type is not protocol.FrameType.HELLO:
                raise TransferError(f"{self.peer} did not greet us as a netassist file server")
            self.agreed = self._agreed(answer.body, offered)
            # The names the server takes: a server that does not say is held to Windows'
            # rules and no hidden names, as every netassist server was before it said.
            names = answer.body.get("names")
            self.server_system = names if names in (paths.POSIX, paths.WINDOWS) else paths.WINDOWS
            self.server_hidden = answer.body.get("hidden") is True
            self._greeted = True
        except BaseException:
            self.sock.close()
            raise

    def _agreed(self, answer: dict, offered: tuple[str, ...]) -> protocol.Agreement:
        """The version and digest the server's HELLO answer chose among those offered."""
        version = answer.get("version")
        if version == 1:
            if "sha256" not in offered:
                raise TransferError(
                    f"{self.peer} speaks protocol version 1, whose only digest is SHA-256: "
                    "use --digest sha256 (or update the server)",
                    ExitCode.USAGE,
                )
            return protocol.V1
        chosen = answer.get("digest")
        if version not in protocol.VERSIONS or chosen not in offered:
            raise TransferError(
                f"{self.peer} broke the protocol: it answered version {shown(str(version))} "
                f"with digest {shown(str(chosen))}, which we did not offer"
            )
        return protocol.Agreement(version, chosen)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the connection."""
        self.sock.close()

    def _network_error(self, exc: OSError, doing: str) -> NetassistError:
        return network_error(exc, f"{doing} {self.peer}", self.timeout)

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise self._network_error(exc, "sending to") from None

    def _recv(self) -> memoryview:
        # Into one reused buffer: a fresh 1 MiB bytes object per call cost more than the
        # answers to a batch of small files take to arrive.
        try:
            count = self.sock.recv_into(self._inbox)
        except OSError as exc:
            if not self._greeted and isinstance(exc, ConnectionError):
                raise self._not_a_file_server() from None
            raise self._network_error(exc, "receiving from") from None
        if not count:
            if not self._greeted:
                raise self._not_a_file_server()
            raise TransferError(
                f"{self.peer} closed the connection in the middle of a transfer "
                "(run again to resume)"
            )
        if not self._greeted and len(self._first_bytes) < 64:
            self._first_bytes += bytes(self._inbox_view[: 64 - len(self._first_bytes)])
        return self._inbox_view[:count]

    def _not_a_file_server(self) -> TransferError:
        """What to say of a peer that did not answer our HELLO as a netassist file server,
        from what it said first (if anything)."""
        first = self._first_bytes
        if first[:1] in (b"\x15", b"\x16"):  # a TLS record: an alert, or a handshake
            return TransferError(
                f"{self.peer} speaks TLS: connect with --tls "
                "(or --tls-ca FILE for a self-signed certificate)"
            )
        if first:
            said = shown(first.decode("latin-1"))
            return TransferError(
                f"{self.peer} is not a netassist file server (it answered {said!r}...; "
                "for one that takes a bare name, as the tutorial's does, use --plain)"
            )
        return TransferError(
            f"{self.peer} closed the connection without answering our greeting: it is not "
            "a netassist file server (one that takes a bare name, as the tutorial's does, "
            "needs --plain; one that wants TLS, --tls)"
        )

    def _frame(self) -> protocol.Frame:
        while True:
            try:
                event = self.reader.next_event()
            except protocol.ProtocolError as exc:
                if not self._greeted:
                    raise self._not_a_file_server() from None
                raise TransferError(f"{self.peer} broke the protocol: {exc}") from None
            if isinstance(event, protocol.Frame):
                if event.type is protocol.FrameType.ERROR:
                    code = str(event.body.get("code", "error"))
                    message = shown(str(event.body.get("message", "")))
                    exit_code = {
                        protocol.ErrorCode.NOT_FOUND: ExitCode.FILE,
                        protocol.ErrorCode.EXISTS: ExitCode.FILE,
                        protocol.ErrorCode.AUTH: ExitCode.PERMISSION_DENIED,
                        protocol.ErrorCode.REFUSED: ExitCode.PERMISSION_DENIED,
                        protocol.ErrorCode.NO_SPACE: ExitCode.ERROR,
                    }.get(code, ExitCode.NETWORK)
                    error = TransferError(f"{self.peer}: {message} ({code})", exit_code)
                    error.code, error.reason = code, message
                    raise error
                return event
            if event is not None:
                raise TransferError(f"{self.peer} sent data nobody asked for")
            self.reader.feed(self._recv())

    def request(self, op: str, path: str, **extra: object) -> protocol.Frame:
        """Send a request and return the answer frame."""
        self._send(protocol.encode(protocol.FrameType.REQUEST, {"op": op, "path": path, **extra}))
        return self._frame()

    def ls(self, path: str = "") -> list[dict]:
        """The entries of a remote folder (or the one entry of a file); what the server left
        out of it is added to :attr:`left_out`."""
        _, entries, body = self._ls(path)
        self._note_left_out(body)
        return entries

    def _ls(self, path: str) -> tuple[str, list[dict], dict]:
        body = self.request("ls", path).body
        entries, kind = body.get("entries"), body.get("type")
        if not isinstance(entries, list) or kind not in ("file", "directory"):
            raise TransferError(f"{self.peer} answered ls with no entries")
        for entry in entries:
            if not _valid_entry(entry):
                raise TransferError(
                    f"{self.peer} broke the protocol: a listing entry "
                    f"{shown(json.dumps(entry, ensure_ascii=False)[:120])} is not "
                    '{"name": text, "type": "file"|"directory", "size": bytes, "mtime_ns": time}'
                )
        return kind, entries, body

    def _note_left_out(self, body: dict) -> None:
        """Add up what the server says it left out of a folder (``left_out``: counts)."""
        left_out = body.get("left_out")
        if isinstance(left_out, dict):
            for why, count in left_out.items():
                if isinstance(why, str) and isinstance(count, int) and count > 0:
                    self.left_out[why] += count

    def _remote(self, remote: str) -> tuple[str, ...]:
        """The segments of a remote name the user gave, checked by the server's rules."""
        remote = remote.strip("/")
        try:
            return relative_parts(remote, system=self.server_system) if remote else ()
        except PathRefused as exc:
            raise NetassistError(
                f"bad remote name {shown(remote)!r}: {exc}", ExitCode.USAGE
            ) from None

    def get(
        self,
        remote: str,
        out_dir: str,
        *,
        force: bool = False,
        hidden: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """Fetch a remote file or folder into ``out_dir``; returns one Result per file, and
        one per name skipped (``refused``): a name this system cannot hold, or a hidden name
        inside the folder unless ``hidden`` (asking for a hidden name by name is asking).

        ``on_total(bytes)`` hears the size of the whole job once it is known;
        ``on_progress(remote, done, size)`` follows each file as it arrives."""
        wanted = self._remote(remote)
        answer_path = "/".join(wanted)
        kind, entries, _ = self._ls(answer_path)
        try:
            os.makedirs(out_dir, exist_ok=True)  # -o itself is the user's own choice
        except OSError as exc:
            raise explain(exc, f"creating {out_dir}") from None
        real_out = os.path.realpath(out_dir)
        folders: dict[tuple[str, ...], tuple[str, bool]] = {(): (out_dir, False)}
        if kind == "file" and wanted:
            if on_total is not None and entries:
                on_total(_size(entries[0]) if isinstance(entries[0], dict) else 0)
            skips = _Skips()
            if self._skipped(wanted[-1:], 1, wanted, False, skips):
                return skips.results()
            local = os.path.join(out_dir, wanted[-1])
            return [self.get_file(answer_path, local, force=force, on_progress=on_progress)]
        base = wanted[-1:]  # the folder arrives under its own name (asked for: not judged hidden)
        streamed = self.agreed.version >= 2

        def stream() -> list[Result]:
            from netassist.transfer.folder_stream import FolderStream

            folder = FolderStream(
                self, wanted, base, out_dir, real_out, folders, force=force, hidden=hidden
            )
            return folder.run(answer_path, on_progress, on_total)

        if streamed and _empty_or_missing(os.path.join(out_dir, *base)):
            # Nothing there to skip or resume: the server sends every file back to back.
            return stream()
        try:
            frame = self.request("get", answer_path)
        except TransferError as exc:
            if not (streamed and exc.code == protocol.ErrorCode.TOO_LARGE):
                raise
            # A listing too large for a frame: streamed instead (what is there is kept
            # without --force; a .part starts over).
            return stream()
        files, listed = frame.body.get("files"), frame.body.get("folders")
        if frame.type is not protocol.FrameType.REPLY or not isinstance(files, list):
            raise TransferError(f"{self.peer} answered get with neither a file nor a folder")
        self._note_left_out(frame.body)
        # Every name is judged before anything is made: a lying server stops the job here.
        skips = _Skips()
        wanted_files = []
        for item in files:
            segments = self._offered(item.get("path") if isinstance(item, dict) else None, "file")
            parts, named = (*base, *segments), (*wanted, *segments)
            if not self._skipped(parts, len(base), named, hidden, skips, size=_size(item)):
                wanted_files.append((segments, parts))
        wanted_folders = []
        for name in listed if isinstance(listed, list) else []:
            segments = self._offered(name, "folder")
            parts, named = (*base, *segments), (*wanted, *segments)
            if not self._skipped(parts, len(base), named, hidden, skips, folder=True):
                wanted_folders.append(parts)
        if on_total is not None:
            on_total(
                sum(_size(f) for f in files if isinstance(f, dict))
                - sum(r.size for r in skips.results())
            )
        results = skips.results()
        plan: list[tuple[str, str, bool]] = []
        for segments, parts in wanted_files:
            # A folder this job made holds nothing yet: its files need no look for an
            # existing file or a .part to resume.
            folder, fresh = self._folder(real_out, out_dir, parts[:-1], folders)
            local = os.path.join(folder, parts[-1])
            remote_name = "/".join((*wanted, *segments))
            if not fresh and os.path.exists(local) and not force:
                results.append(
                    Result(remote_name, local, os.path.getsize(local), 0, 0, "", skipped=True)
                )
            else:
                plan.append((remote_name, local, fresh))
        for parts in wanted_folders:  # empty ones too (a server older than this sends none)
            self._folder(real_out, out_dir, parts, folders)
        return results + self._fetch(plan, force, on_progress)

    def _fetch(
        self, plan: list[tuple[str, str, bool]], force: bool, on_progress: Callable | None
    ) -> list[Result]:
        """Fetch each (remote name, local path, folder made by this job) of ``plan``."""
        # Several requests in flight: the server answers in order, and a folder of small
        # files no longer costs one round trip per file. The window is topped up whenever
        # REFILL places are free, those requests in one send.
        results = []
        pending: deque[tuple[str, str, int]] = deque()
        queued = iter(plan)
        while True:
            if len(pending) <= PIPELINE - REFILL:
                batch = list(itertools.islice(queued, PIPELINE - len(pending)))
                if batch:
                    frames = []
                    for remote_name, local, fresh in batch:
                        frame, held = self._request_for(remote_name, local, fresh)
                        frames.append(frame)
                        pending.append((remote_name, local, held))
                    self._send(b"".join(frames))
            if not pending:
                return results
            remote_name, local, held = pending.popleft()
            try:
                frame = self._file_frame(remote_name)
            except TransferError as exc:
                if exc.code not in _ONE_FILE:
                    raise
                results.append(Result(shown(remote_name), local, 0, 0, 0, "", True, exc.reason))
                continue
            results.append(self._receive(frame, remote_name, local, force, held, on_progress))

    def _offered(
        self, name: object, kind: str, after: str = "nothing was written"
    ) -> tuple[str, ...]:
        """The segments of a ``kind`` ("file" or "folder") name the server listed; a name
        built to escape (``..``, absolute, a drive, NUL, an encoded slash) ends the job, as
        only a lying server sends one. Rules every system keeps are POSIX's; this system's
        own and hidden names are judged after (:meth:`_skipped`)."""
        if not isinstance(name, str):
            raise TransferError(f"{self.peer} listed a {kind} without a name")
        try:
            return relative_parts(name, system=paths.POSIX)
        except PathRefused as exc:
            if exc.reason in CANNOT_HOLD:  # too long for a file system: not a lie
                return tuple(part for part in name.split("/") if part)  # _skipped skips it
            what = "name" if kind == "file" else f"{kind} name"
            raise TransferError(
                f"{self.peer} offered a dangerous {what} {shown(name)!r}: {exc}; {after}"
            ) from None

    def _skipped(
        self,
        parts: tuple[str, ...],
        offered_from: int,
        remote: tuple[str, ...],
        hidden: bool,
        skips: _Skips,
        *,
        size: int = 0,
        folder: bool = False,
    ) -> bool:
        """Whether local ``parts`` (a file of ``size`` bytes, or a ``folder``) must be
        skipped, noted in ``skips`` under the remote name up to the part at fault: a part
        this system cannot hold, or a hidden part from ``offered_from`` on (what the server
        chose) unless ``hidden``."""
        if len("/".join(parts)) > paths.MAX_PATH_LENGTH:
            why = "a path over 4096 characters; this system cannot hold it"
            skips.add("/".join(remote) + ("/" if folder else ""), why, size, 0 if folder else 1)
            return True
        for depth, part in enumerate(parts):
            try:
                check_segment(part, show_hidden=True, system=self.system)
            except PathRefused as exc:
                why = f"{exc}; this system cannot hold that name"
            else:
                if depth < offered_from or hidden or part[0] != ".":
                    continue
                why = "a hidden name the server offered (--hidden fetches hidden names)"
            below = depth - len(parts) + len(remote)
            name = "/".join(remote[: below + 1]) + ("/" if folder or depth < len(parts) - 1 else "")
            skips.add(name, why, size, 0 if folder else 1)
            return True
        return False

    def get_file(
        self,
        remote: str,
        local: str,
        *,
        force: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> Result:
        """Fetch one remote file to the path ``local`` (resuming from ``local.part``)."""
        if os.path.exists(local) and not force:
            return Result(remote, local, os.path.getsize(local), 0, 0, "", skipped=True)
        held = self._ask(remote, local)
        return self._receive(self._file_frame(remote), remote, local, force, held, on_progress)

    def _stream_bytes(self, length: int) -> bytearray:
        """The ``length`` bytes of the stream just announced, whole, in memory (a FILES
        frame's data, which the caller bounds)."""
        buffer = bytearray(length)
        sink = _BufferSink(buffer)
        self._receive_stream(sink, _NO_HASH, length, None)
        self.reader.next_event()  # the end of the stream
        return buffer

    def _drop_file(self, frame: protocol.Frame) -> None:
        """Read and drop the data of a FILE frame (a skipped name), and its trailer."""
        self._receive_stream(_BufferSink(None), _NO_HASH, frame.body["length"], None)
        self.reader.next_event()
        if frame.body.get(self.agreed.digest_field) is None:
            self._frame()

    def _receive_stream(self, out, hasher, length: int, progress: Callable[[int], object]) -> int:
        """Copy exactly ``length`` stream bytes into ``out`` and ``hasher``; never reads past
        the stream, so the next frame stays on the socket."""
        try:
            return receive_stream(self.sock, self.reader, out, hasher, length, progress)
        except WriteFailed as exc:
            room = "free some space and " if exc.error.errno == errno.ENOSPC else ""
            raise write_error(
                exc, f"{exc.path} keeps what arrived: {room}run again to resume"
            ) from None
        except OSError as exc:
            raise self._network_error(exc, "receiving from") from None
        except StreamCut:
            raise TransferError(
                f"{self.peer} closed the connection in the middle of a transfer "
                "(run again to resume)"
            ) from None

    def put(
        self,
        local: str,
        remote_dir: str = "",
        *,
        hidden: bool = False,
        force: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """Send a local file, or a folder with everything in it, into ``remote_dir``;
        ``force`` replaces files that differ on the server.

        Every name is judged before the first byte goes out, by the rules the server
        announced: a name it could not hold, a hidden name inside the folder (unless
        ``hidden``, and the server takes hidden names), a name that is not UTF-8 or anything
        but a regular file is skipped, and comes back as a Result with ``refused``.
        ``on_total`` and ``on_progress`` are called as for :meth:`get`."""
        local = os.path.abspath(local)
        base = os.path.basename(local.rstrip(os.sep))
        into = self._remote(remote_dir)
        if not self.server_hidden and any(_hidden(part, self.server_system) for part in into):
            # The server would answer not_found (a refusal reveals nothing): say why instead.
            raise UsageError(
                f"cannot put into {shown(remote_dir)!r}: the server takes no hidden names (it "
                "needs files serve --show-hidden); name a folder without a leading dot"
            )
        skips = _Skips()
        plan: list[tuple[str, str]] = []
        is_folder = os.path.isdir(local)
        # What the user named is judged too, except for being hidden: naming it is asking.
        if self._unsendable(local, (base,), True, skips, folder=is_folder):
            pass
        elif not is_folder:
            plan.append((local, "/".join((*into, base))))
        else:
            for folder, dirs, files in os.walk(local):
                dirs.sort()
                above = tuple(os.path.relpath(folder, os.path.dirname(local)).split(os.sep))
                for name in list(dirs):
                    path = os.path.join(folder, name)
                    if self._unsendable(path, (*above, name), hidden, skips, folder=True):
                        dirs.remove(name)  # named once, with what it holds
                for name in sorted(files):
                    path = os.path.join(folder, name)
                    if not self._unsendable(path, (*above, name), hidden, skips):
                        plan.append((path, "/".join((*into, *above, name))))
        if on_total is not None:
            on_total(sum(os.path.getsize(path) for path, _ in plan))
        sent = [
            self.put_file(path, remote, force=force, on_progress=on_progress)
            for path, remote in plan
        ]
        return skips.results() + sent

    def _unsendable(
        self, path: str, parts: tuple[str, ...], hidden: bool, skips: _Skips, *, folder=False
    ) -> bool:
        """Whether the local ``path``, sent as ``parts`` (the folders above it were judged
        on the way down), is skipped, and noted in ``skips``: a name the server could not
        hold; a hidden name, without ``hidden`` or a server that takes hidden names; a file
        that is not a regular one; a link to a folder."""
        try:
            # By the server's own rules, its hidden rule included (``%2ename`` is hidden too).
            check_segment(
                parts[-1], show_hidden=hidden and self.server_hidden, system=self.server_system
            )
            why = ""
        except PathRefused as exc:
            if exc.reason is paths.Reason.HIDDEN and not hidden:
                why = "a hidden name (--hidden sends hidden names)"
            elif exc.reason is paths.Reason.HIDDEN:
                why = "the server takes no hidden names (it needs files serve --show-hidden)"
            elif exc.reason is paths.Reason.NOT_UTF8:
                why = "not valid UTF-8: names travel as UTF-8"
            else:
                why = f"{exc}; the server cannot hold that name"
        if not why:
            try:
                st = os.stat(path)
            except OSError:
                why = "a broken link"
            else:
                if folder and os.path.islink(path):
                    why = "a link to a folder (not followed)"
                elif not folder and not stat.S_ISREG(st.st_mode):
                    why = "not a regular file"
        if not why:
            return False
        shown_as = "/".join(parts) + ("/" if folder else "")
        if not folder:
            count, size = 1, _regular_size(path)
        else:  # what a skipped folder holds (not what a link to one leads to)
            count, size = (0, 0) if os.path.islink(path) else _count_files(path)
        skips.add(shown_as, why, size, count)
        return True

    def put_file(
        self,
        local: str,
        remote: str,
        *,
        force: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> Result:
        """Send one file to the remote name ``remote`` (resuming a partial upload);
        ``on_progress(remote, done, size)`` follows it. A file already there with the same
        digest is not sent again (its Result is ``skipped``); one that differs is an error,
        or replaced with ``force``."""
        self._remote(remote)
        sendable(local)  # opening a FIFO would wait for a writer, forever
        try:
            handle = open(local, "rb")  # noqa: SIM115
        except OSError as exc:
            raise explain(exc, f"opening {local}") from None
        with handle:
            st = os.fstat(handle.fileno())
            if not S_ISREG(st.st_mode):  # replaced since the look above
                raise _not_sendable(local, st)
            size = st.st_size
            algorithm, field = self.agreed.digest, self.agreed.digest_field
            digest = prefix_digest(handle, size, algorithm).hexdigest()
            extra = {field: digest, "mtime_ns": st.st_mtime_ns}
            if force:
                extra["force"] = True
            self.sending = remote  # from here on, the server may hold a partial copy
            answer = self.request("put", remote, size=size, **extra)
            if answer.body.get("already") is True:
                self.sending = None
                if answer.body.get(field) != digest:
                    raise TransferError(f"{self.peer} claimed {shown(remote)!r} is already there")
                return Result(remote, local, size, 0, 0, digest, True, algorithm=algorithm)
            offset = answer.body.get("offset")
            if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= size:
                raise TransferError(f"{self.peer} answered the upload with a bad offset")
            self._send(
                protocol.encode(protocol.FrameType.FILE, {"path": remote, "length": size - offset})
            )
            try:
                self._send_data(handle, local, remote, offset, size, on_progress)
            except TransferError:
                raise  # the server's own word (a full disk), which says what it kept
            except NetassistError as exc:
                raise NetassistError(
                    f"{exc}; the server keeps what arrived of {shown(remote)!r}: "
                    "run again to resume",
                    exc.exit_code,
                ) from None
        done = self._frame()
        self.sending = None
        if done.body.get(field) != digest:
            raise TransferError(f"{self.peer} did not confirm {shown(remote)!r}")
        return Result(remote, local, size, size - offset, offset, digest, algorithm=algorithm)

    def _send_data(
        self,
        handle,
        local: str,
        remote: str,
        position: int,
        size: int,
        on_progress: Callable[[str, int, int], None] | None,
    ) -> None:
        """Send ``handle`` from ``position`` to ``size`` in steps (each by sendfile), so that
        a progress bar moves and an answer the server sends before the end (its disk is
        full) stops the upload within a step, instead of after the whole file."""
        while position < size:
            try:
                sent = self.sock.sendfile(handle, position, min(PUT_STEP, size - position))
            except OSError as exc:
                raise self._network_error(exc, "sending to") from None
            if not sent:
                raise TransferError(f"{local} shrank while it was sent")
            position += sent
            if on_progress is not None:
                on_progress(remote, position, size)
            if position < size and self._answer_waiting():
                early = self._frame()  # an ERROR frame raises here
                raise TransferError(
                    f"{self.peer} answered {shown(remote)!r} before the data was all sent "
                    f"({early.type.name})"
                )

    def _answer_waiting(self) -> bool:
        """Whether the server has said something that has not been read yet."""
        if self.reader.buffered:
            return True
        pending = getattr(self.sock, "pending", None)  # TLS: bytes decrypted, not read
        if pending is not None and pending():
            return True
        return bool(select.select([self.sock], [], [], 0)[0])

    def _file_frame(self, remote: str) -> protocol.Frame:
        """The answer to a get of ``remote``, which must be a FILE frame."""
        frame = self._frame()
        if frame.type is not protocol.FrameType.FILE:
            raise TransferError(
                f"{self.peer} answered {shown(remote)!r} with something other than a file"
            )
        return frame

    def _ask(self, remote: str, local: str) -> int:
        """Request ``remote``, offering what ``local.part`` already holds; returns that size."""
        frame, held = self._request_for(remote, local)
        self._send(frame)
        return held

    def _request_for(self, remote: str, local: str, fresh: bool = False) -> tuple[bytes, int]:
        """The get request for ``remote`` and how much of it ``local.part`` already holds
        (nothing, without a look, when its folder is ``fresh`` from this job)."""
        part = local + PART
        held = 0 if fresh else _regular_size(part)
        prefix = _hash_file(part, self.agreed.digest) if held else None
        request = {"op": "get", "path": remote, "offset": held, self.agreed.prefix_field: prefix}
        return protocol.encode(protocol.FrameType.REQUEST, request), held

    def _folder(
        self,
        real_out: str,
        out_dir: str,
        parts: tuple[str, ...],
        made: dict[tuple[str, ...], tuple[str, bool]],
    ) -> tuple[str, bool]:
        """The local folder ``parts`` below ``out_dir`` and whether this job made it: each
        part is checked to lie inside ``-o`` (through links that exist there) before the
        next one is made. ``made`` remembers the folders met so far."""
        known = made.get(parts)
        if known is not None:
            return known
        parent, _ = self._folder(real_out, out_dir, parts[:-1], made)
        named = "/".join(parts)
        try:
            made[parts] = enter_folder(real_out, parent, parts[-1])
        except PathRefused as exc:
            if exc.reason is paths.Reason.OUTSIDE:
                why = f"{shown(named)!r} would be written outside {out_dir} (through a link)"
            else:
                what = "a broken link" if exc.reason is paths.Reason.MISSING else "not a folder"
                why = f"cannot make the folder {shown(named)!r}: in {out_dir} it is {what}"
            raise TransferError(f"{why}; refused, nothing made there", ExitCode.FILE) from None
        except OSError as exc:
            raise explain(exc, f"creating {os.path.join(parent, parts[-1])}") from None
        return made[parts]

    def _receive(
        self,
        frame: protocol.Frame,
        remote: str,
        local: str,
        force: bool,
        held: int,
        on_progress: Callable | None,
        announced: str | None = None,
    ) -> Result:
        """Receive the file ``frame`` announces into ``local`` (through ``local.part``,
        which holds ``held`` bytes already) and verify it. The frame must name ``announced``
        (a name in a folder stream) or else ``remote``."""
        body = frame.body
        if body.get("path") != (announced or remote):
            raise TransferError(
                f"{self.peer} sent {shown(str(body.get('path')))!r} when "
                f"{shown(announced or remote)!r} was asked for; refused"
            )
        algorithm = self.agreed.digest
        size, offset, length, digest = (
            body.get("size"),
            body.get("offset"),
            body.get("length"),
            body.get(self.agreed.digest_field),
        )
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for v in (size, offset, length)
        ):
            raise TransferError(f"{self.peer} announced a file without valid sizes")
        if offset + length != size or offset not in (0, held) or not isinstance(digest, str | None):
            raise TransferError(
                f"{self.peer} announced an inconsistent transfer for {shown(remote)!r}"
            )
        part = local + PART
        hasher = digests.new(algorithm)
        mtime_ns = body.get("mtime_ns")
        times = (mtime_ns, mtime_ns) if _valid_time(mtime_ns) else None
        report = on_progress and (lambda n: on_progress(remote, offset + n, size))
        # A non-zero offset is what the .part held when it was asked for (checked above).
        resuming = bool(offset)
        # A plain descriptor: for a small file, open() costs as much as the rest of it. A .part
        # that is a link was not made by us: it is refused rather than written through.
        flags = os.O_RDWR if resuming else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = open_no_follow(part, flags, _creation_mode(body.get("mode")))
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer, "too many levels of links"
                raise TransferError(
                    f"{part} is a symbolic link, which netassist never writes through (it "
                    "could lead the data anywhere): remove it and run again",
                    ExitCode.FILE,
                ) from None
            raise explain(exc, f"opening {part}") from None
        self.receiving = part
        try:
            if resuming:
                with open(fd, "rb", buffering=0, closefd=False) as held_part:
                    hasher = prefix_digest(held_part, offset, algorithm)
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            self._receive_stream(FileSink(fd, part), hasher, length, report)
            if times and os.utime in os.supports_fd:
                _set_times(fd, times)
                times = None
        finally:
            os.close(fd)
        if times:  # where a descriptor's times cannot be set (Windows), the path's are
            _set_times(part, times)
        self.reader.next_event()  # the end of the stream
        if digest is None:  # the server hashed while sending: the digest follows the data
            trailer = self._frame()
            digest = trailer.body.get(self.agreed.digest_field)
            if trailer.type is not protocol.FrameType.REPLY or not isinstance(digest, str):
                raise TransferError(f"{self.peer} sent no digest for {shown(remote)!r}")
        got = hasher.hexdigest()
        if got != digest:
            raise _damaged(remote, part, algorithm, got, digest)
        try:
            settle_part(part, local, force)
        except OSError as exc:
            raise explain(exc, f"renaming {part} to {local}") from None
        self.receiving = None
        return Result(remote, local, size, length, offset, got, algorithm=algorithm)


def _damaged(remote: str, part: str, algorithm: str, got: str, announced: str) -> TransferError:
    """The error of a file whose digest is not the one announced (kept as ``part``)."""
    name = "BLAKE3" if algorithm == digests.BLAKE3 else "SHA-256"
    return TransferError(
        f"{shown(remote)!r} arrived damaged or changed while it was sent "
        f"({name} {got[:12]}... instead of {shown(announced[:12])}...); kept as {part}, "
        "nothing of yours was touched",
        ExitCode.BAD_DATA,
    )


def _creation_mode(mode: object) -> int:
    """The permissions a received file is made with: the server's permission bits (no
    set-id or sticky bit), the umask applied as for any new file, and always the owner's
    read and write (a .part must take a resume); 0o666 when the server sent none."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return (mode & 0o777) | 0o600
    return 0o666


class _BufferSink:
    """What :func:`receive_stream` writes into: a bytearray filled in order (or, given
    None, nothing: the bytes are dropped)."""

    __slots__ = ("_at", "_buffer")

    def __init__(self, buffer: bytearray | None) -> None:
        self._buffer = buffer
        self._at = 0

    def write(self, data) -> None:
        """Copy ``data`` in after what came before."""
        if self._buffer is not None:
            end = self._at + len(data)
            self._buffer[self._at : end] = data
            self._at = end


class _NoHash:
    """A hasher that hashes nothing (the data is hashed per file, elsewhere)."""

    def update(self, data) -> None:
        """Ignore ``data``."""


_NO_HASH = _NoHash()


def _empty_or_missing(path: str) -> bool:
    """Whether nothing is at ``path`` yet, or an empty folder (not a link) is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not S_ISDIR(st.st_mode):
        return False
    with os.scandir(path) as entries:
        return next(entries, None) is None


def settle_part(part: str, local: str, force: bool) -> None:
    """Give the verified ``part`` its final name ``local``; an existing file there is
    replaced only with ``force``, even one that appeared during the transfer."""
    if force:
        os.replace(part, local)
        return
    try:
        if rename_no_replace(part, local):
            return
        # A hard link is a rename that refuses to replace, so nothing that appears
        # meanwhile is overwritten.
        os.link(part, local)
    except FileExistsError:
        pass
    except OSError:
        # No hard links on this file system (FAT, some network mounts): check, then rename.
        if not os.path.lexists(local):
            os.replace(part, local)
            return
    else:
        os.unlink(part)
        return
    raise TransferError(
        f"{local} exists; use --force to replace it (what arrived is kept as {part})",
        ExitCode.FILE,
    )


def network_error(exc: OSError, doing: str, timeout: float) -> NetassistError:
    """``exc``, met while ``doing`` something with a server, as one line; a timeout says
    how long was waited and how to wait longer."""
    if isinstance(exc, TimeoutError):
        return TimeoutExpired(
            f"{doing}: nothing moved for {timeout:g} s "
            "(the server may be stuck or gone; --timeout SECONDS waits longer)"
        )
    return explain(exc, doing)


def write_error(failed: WriteFailed, fate: str) -> NetassistError:
    """A local file that could not take what arrived (a full disk), as one line ending
    with ``fate``: what became of the file. Exit code 11 (8 for a permission)."""
    error = explain(failed.error, f"writing {failed.path}")
    denied = error.exit_code is ExitCode.PERMISSION_DENIED
    return NetassistError(
        f"{error}; {fate}", ExitCode.PERMISSION_DENIED if denied else ExitCode.FILE
    )


def _hidden(segment: str, system: str) -> bool:
    """Whether the hidden rule refuses ``segment`` (``%2ename`` is hidden too)."""
    try:
        check_segment(segment, system=system)
    except PathRefused as exc:
        return exc.reason is paths.Reason.HIDDEN
    return False


def sendable(path: str) -> os.stat_result:
    """The stat of ``path`` if it is a regular file (only those are sent: a device has no
    end and a FIFO waits for a writer); a usage error naming it otherwise."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise explain(exc, f"opening {path}") from None
    if not S_ISREG(st.st_mode):
        raise _not_sendable(path, st)
    return st


def _not_sendable(path: str, st: os.stat_result) -> NetassistError:
    return UsageError(
        f"{path} is {paths.kind_of(st.st_mode)}: only regular files and folders can be sent"
    )


def _valid_time(value: object) -> bool:
    """Whether ``value`` is a time in nanoseconds that a file system can be given."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 63


def _set_times(target: int | str, times: tuple[int, int]) -> None:
    """Give the received file the server's modification time, where its file system can
    hold it (the data is what was verified: a time it cannot take is left as it is)."""
    try:  # not contextlib.suppress: this runs once per file of a folder stream
        os.utime(target, ns=times)
    except (OSError, OverflowError, ValueError):
        pass


def _valid_entry(entry: object) -> bool:
    """Whether one entry of an ls answer has the fields the protocol promises."""
    if not isinstance(entry, dict):
        return False
    size = entry.get("size")
    return (
        isinstance(entry.get("name"), str)
        and entry.get("type") in ("file", "directory")
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and _valid_time(entry.get("mtime_ns"))
    )


def _regular_size(path: str) -> int:
    """The size of the regular file ``path``; 0 when it is missing or anything else (a link
    is not followed: a .part that is one was not left by us)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _count_files(folder: str) -> tuple[int, int]:
    """How many files a local folder holds, and their bytes (links are not followed)."""
    count = size = 0
    for where, _, files in os.walk(folder):
        count += len(files)
        size += sum(_regular_size(os.path.join(where, name)) for name in files)
    return count, size


def _hash_file(path: str, algorithm: str) -> str:
    with open(path, "rb") as handle:
        return prefix_digest(handle, os.fstat(handle.fileno()).st_size, algorithm).hexdigest()
