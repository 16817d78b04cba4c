"""Display: tagged streams are shown by whole lines, with a bound and a flush when idle."""

from __future__ import annotations

import io
import time

from netassist.wire.display import MAX_LINE, Display


def make() -> tuple[Display, io.BytesIO]:
    out = io.BytesIO()
    return Display("text", out=out, err=io.StringIO()), out


def test_pieces_of_a_line_are_shown_once_with_their_tag():
    display, out = make()
    display.stream(1, b"hel", "[a]")
    display.stream(2, b"wor", "[b]")
    assert out.getvalue() == b""
    display.stream(1, b"lo\nnext", "[a]")
    display.stream(2, b"ld\n", "[b]")
    assert out.getvalue() == b"[a] hello\n[b] world\n"
    display.end_stream(1)
    assert out.getvalue().endswith(b"[a] next\n")


def test_a_character_cut_at_the_end_is_flushed_with_the_line_and_tag():
    display, out = make()
    display.stream(1, "好".encode()[:2], "[a]")
    display.end_stream(1)
    assert out.getvalue() == b"[a] \\xe5\\xa5\n"


def test_idle_lines_are_flushed_and_the_next_due_time_given():
    display, out = make()
    assert display.flush_idle(0.5) is None
    display.stream(1, b"login: ", "[a]")
    delay = display.flush_idle(0.5)
    assert delay is not None and 0 < delay <= 0.5
    assert out.getvalue() == b""
    time.sleep(delay)
    assert display.flush_idle(0.5) is None
    assert out.getvalue() == b"[a] login: \n"


def test_a_line_without_end_goes_out_at_the_bound():
    display, out = make()
    display.stream(1, b"x" * (MAX_LINE + 10), "[a]")
    assert out.getvalue() == b"[a] " + b"x" * (MAX_LINE + 10) + b"\n"


def test_untagged_streams_flow_as_they_come():
    display, out = make()
    display.stream(1, b"hel")
    assert out.getvalue() == b"hel"
