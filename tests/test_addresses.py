"""The one address parser: every form it reads, and every shape it refuses with a clear line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netassist.addresses import LOOPBACK, Address, parse, parse_pair, parse_port
from netassist.errors import BadPortError, UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9090", Address(LOOPBACK, 9090)),
        (":9090", Address(LOOPBACK, 9090)),
        ("127.0.0.1:9090", Address("127.0.0.1", 9090)),
        ("0.0.0.0:80", Address("0.0.0.0", 80)),
        ("example.org:443", Address("example.org", 443)),
        ("[::1]:8000", Address("::1", 8000)),
        ("[::]:8000", Address("::", 8000)),
        ("[fe80::1%eth0]:22", Address("fe80::1%eth0", 22)),
        ("localhost:0", Address("localhost", 0)),
        ("unix:/tmp/app.sock", Address(path="/tmp/app.sock")),
        ("08080", Address(LOOPBACK, 8080)),
    ],
)
def test_every_form_reads_the_same_everywhere(text, expected):
    assert parse(text, listening=True, unix=True) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fileserver", Address("fileserver", 9090)),
        ("0.0.0.0", Address("0.0.0.0", 9090)),
        ("[::1]", Address("::1", 9090)),
        ("::1", Address("::1", 9090)),
        ("2001:db8::5", Address("2001:db8::5", 9090)),
        ("fileserver:7000", Address("fileserver", 7000)),
    ],
)
def test_a_lone_host_takes_the_default_port(text, expected):
    assert parse(text, default_port=9090) == expected


@pytest.mark.parametrize(
    "text",
    ["9_0_9_0", "+9", "-9", " 9090", "9090 ", "９０９０", "0x50", "²", "9.0", "", "65536", "http"],
)
def test_ports_are_ascii_digits_in_range(text):
    with pytest.raises(BadPortError) as caught:
        parse_port(text)
    assert "give a number from 1 to 65535" in str(caught.value)


def test_port_zero_only_for_listeners():
    assert parse_port("0", listening=True) == 0
    with pytest.raises(BadPortError, match="from 1 to 65535"):
        parse_port("0")
    with pytest.raises(BadPortError):
        parse("127.0.0.1:0")


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("host:http", BadPortError, "bad port 'http'"),
        ("h:70000", BadPortError, "bad port 70000"),
        ("h:", BadPortError, "bad port ''"),
        ("unix:", UsageError, "unix:/tmp/app.sock"),
        ("[::1]8000", UsageError, "[::1]:8000"),
        ("[::1", UsageError, "close the bracket"),
        ("::1:8000", UsageError, "in brackets"),
        ("1.2.3.4:5:6", UsageError, "in brackets"),
        ("[example.org]:80", UsageError, "in brackets"),
        ("my host:80", UsageError, "no spaces"),
        ("a/b:80", UsageError, "no spaces, slashes"),
        ("example.org", UsageError, "has no port"),
        ("", UsageError, "empty address"),
    ],
)
def test_bad_addresses_say_what_to_write(text, error, says):
    with pytest.raises(error) as caught:
        parse(text, unix=True)
    assert says in str(caught.value)


def test_unix_sockets_only_where_a_command_takes_them():
    with pytest.raises(UsageError, match="Unix socket cannot be used here"):
        parse("unix:/tmp/x.sock", default_port=9090)


@pytest.mark.parametrize(
    ("words", "expected", "rest"),
    [
        (["127.0.0.1", "9090"], Address("127.0.0.1", 9090), []),
        (["127.0.0.1:9090"], Address("127.0.0.1", 9090), []),
        (["127.0.0.1:9090", "下午好"], Address("127.0.0.1", 9090), ["下午好"]),
        (["127.0.0.1", "9090", "下午好"], Address("127.0.0.1", 9090), ["下午好"]),
        (["[::1]", "9090"], Address("::1", 9090), []),
        (["::1", "9090"], Address("::1", 9090), []),
        (["[::1]:9090", "hi"], Address("::1", 9090), ["hi"]),
        (["9090"], Address(LOOPBACK, 9090), []),
        ([":9090", "hi"], Address(LOOPBACK, 9090), ["hi"]),
    ],
)
def test_host_and_port_as_one_word_or_two(words, expected, rest):
    assert parse_pair(words) == (expected, rest)


def test_a_pair_needs_a_port():
    with pytest.raises(UsageError, match="has no port"):
        parse_pair(["example.org"])
    with pytest.raises(BadPortError, match="bad port 'hello'"):
        parse_pair(["example.org", "hello"])
    assert parse_pair(["example.org"], default_port=9090) == (Address("example.org", 9090), [])


def test_addresses_print_as_they_are_read():
    for text in ("127.0.0.1:9090", "[::1]:8000", "unix:/run/app.sock", "example.org:80"):
        assert str(parse(text, unix=True)) == text


@given(st.text(max_size=30))
def test_any_text_is_read_or_refused_with_our_error(text):
    try:
        address = parse(text, default_port=9090, listening=True, unix=True)
    except (BadPortError, UsageError) as exc:
        assert "\n" not in str(exc)
    else:
        assert address.path is not None or 0 <= address.port <= 65535
