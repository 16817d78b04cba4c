"""Peers for the transfer tests: servers that speak the protocol (docs/transfer-protocol.md)
but lie, in version 2 (BLAKE3, folders streamed) or version 1 (SHA-256, a listing then a get
per file), a relay that damages what it carries, and a certificate for TLS ones."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from netassist.transfer import digest as digests
from netassist.transfer import protocol
from tests.conftest import need

#: The digest each version's doubles use.
ALGORITHM = {1: "sha256", 2: "blake3"}


def _serve_one(serve: Callable[[socket.socket], None]) -> int:
    """A loopback port whose first connection (the only one) is given to ``serve`` on a
    thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept() -> None:
        conn, _ = listener.accept()
        listener.close()
        serve(conn)

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


class HostileServer:
    """A server speaking the protocol to one client, answering every request with what
    ``reply(body)`` returns (bytes: one or more frames, raw data included)."""

    def __init__(
        self,
        reply: Callable[[dict], bytes],
        hello: dict | None = None,
        version: int = 2,
        hang_up: Callable[[dict], bool] | None = None,
    ) -> None:
        self.reply = reply
        self.hang_up = hang_up  # whether to close the connection after answering a request
        greeting = {"version": version} if version == 1 else {"version": 2, "digest": "blake3"}
        self.hello = {**greeting, **(hello or {})}
        self.requests: list[dict] = []
        self.port = _serve_one(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        reader = protocol.Reader()
        with conn, contextlib.suppress(OSError):  # the refusing client may reset it
            while data := conn.recv(65536):
                reader.feed(data)
                while (event := reader.next_event()) is not None:
                    if not isinstance(event, protocol.Frame):
                        continue  # the data of an upload
                    if event.type is protocol.FrameType.HELLO:
                        conn.sendall(protocol.encode(protocol.FrameType.HELLO, self.hello))
                    elif event.type is protocol.FrameType.REQUEST:
                        self.requests.append(event.body)
                        conn.sendall(self.reply(event.body))
                        if self.hang_up is not None and self.hang_up(event.body):
                            return


def file_frame(path: str, data: bytes, digest: str | None = None, version: int = 2) -> bytes:
    """A FILE frame for ``path`` and its data, with a correct digest unless one is given."""
    field = "sha256" if version == 1 else "digest"
    header = {
        "path": path,
        "size": len(data),
        "offset": 0,
        "length": len(data),
        field: digest or digests.of(ALGORITHM[version], data),
        "mtime_ns": 0,
    }
    return protocol.encode(protocol.FrameType.FILE, header) + data


def files_frame(files: dict[str, bytes], folders=(), digest: str | None = None) -> bytes:
    """A version-2 FILES frame: ``folders``, then ``files`` (name: bytes) with their data,
    each with a correct BLAKE3 unless ``digest`` is given."""
    entries: list[dict] = [{"path": name, "type": "directory"} for name in folders]
    entries += [
        {
            "path": name,
            "type": "file",
            "size": len(data),
            "mode": 0o644,
            "mtime_ns": 0,
            "digest": digest or digests.of("blake3", data),
        }
        for name, data in files.items()
    ]
    data = b"".join(files.values())
    body = {"entries": entries, "length": len(data)}
    return protocol.encode(protocol.FrameType.FILES, body) + data


def folder_reply(body: dict, files: dict[str, bytes], folders=()) -> bytes:
    """The answer to a get of a folder holding ``files`` (name: bytes) and ``folders``: a
    stream (version 2, when asked for) or a listing (the client then gets each file)."""
    if body.get("stream"):
        end = {"path": body["path"], "type": "directory", "files": len(files)}
        return files_frame(files, folders) + protocol.encode(protocol.FrameType.REPLY, end)
    listing = [{"path": name, "size": len(data)} for name, data in files.items()]
    reply = {"files": listing, "folders": list(folders)}
    return protocol.encode(protocol.FrameType.REPLY, reply)


class DamagingRelay:
    """A relay on loopback between a client and ``port``: it passes everything on, except
    that the byte at ``position`` of what the server sends is flipped (a hostile network)."""

    def __init__(self, port: int, position: int) -> None:
        self.target = port
        self.position = position
        self.damaged = False
        self.port = _serve_one(self._serve)

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
        self._pipe(server, client, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, damage: bool) -> None:
        seen = 0
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if damage and seen <= self.position < seen + len(data):
                    at = self.position - seen
                    data = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
                    self.damaged = True
                seen += len(data)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def ls_file(body: dict) -> bytes:
    """The answer to an ls of a file."""
    return protocol.encode(
        protocol.FrameType.REPLY, {"path": body["path"], "type": "file", "entries": []}
    )


def ls_dir(body: dict) -> bytes:
    """The answer to an ls of a folder."""
    return protocol.encode(
        protocol.FrameType.REPLY, {"path": body["path"], "type": "directory", "entries": []}
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, made by openssl
    in ``folder`` (the test is skipped without openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            need("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
