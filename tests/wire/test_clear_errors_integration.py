"""Input that used to end in "internal error ... please report it": now one clear line each,
with the exit code the README gives (2 bad arguments, 4 bad data)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from netassist.errors import ExitCode
from tests.conftest import run_netassist

pytestmark = pytest.mark.integration


def one_line(result) -> str:
    """The one stderr line of a failed run (no traceback, no "internal error")."""
    err = result.stderr.decode()
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return err


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "undefined", "idna"])
def test_a_codec_that_is_not_a_text_encoding_is_a_usage_error(encoding):
    result = run_netassist("udp", "send", "127.0.0.1", "9", "x", "--encoding", encoding)
    assert f"'{encoding}' is not a text encoding netassist can use" in one_line(result)
    assert result.returncode == ExitCode.USAGE


@pytest.mark.parametrize(
    "command",
    [
        ["udp", "listen", "0", "--timeout", "1"],
        ["tcp", "listen", "0", "--timeout", "1"],
        ["tcp", "connect", "127.0.0.1", "9"],
    ],
)
def test_every_command_refuses_rot13_the_same_way(command):
    result = run_netassist(*command, "--encoding", "rot13")
    assert "'rot13' is not a text encoding" in one_line(result)
    assert result.returncode == ExitCode.USAGE


def test_replay_refuses_rot13_for_showing_answers(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("")
    result = run_netassist("replay", str(log), "--to", "127.0.0.1", "9", "--encoding", "rot13")
    assert "'rot13' is not a text encoding" in one_line(result)
    assert result.returncode == ExitCode.USAGE


def _record(**changes) -> str:
    record = {"ts": 1.0, "proto": "tcp", "event": "data", "direction": "out", "hex": "41"}
    record.update(changes)
    return json.dumps(record)


@pytest.mark.parametrize(
    "content",
    [
        b"[1,2]\n",
        b'"just a string"\n',
        b"null\n",
        os.urandom(3000).replace(b"\n", b"") + b"\n\x00\xff\xfe",  # a binary file
        b"\x89PNG\r\n\x1a\n" + os.urandom(200),
        _record(ts=1e400).encode() + b"\n",  # JSON's 1e400 is infinity
        _record(ts=1e300).encode() + b"\n",
        _record(conn=1e400).encode() + b"\n",
        _record(hex=5).encode() + b"\n",
    ],
    ids=["list", "string", "null", "binary", "png", "inf-time", "huge-time", "inf-conn", "hex"],
)
def test_replay_of_something_that_is_not_a_log(tmp_path, content):
    log = tmp_path / "not-a-log.jsonl"
    log.write_bytes(content)
    result = run_netassist("replay", str(log), "--to", "127.0.0.1", "9", "--timing")
    assert "not-a-log.jsonl:1: not a netassist log record" in one_line(result)
    assert result.returncode == ExitCode.BAD_DATA


def test_replay_reads_a_huge_line_no_further_than_a_record_can_be(tmp_path):
    log = tmp_path / "huge.jsonl"
    with open(log, "wb") as handle:
        for _ in range(64):
            handle.write(b"7" * (1 << 20))  # 64 MiB and no newline
    result = run_netassist("replay", str(log), "--to", "127.0.0.1", "9")
    assert "huge.jsonl:1: not a netassist log record" in one_line(result)
    assert result.returncode == ExitCode.BAD_DATA


@pytest.mark.parametrize(
    "command",
    [
        ["udp", "send", "127.0.0.1", "9", "x", "--repeat", "2", "--interval", "inf"],
        ["udp", "send", "127.0.0.1", "9", "x", "--wait-reply", "1e10"],
        ["udp", "listen", "0", "--timeout", "1e300"],
        ["tcp", "connect", "127.0.0.1", "9", "--connect-timeout", "1e300"],
        ["tcp", "listen", "0", "--timeout", "inf"],
    ],
)
def test_waits_longer_than_the_system_takes_are_usage_errors(command):
    result = run_netassist(*command)
    assert "is too long: at most 1,000,000 s" in one_line(result)
    assert result.returncode == ExitCode.USAGE


def test_udp_listen_in_utf16_shows_an_odd_datagram_and_keeps_listening(netassist):
    listener = netassist(
        "udp", "listen", "0", "--encoding", "utf-16", "--count", "2", "--timeout", "20"
    )
    port = listener.port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"abc", ("127.0.0.1", port))  # half a character too many
        sender.sendto("好".encode("utf-16"), ("127.0.0.1", port))
    code, out, err = listener.finish()
    assert code == 0, err
    lines = out.decode().splitlines()
    assert lines[0].endswith("(3 bytes): \u6261\\x63")
    assert lines[1].endswith("(4 bytes): 好")


def test_a_client_sending_bytes_ebcdic_cannot_decode_does_not_stop_the_chat(netassist):
    # cp424 (EBCDIC Hebrew) has no character for byte 0x77: surrogateescape failed on it.
    listener = netassist(
        "tcp", "listen", "0", "--broadcast", "--encoding", "cp424", "-q", "--timeout", "30"
    )
    port = listener.port()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as alice,
        socket.create_connection(("127.0.0.1", port), timeout=10) as bob,
    ):
        for sock in (alice, bob):
            assert sock.recv(4096)  # the welcome
        alice.sendall(b"\x77\x81\x25")  # 0x25 is EBCDIC's line feed, 0x77 undecodable
        alice.sendall(b"\n")
        seen = b""
        while "\\x77" not in seen.decode("cp424"):  # relayed in the chat's encoding
            chunk = bob.recv(4096)
            assert chunk, seen
            seen += chunk
    assert listener.popen.poll() is None  # still serving
