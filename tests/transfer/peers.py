"""Peers for the transfer tests that speak the protocol but lie, stall or hold on."""

from __future__ import annotations

import contextlib
import socket
import threading

from netassist.transfer import protocol


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
