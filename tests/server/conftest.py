"""Fixtures the server's tests share."""

from __future__ import annotations

import socket

import pytest


class Rendezvous:
    """Where /hold apps report that they run, and wait until the test releases them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []

    def arrived(self) -> str:
        """Wait for the next app to report; the name of the thread it runs on."""
        peer, _ = self.listener.accept()
        peer.settimeout(10)
        self.held.append(peer)
        return peer.makefile("rb").readline().decode().strip()

    def release(self) -> None:
        for peer in self.held:
            peer.sendall(b"x")
            peer.close()
        self.held.clear()

    def close(self) -> None:
        self.release()
        self.listener.close()


@pytest.fixture
def rendezvous():
    """Apps at /hold?PORT report here that they run, and wait until the test says go."""
    place = Rendezvous()
    yield place
    place.close()
