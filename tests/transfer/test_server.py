"""The file server's session over a real socket pair: pipelined answers share a send."""

from __future__ import annotations

import socket
import threading

from netassist.transfer import digest as digests
from netassist.transfer import protocol
from netassist.transfer.server import FileServer, Session


class CountingSocket:
    """A real socket whose sendall calls are counted."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sends = 0

    def sendall(self, data) -> None:
        self.sends += 1
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _events(data: bytes) -> list:
    reader = protocol.Reader()
    reader.feed(data)
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events


def test_answers_to_pipelined_small_gets_share_one_send(tmp_path):
    contents = {f"f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(5)}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    server = FileServer(str(tmp_path), "127.0.0.1", 0)
    ours, theirs = socket.socketpair()
    try:
        hello = protocol.client_hello(["blake3"])
        requests = [protocol.encode(protocol.FrameType.HELLO, hello)]
        requests += [
            protocol.encode(protocol.FrameType.REQUEST, {"op": "get", "path": n}) for n in contents
        ]
        theirs.sendall(b"".join(requests))
        theirs.shutdown(socket.SHUT_WR)
        counting = CountingSocket(ours)
        session = Session(server, counting)
        thread = threading.Thread(target=session.run)
        thread.start()
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
            if received.count(b'"digest"') > len(contents):  # the greeting names it too
                break
        thread.join(10)
    finally:
        ours.close()
        theirs.close()
        server.sock.close()
    events = _events(received)
    files = [
        e for e in events if isinstance(e, protocol.Frame) and e.type is protocol.FrameType.FILE
    ]
    data = b"".join(e.data for e in events if isinstance(e, protocol.StreamData))
    assert [f.body["path"] for f in files] == list(contents)  # in order
    for frame, content in zip(files, contents.values(), strict=True):
        assert frame.body["digest"] == digests.of("blake3", content)
    assert data == b"".join(contents.values())
    # The greeting, then all five answers at once (five more sends without holding them).
    assert counting.sends == 2


def test_requests_of_the_wrong_shape_are_refused_and_the_session_goes_on(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    server = FileServer(str(tmp_path), "127.0.0.1", 0)
    ours, theirs = socket.socketpair()
    try:
        requests = [protocol.encode(protocol.FrameType.HELLO, {"version": protocol.VERSION})]
        for op, path in ((["ls"], ""), ({"op": 1}, ""), ("rm", "a.txt"), ("ls", ["a.txt"])):
            requests.append(protocol.encode(protocol.FrameType.REQUEST, {"op": op, "path": path}))
        requests.append(protocol.encode(protocol.FrameType.REQUEST, {"op": "ls", "path": ""}))
        theirs.sendall(b"".join(requests))
        theirs.shutdown(socket.SHUT_WR)
        thread = threading.Thread(target=Session(server, ours).run)
        thread.start()
        thread.join(10)  # the answers fit in the socket buffers; the run ends at our EOF
        assert not thread.is_alive()
        ours.close()
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
    finally:
        ours.close()
        theirs.close()
        server.sock.close()
    frames = _events(received)
    codes = [f.body.get("code") for f in frames[1:5]]
    assert codes == ["bad_request"] * 4
    assert "path must be a string" in frames[4].body["message"]
    assert frames[5].body["entries"][0]["name"] == "a.txt"  # still served after all that
