"""The two well-kept streaming multipart parsers, side by side: which one netassist.web uses.

    python bench/multipart_bench.py [--repeats 7]

``python-multipart`` (Starlette's, callbacks) and ``multipart`` (Bottle's author's,
sans-IO ``PushMultipartParser`` yielding events) are each wrapped the same minimal way:
bodies fed in 64 KiB chunks (as ``wsgi.input`` reads hand them over), part names and file
names decoded, body bytes counted but not stored, so the figures are the parsers' own cost.
Bodies:

- ``upload 32 MiB``: one file part of random bytes (throughput, MB/s);
- ``crlf 8 MiB``: one file part made of ``\\r\\n`` and ``\\r\\n--`` pieces that look like the
  start of a delimiter (the shape behind python-multipart's CVE-2024-53981);
- ``1,000 fields``: 1,000 small text fields in one body (per-part cost, us per part);
- ``login form``: three short fields, ~400 bytes (per-body cost, us per body, parser set-up
  included).

Runs in this process; every figure is the median of ``--repeats`` runs. Both packages must be
installed in the interpreter that runs it (``pip install python-multipart multipart``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

CHUNK = 64 * 1024
BOUNDARY = "----netassistBenchBoundary7MA4YWxkTrZu0gW"


def body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body of (name, filename or None, data) parts."""
    out = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if filename is not None:
            head += "Content-Type: application/octet-stream\r\n"
        out += [head.encode(), b"\r\n", data, b"\r\n"]
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


def parse_python_multipart(data: bytes) -> tuple[int, int]:
    """(parts, body bytes) through python-multipart's MultipartParser."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts = size = 0
    header_field: list[bytes] = []
    header_value: list[bytes] = []
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        nonlocal parts
        parts += 1
        headers.clear()

    def on_header_field(buf: bytes, start: int, end: int) -> None:
        header_field.append(buf[start:end])

    def on_header_value(buf: bytes, start: int, end: int) -> None:
        header_value.append(buf[start:end])

    def on_header_end() -> None:
        headers[b"".join(header_field).lower()] = b"".join(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        options[b"name"].decode()
        options.get(b"filename", b"").decode()

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        nonlocal size
        size += end - start

    parser = MultipartParser(
        BOUNDARY,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    for offset in range(0, len(data), CHUNK):
        parser.write(data[offset : offset + CHUNK])
    parser.finalize()
    return parts, size


def parse_multipart(data: bytes) -> tuple[int, int]:
    """(parts, body bytes) through multipart's PushMultipartParser."""
    from multipart import PushMultipartParser

    parts = size = 0
    with PushMultipartParser(BOUNDARY, max_segment_count=1_000_000) as parser:
        for offset in range(0, len(data) + 1, CHUNK):
            for event in parser.parse(data[offset : offset + CHUNK]):
                if type(event) is bytes:
                    size += len(event)
                elif event is not None:
                    parts += 1
                    event.name  # noqa: B018 - decoded already, as the other's are
                    event.filename  # noqa: B018
    return parts, size


PARSERS: dict[str, Callable[[bytes], tuple[int, int]]] = {
    "python-multipart": parse_python_multipart,
    "multipart": parse_multipart,
}


def bodies() -> dict[str, tuple[bytes, int, str, tuple[int, int]]]:
    """name -> (body, units, unit name, the (parts, bytes) a parser must find) per case."""
    upload = os.urandom(32 << 20)
    piece = b"\r\n" * 7 + b"\r\n--" + BOUNDARY[:20].encode() + b"x"
    lookalikes = piece * ((8 << 20) // len(piece))
    fields = [(f"field{i}", None, f"value number {i}".encode()) for i in range(1000)]
    login = [
        ("username", None, "张三".encode()),
        ("password", None, b"s3cret!"),
        ("next", None, b"/"),
    ]
    return {
        "upload 32 MiB": (
            body([("file", "big.bin", upload)]),
            len(upload),
            "MB/s",
            (1, len(upload)),
        ),
        "crlf 8 MiB": (
            body([("file", "crlf.bin", lookalikes)]),
            len(lookalikes),
            "MB/s",
            (1, len(lookalikes)),
        ),
        "1,000 fields": (body(fields), 1000, "us/part", (1000, sum(len(f[2]) for f in fields))),
        "login form": (body(login), 1, "us/body", (3, sum(len(f[2]) for f in login))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import multipart
    import python_multipart

    print(f"python-multipart {python_multipart.__version__}, multipart {multipart.__version__}")
    print(f"Python {sys.version.split()[0]}; median of {args.repeats} runs\n")
    for case, (data, units, unit, expected) in bodies().items():
        loops = 2000 if unit == "us/body" else 1
        row = []
        for name, parse in PARSERS.items():
            found = parse(data)
            if found != expected:
                raise SystemExit(f"{name} found {found} in {case!r}, not {expected}")
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for _ in range(loops):
                    parse(data)
                times.append((time.perf_counter() - start) / loops)
            seconds = statistics.median(times)
            figure = units / seconds / 1e6 if unit == "MB/s" else seconds / units * 1e6
            row.append(f"{name} {figure:9,.1f} {unit}")
        print(f"{case:<14} " + "   ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
