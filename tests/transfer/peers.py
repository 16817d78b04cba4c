"""Peers for the transfer tests that speak the protocol but lie, stall or hold on."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

from netassist.transfer import protocol
from tests.conftest import need


class HostileServer:
    """A test double speaking the protocol, answering every get with what ``reply`` says."""

    def __init__(self, reply) -> None:
        self.reply = reply
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
                    if event.type is protocol.FrameType.HELLO:
                        conn.sendall(protocol.encode(protocol.FrameType.HELLO, {"version": 1}))
                    else:
                        conn.sendall(self.reply(event.body))


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
