"""The transfer protocol's frames, fed bytes alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netassist.transfer import protocol as p


def events(data: bytes, chunk: int) -> list:
    reader = p.Reader()
    out = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        while (event := reader.next_event()) is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_frames_and_streams_split_anywhere(chunk):
    data = (
        p.encode(p.FrameType.HELLO, {"version": 1})
        + p.encode(p.FrameType.FILE, {"path": "中文.txt", "length": 5})
        + b"hello"
        + p.encode(p.FrameType.REPLY, {"ok": True})
    )
    got = events(data, chunk)
    assert got[0] == p.Frame(p.FrameType.HELLO, {"version": 1})
    assert got[1].body["path"] == "中文.txt"
    assert b"".join(e.data for e in got if isinstance(e, p.StreamData)) == b"hello"
    assert p.STREAM_END in got
    assert got[-1] == p.Frame(p.FrameType.REPLY, {"ok": True})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XX\x01\x00\x00\x00\x00\x02{}", "bad magic"),
        (b"NA\x09\x00\x00\x00\x00\x02{}", "unknown frame type"),
        (b"NA\x01\x01\x00\x00\x00\x02{}", "flags"),
        (b"NA\x01\x00\x7f\x00\x00\x00", "limit"),
        (b"NA\x01\x00\x00\x00\x00\x02[]", "JSON object"),
        (b"NA\x01\x00\x00\x00\x00\x02\xff\xff", "UTF-8 JSON"),
        (p.encode(p.FrameType.FILE, {"length": -1}), "valid length"),
        (p.encode(p.FrameType.FILE, {"length": True}), "valid length"),
    ],
)
def test_malformed_frames_are_refused(data, message):
    reader = p.Reader()
    reader.feed(data)
    with pytest.raises(p.ProtocolError, match=message):
        reader.next_event()


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_reader(data):
    reader = p.Reader()
    reader.feed(data)
    try:
        for _ in range(100):
            if reader.next_event() is None:
                break
    except p.ProtocolError:
        pass
