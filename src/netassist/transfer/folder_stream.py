"""Receiving a folder as a stream (protocol version 2): the server sends every file back to
back after one request, and the client writes each as it arrives.

Small files come many to a FILES frame: a JSON list of entries (name, size, mode, mtime,
digest), then their bytes back to back. Each one is hashed from memory, written to
``NAME.part`` and renamed only when its digest matches; a large file comes as the FILE frame
of a single get and is received as one. Names are judged as the file-by-file download judges
them (:meth:`Client._offered`, :meth:`Client._skipped`: ``netassist.paths`` decides): a name
built to escape ends the job, a name this system cannot hold or a hidden name nobody asked for
is skipped and named, and folders are made one checked component at a time inside ``-o``.

The client uses it where nothing is there yet (see :meth:`Client.get`), so there is nothing
to skip or resume; a job cut short leaves its ``.part`` files and verified files, and running
it again goes file by file, resuming. It also uses it when the server refuses a folder's
listing as too large (over 100,000 files, or over a frame): files already there are kept
without --force, and a ``.part`` starts over.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from netassist import paths
from netassist.errors import explain
from netassist.paths import PathRefused, check_segment
from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.client import (
    MAX_BATCH,
    PART,
    Client,
    Result,
    TransferError,
    _creation_mode,
    _damaged,
    _set_times,
    _Skips,
    _valid_time,
    settle_part,
    shown,
    write_error,
)
from netassist.transfer.stream import FileSink, WriteFailed, open_flags, open_no_follow

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


class FolderStream:
    """One folder arriving as a stream into ``out_dir`` (``real_out`` its real path):
    ``wanted`` is the remote folder's segments, ``base`` the local folder's under ``out_dir``,
    ``folders`` the folders met so far (see :meth:`Client._folder`)."""

    def __init__(
        self,
        client: Client,
        wanted: tuple[str, ...],
        base: tuple[str, ...],
        out_dir: str,
        real_out: str,
        folders: dict,
        *,
        force: bool,
        hidden: bool,
    ) -> None:
        self.client = client
        self.wanted = wanted
        self.base = base
        self.out_dir = out_dir
        self.real_out = real_out
        self.folders = folders
        self.force = force
        self.hidden = hidden
        self.results: list[Result] = []
        self.skips = _Skips()
        self.algorithm = client.agreed.digest
        self._digest = digests.function(self.algorithm)
        self.utime_fd = os.utime in os.supports_fd
        # A .part's open flags, found once per stream rather than once per file; None where
        # the system has no O_NOFOLLOW (open_no_follow then checks by other means).
        nofollow = getattr(os, "O_NOFOLLOW", None)
        self._part_flags = None if nofollow is None else open_flags(_CREATE) | nofollow
        # Folders whose names were judged and made: remote folder (as the stream names it)
        # -> (local folder, made by this job, remote name of the folder with a slash).
        self._folders_met: dict[str, tuple[str, bool, str]] = {}

    def run(
        self,
        path: str,
        on_progress: Callable[[str, int, int], None] | None,
        on_total: Callable[[int], None] | None,
    ) -> list[Result]:
        """Ask for the folder ``path`` and take everything until the server's closing REPLY;
        one Result per file written, skipped or refused."""
        client = self.client
        client._send(
            protocol.encode(protocol.FrameType.REQUEST, {"op": "get", "path": path, "stream": True})
        )
        while True:
            frame = client._frame()
            if frame.type is protocol.FrameType.FILES:
                self._batch(frame.body, on_progress, on_total)
            elif frame.type is protocol.FrameType.FILE:
                self._large(frame, on_progress, on_total)
            elif frame.type is protocol.FrameType.REPLY:
                client._note_left_out(frame.body)
                return self.skips.results() + self.results + self._denied(frame.body)
            else:
                raise TransferError(
                    f"{client.peer} broke the protocol: a {frame.type.name} frame in a folder"
                )

    def _denied(self, body: dict) -> list[Result]:
        """The files the closing REPLY says the server could not read (``refused``: each
        its path and reason), one skipped Result each; the names judged as any offered."""
        denied = body.get("refused")
        if not isinstance(denied, list):
            return []
        after = f"{len(self.results)} file(s) before it arrived verified and were kept"
        results = []
        for entry in denied:
            reason = entry.get("reason") if isinstance(entry, dict) else None
            if not isinstance(reason, str):
                raise TransferError(f"{self.client.peer} broke the protocol: a bad 'refused'")
            segments = self.client._offered(entry.get("path"), "file", after)
            remote = "/".join((*self.wanted, *segments))
            results.append(Result(shown(remote), "", 0, 0, 0, "", True, shown(reason)))
        return results

    def _place(self, name: object, folder: bool, size: int) -> tuple[str, str, bool] | None:
        """Where the streamed ``name`` goes: its remote name, its local path and whether its
        folder was made by this job; None for a folder (made now) or a skipped name."""
        if not folder and isinstance(name, str):
            # In a folder met before, only the last name is new: judged by the strictest
            # rules that apply (this system's, hidden names as asked), it needs no more.
            # Anything it fails goes the whole way below, for the right verdict and words.
            head, _, leaf = name.rpartition("/")
            known = self._folders_met.get(head)
            if known is not None and len(known[2]) + len(leaf) <= paths.MAX_PATH_LENGTH:
                try:
                    check_segment(leaf, show_hidden=self.hidden, system=self.client.system)
                except PathRefused:
                    pass
                else:
                    where, fresh, remote_head = known
                    return remote_head + leaf, os.path.join(where, leaf), fresh
        client = self.client
        after = f"{len(self.results)} file(s) before it arrived verified and were kept"
        segments = client._offered(name, "folder" if folder else "file", after)
        parts, named = (*self.base, *segments), (*self.wanted, *segments)
        if client._skipped(
            parts, len(self.base), named, self.hidden, self.skips, size=size, folder=folder
        ):
            return None
        if folder:
            client._folder(self.real_out, self.out_dir, parts, self.folders)
            return None
        where, fresh = client._folder(self.real_out, self.out_dir, parts[:-1], self.folders)
        if isinstance(name, str):
            head = name.rpartition("/")[0]
            self._folders_met[head] = (where, fresh, "/".join(named[:-1]) + "/")
        return "/".join(named), os.path.join(where, parts[-1]), fresh

    def _kept(self, remote: str, local: str, fresh: bool) -> bool:
        """Whether a file of the user's is already at ``local`` (kept without --force; a
        Result says so)."""
        if fresh or self.force or not os.path.lexists(local):
            return False
        self.results.append(Result(remote, local, os.path.getsize(local), 0, 0, "", skipped=True))
        return True

    def _batch(
        self,
        body: dict,
        on_progress: Callable[[str, int, int], None] | None,
        on_total: Callable[[int], None] | None,
    ) -> None:
        """A FILES frame: check its entries against its length, read its data, then place,
        verify and write each file."""
        client = self.client
        entries, length = body.get("entries"), body["length"]
        if not isinstance(entries, list) or length > MAX_BATCH:
            raise TransferError(f"{client.peer} broke the protocol: a FILES frame out of shape")
        total = 0
        for entry in entries:
            if not isinstance(entry, dict):
                raise TransferError(
                    f"{client.peer} broke the protocol: a FILES entry not an object"
                )
            if entry.get("type") == "file":
                size = entry.get("size")
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    raise TransferError(f"{client.peer} announced a file without a valid size")
                total += size
            elif entry.get("type") != "directory":
                raise TransferError(f"{client.peer} broke the protocol: a FILES entry's type")
        if total != length:
            raise TransferError(f"{client.peer} broke the protocol: FILES sizes and length differ")
        data = memoryview(client._stream_bytes(length))
        if on_total is not None:
            on_total(length)
        at = 0
        for entry in entries:
            if entry["type"] == "directory":
                self._place(entry.get("path"), True, 0)
                continue
            size = entry["size"]
            chunk = data[at : at + size]
            at += size
            placed = self._place(entry.get("path"), False, size)
            if placed is None or self._kept(*placed):
                continue
            remote, local, _ = placed
            self.results.append(self._write(remote, local, chunk, entry))
            if on_progress is not None:
                on_progress(remote, size, size)

    def _write(self, remote: str, local: str, data: memoryview, entry: dict) -> Result:
        """Write one small file that arrived whole: to ``local.part``, renamed to ``local``
        once its digest is the one announced (a mismatch keeps the .part and ends the job)."""
        announced = entry.get("digest")
        if not isinstance(announced, str):
            raise TransferError(f"{self.client.peer} sent no digest for {shown(remote)!r}")
        got = self._digest(data)
        part = local + PART
        mode = _creation_mode(entry.get("mode"))
        try:
            if self._part_flags is None:
                fd = open_no_follow(part, _CREATE, mode)
            else:
                fd = os.open(part, self._part_flags, mode)
        except OSError as exc:
            raise explain(exc, f"opening {part}") from None
        mtime_ns = entry.get("mtime_ns")
        times = (mtime_ns, mtime_ns) if _valid_time(mtime_ns) else None
        try:
            written = os.write(fd, data)  # one call takes a small file whole, as a rule
            if written != len(data):
                FileSink(fd, part).write(data[written:])
            if times and self.utime_fd:
                _set_times(fd, times)
                times = None
        except (OSError, WriteFailed) as exc:
            failed = exc if isinstance(exc, WriteFailed) else WriteFailed(part, exc)
            raise write_error(failed, f"{part} keeps what was written of it") from None
        finally:
            os.close(fd)
        if times:
            _set_times(part, times)
        if got != announced:
            raise _damaged(remote, part, self.algorithm, got, announced)
        try:
            settle_part(part, local, self.force)
        except OSError as exc:
            raise explain(exc, f"renaming {part} to {local}") from None
        size = len(data)
        return Result(remote, local, size, size, 0, got, algorithm=self.algorithm)

    def _large(
        self,
        frame: protocol.Frame,
        on_progress: Callable[[str, int, int], None] | None,
        on_total: Callable[[int], None] | None,
    ) -> None:
        """A FILE frame inside the stream: one large file, received as a get receives it
        (or read and dropped when its name is skipped)."""
        client = self.client
        name, size = frame.body.get("path"), frame.body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TransferError(f"{client.peer} announced a file without valid sizes")
        if on_total is not None:
            on_total(size)
        placed = self._place(name, False, size)
        if placed is None or self._kept(*placed):
            client._drop_file(frame)
            return
        remote, local, _ = placed
        self.results.append(
            client._receive(frame, remote, local, self.force, 0, on_progress, announced=name)
        )
