"""Peers for the transfer tests: servers that speak the protocol (docs/transfer-protocol.md)
but lie, and a certificate for TLS ones."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from netassist.transfer import protocol
from tests.conftest import need


class HostileServer:
    """A server speaking the protocol to one client, answering every request with what
    ``reply(body)`` returns (bytes: one or more frames, raw data included)."""

    def __init__(self, reply: Callable[[dict], bytes], hello: dict | None = None) -> None:
        self.reply = reply
        self.hello = {"version": 1, **(hello or {})}
        self.requests: list[dict] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.sock.close()  # one client per double
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


def file_frame(path: str, data: bytes, digest: str | None = None) -> bytes:
    """A FILE frame for ``path`` and its data, with a correct digest unless one is given."""
    header = {
        "path": path,
        "size": len(data),
        "offset": 0,
        "length": len(data),
        "sha256": digest or hashlib.sha256(data).hexdigest(),
        "mtime_ns": 0,
    }
    return protocol.encode(protocol.FrameType.FILE, header) + data


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
