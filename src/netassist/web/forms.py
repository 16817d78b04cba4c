"""Form bodies: ``application/x-www-form-urlencoded`` and streaming ``multipart/form-data``.

Multipart goes through ``multipart``'s ``PushMultipartParser`` (sans-IO: bytes in, events
out, limits of its own; chosen over ``python-multipart`` by measurement, see
bench/README.md). The body is read 64 KiB at a time and never held whole: a file part is
written to a :class:`tempfile.SpooledTemporaryFile`, which moves to disk past ``spill_size``
(and is deleted when closed, or when the request ends). Every limit answers 413, every
malformed body 400, each with a line saying which.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qsl

from netassist.web.errors import HTTPError
from netassist.web.structures import MultiDict

__all__ = ["FormLimits", "UploadFile", "parse_multipart", "parse_urlencoded"]

CHUNK = 64 * 1024
MAX_BOUNDARY = 200  # RFC 2046 allows 70; browsers send about 40


@dataclass(frozen=True)
class FormLimits:
    """How much of a form a request may send.

    ``max_parts``: fields and files together (urlencoded fields too); ``max_field``: bytes of
    one text field (and of a whole urlencoded body), held in memory; ``max_file``: bytes of
    one file (None: only the body's own limit); ``spill_size``: bytes of a file held in memory
    before it moves to a temporary file.
    """

    max_parts: int = 1000
    max_field: int = 1 << 20
    max_file: int | None = None
    spill_size: int = 512 * 1024


class UploadFile:
    """A file sent in a ``multipart/form-data`` form.

    ``filename`` is the name the client gave (never trust it as a path), ``content_type`` its
    type, ``size`` its length in bytes, ``file`` a binary file positioned at its start.
    """

    def __init__(
        self,
        name: str,
        filename: str,
        content_type: str | None,
        headers: list[tuple[str, str]],
        file: IO[bytes],
        size: int,
    ) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.headers = headers
        self.file = file
        self.size = size

    def __repr__(self) -> str:
        return f"<UploadFile {self.name}={self.filename!r} {self.size} bytes>"

    def read(self, size: int = -1) -> bytes:
        """Read from the file."""
        return self.file.read(size)

    def save(
        self, destination: str | os.PathLike[str] | IO[bytes], overwrite: bool = False
    ) -> None:
        """Copy the file to ``destination`` (a path or a binary file). An existing path is
        replaced only with ``overwrite=True``."""
        self.file.seek(0)
        if hasattr(destination, "write"):
            shutil.copyfileobj(self.file, destination)  # type: ignore[arg-type]
            return
        with open(destination, "wb" if overwrite else "xb") as out:  # type: ignore[arg-type]
            shutil.copyfileobj(self.file, out)

    def close(self) -> None:
        """Close (and so delete) the file."""
        self.file.close()


def parse_urlencoded(body: bytes, limits: FormLimits) -> MultiDict:
    """The fields of a urlencoded body (already limited to ``limits.max_field`` bytes)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=limits.max_parts,
        )
    except UnicodeDecodeError:
        raise HTTPError(400, "the form is not UTF-8") from None
    except ValueError:
        raise HTTPError(413, f"the form has more than {limits.max_parts} fields") from None
    return MultiDict(pairs)


def parse_multipart(
    read: Callable[[int], bytes], boundary: str | None, limits: FormLimits
) -> tuple[MultiDict, MultiDict]:
    """(fields, files) of a ``multipart/form-data`` body that ``read(n)`` returns."""
    from multipart import MultipartError, ParserLimitReached, PushMultipartParser

    if not boundary:
        raise HTTPError(400, "multipart/form-data without a boundary= parameter")
    if len(boundary) > MAX_BOUNDARY:
        raise HTTPError(400, f"the multipart boundary is longer than {MAX_BOUNDARY} characters")
    fields = MultiDict()
    files = MultiDict()
    opened: list[IO[bytes]] = []
    try:
        parser = PushMultipartParser(
            boundary,
            max_header_size=8192,
            max_header_count=8,
            max_segment_count=limits.max_parts,
        )
        part: _Part | None = None
        while True:
            chunk = read(CHUNK)
            for event in parser.parse(chunk):
                if event is None:
                    assert part is not None
                    part.finish(fields, files)
                    part = None
                elif isinstance(event, bytes | bytearray):
                    assert part is not None
                    part.write(event)
                else:
                    part = _Part(event, limits, opened)
            if not chunk:
                break
        if not parser.closed:
            parser.close()
    except ParserLimitReached as exc:
        _close_all(opened)
        raise HTTPError(413, _limit_message(str(exc), limits)) from None
    except MultipartError as exc:
        _close_all(opened)
        raise HTTPError(400, f"bad multipart body: {exc}") from None
    except BaseException:
        _close_all(opened)
        raise
    return fields, files


def _limit_message(reason: str, limits: FormLimits) -> str:
    if "segment count" in reason:
        return f"the form has more than {limits.max_parts} parts"
    if "header" in reason:
        return f"a multipart part's headers are too large ({reason})"
    return f"a multipart part is too large ({reason})"


def _close_all(opened: list[IO[bytes]]) -> None:
    for handle in opened:
        handle.close()


class _Part:
    """One part as it arrives: text kept in memory, a file spooled to disk."""

    def __init__(self, segment: Any, limits: FormLimits, opened: list[IO[bytes]]) -> None:
        self.segment = segment
        self.is_file = segment.filename is not None
        self.size = 0
        if self.is_file:
            self.limit = limits.max_file
            # Closed by the request's end (UploadFile.close), or at once on a failed parse.
            self.sink: Any = tempfile.SpooledTemporaryFile(max_size=limits.spill_size)  # noqa: SIM115
            opened.append(self.sink)
        else:
            self.limit = limits.max_field
            self.sink = bytearray()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            kind = "file" if self.is_file else "field"
            raise HTTPError(413, f"{kind} {self.segment.name!r} is larger than {self.limit} bytes")
        if self.is_file:
            self.sink.write(data)
        else:
            self.sink += data

    def finish(self, fields: MultiDict, files: MultiDict) -> None:
        segment = self.segment
        if self.is_file:
            self.sink.seek(0)
            files.add(
                segment.name,
                UploadFile(
                    segment.name,
                    segment.filename,
                    segment.content_type,
                    list(segment.headerlist),
                    self.sink,
                    self.size,
                ),
            )
            return
        charset = segment.charset or "utf-8"
        try:
            fields.add(segment.name, bytes(self.sink).decode(charset))
        except (UnicodeDecodeError, LookupError):
            raise HTTPError(400, f"field {segment.name!r} is not {charset} text") from None
