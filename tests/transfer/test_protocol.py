"""The transfer protocol's frames, fed bytes alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netassist.transfer import protocol


def events(data: bytes, chunk: int) -> list:
    reader = protocol.Reader()
    out = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        while (event := reader.next_event()) is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_frames_and_streams_split_anywhere(chunk):
    data = (
        protocol.encode(protocol.FrameType.HELLO, {"version": 1})
        + protocol.encode(protocol.FrameType.FILE, {"path": "中文.txt", "length": 5})
        + b"hello"
        + protocol.encode(protocol.FrameType.REPLY, {"ok": True})
    )
    got = events(data, chunk)
    assert got[0] == protocol.Frame(protocol.FrameType.HELLO, {"version": 1})
    assert got[1].body["path"] == "中文.txt"
    assert b"".join(e.data for e in got if isinstance(e, protocol.StreamData)) == b"hello"
    assert protocol.STREAM_END in got
    assert got[-1] == protocol.Frame(protocol.FrameType.REPLY, {"ok": True})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XX\x01\x00\x00\x00\x00\x02{}", "bad magic"),
        (b"a.txt", "bad magic"),  # a tutorial client's name: refused before 8 bytes come
        (b"N", None),
        (b"NAME", "unknown frame type 77"),
        (b"NA\x09\x00\x00\x00\x00\x02{}", "unknown frame type"),
        (b"NA\x01\x01\x00\x00\x00\x02{}", "flags"),
        (b"NA\x01\x00\x7f\x00\x00\x00", "limit"),
        (b"NA\x01\x00\x00\x00\x00\x02[]", "JSON object"),
        (b"NA\x01\x00\x00\x00\x00\x02\xff\xff", "UTF-8 JSON"),
        (protocol.encode(protocol.FrameType.FILE, {"length": -1}), "valid length"),
        (protocol.encode(protocol.FrameType.FILE, {"length": True}), "valid length"),
    ],
)
def test_malformed_frames_are_refused(data, message):
    reader = protocol.Reader()
    reader.feed(data)
    if message is None:  # nothing wrong yet: more bytes are needed
        assert reader.next_event() is None
        return
    with pytest.raises(protocol.ProtocolError, match=message):
        reader.next_event()


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_reader(data):
    reader = protocol.Reader()
    reader.feed(data)
    try:
        for _ in range(100):
            if reader.next_event() is None:
                break
    except protocol.ProtocolError:
        pass


@pytest.mark.parametrize(
    ("hello", "digests", "agreed"),
    [
        ({"version": 1}, ("blake3", "sha256"), (1, "sha256")),  # a version-1 client
        (protocol.client_hello(["blake3", "sha256"]), ("blake3", "sha256"), (2, "blake3")),
        (protocol.client_hello(["sha256", "blake3"]), ("blake3", "sha256"), (2, "sha256")),
        (protocol.client_hello(["blake3", "sha256"]), ("sha256",), (2, "sha256")),  # no wheel
        ({"version": 1, "versions": [1, 2, 7]}, ("blake3", "sha256"), (2, "sha256")),
        ({"version": 2}, ("blake3",), None),  # SHA-256 by default, which it lacks
        ({"version": 3}, ("blake3", "sha256"), None),
        (protocol.client_hello(["md5"]), ("blake3", "sha256"), None),
    ],
)
def test_the_handshake_agrees_on_a_version_and_a_digest(hello, digests, agreed):
    if agreed is None:
        with pytest.raises(protocol.Disagreement):
            protocol.agree(hello, digests)
        return
    result = protocol.agree(hello, digests)
    assert (result.version, result.digest) == agreed
    assert result.digest_field == ("sha256" if result.version == 1 else "digest")
