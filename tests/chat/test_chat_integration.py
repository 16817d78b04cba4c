"""``netassist chat send``, ``listen`` and ``history`` as processes on loopback: delivery and
its exit codes, the log, a restarted peer, and hostile datagrams."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from netassist.chat import protocol
from netassist.errors import ExitCode
from tests.conftest import NETASSIST, free_port, run_netassist, wait_bound

pytestmark = pytest.mark.integration
WITHOUT_POSIX = [sys.executable, str(Path(__file__).parents[1] / "without_posix.py")]


def records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def listen(netassist, name: str, *args: str, command=None):
    proc = (command or netassist)(*(["chat", "listen", "--name", name, "--timeout", "120", *args]))
    port = proc.port()
    return proc, f"127.0.0.1:{port}"


def stop(proc) -> tuple[int, bytes, str]:
    proc.popen.send_signal(signal.SIGINT)
    return proc.finish(30)


def test_send_is_delivered_and_listen_prints_one_json_line(netassist, tmp_path):
    bo, where = listen(netassist, "bo", "--log", str(tmp_path / "bo.jsonl"))
    result = run_netassist(
        "chat",
        "send",
        "--name",
        "ana",
        "--peer",
        where,
        "下午好\nline two",
        "--log",
        str(tmp_path / "ana.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    bo.expect_stderr(r"ana left \(quit\)")
    code, out, err = stop(bo)
    assert code == 0, err
    (record,) = records(out)
    assert record["sender"] == "ana" and record["text"] == "下午好\nline two"
    assert {"time", "id", "sender", "text"} <= set(record)
    ana_log = records((tmp_path / "ana.jsonl").read_bytes())
    assert [r["type"] for r in ana_log] == ["event", "message", "delivery", "event"][: len(ana_log)]
    (delivery,) = [r for r in ana_log if r["type"] == "delivery"]
    assert delivery["state"] == "delivered" and delivery["delivered"] == ["bo"]
    assert delivery["id"] == record["id"]
    history = run_netassist("chat", "history", str(tmp_path / "ana.jsonl"))
    assert history.returncode == 0
    assert "ana → " not in history.stdout.decode()
    assert "ana: 下午好\\nline two  ✓ delivered" in history.stdout.decode()


def test_send_to_nobody_fails_in_one_line(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    result = run_netassist(
        "chat", "send", "--name", "ana", "--peer", f"127.0.0.1:{port}", "hi", "--timeout", "4"
    )
    err = result.stderr.decode()
    assert result.returncode == ExitCode.TIMEOUT, err
    assert err.count("\n") == 1, err
    assert f"nothing answers at 127.0.0.1:{port}" in err


def test_a_message_over_60_kib_is_a_clear_error_and_nothing_is_sent(netassist):
    bo, where = listen(netassist, "bo")
    result = run_netassist(
        "chat", "send", "--name", "ana", "--peer", where, "-", input="é".encode() * 30721
    )
    err = result.stderr.decode()
    assert result.returncode == ExitCode.BAD_DATA, err
    assert "message too long: 61,442 bytes of UTF-8, at most 61,440" in err
    assert err.count("\n") == 1
    ok = run_netassist(
        "chat", "send", "--name", "ana", "--peer", where, "-", input="é".encode() * 30720
    )
    assert ok.returncode == 0, ok.stderr
    _, out, _ = stop(bo)
    assert [len(r["text"]) for r in records(out)] == [30720]


def test_a_private_message_reaches_only_its_recipient(netassist):
    bo, bo_at = listen(netassist, "bo")
    cy, _ = listen(netassist, "cy", "--peer", bo_at)
    bo.expect_stderr("cy joined")
    result = run_netassist("chat", "send", "--name", "ana", "--peer", bo_at, "--to", "cy", "psst")
    assert result.returncode == 0, result.stderr
    room = run_netassist("chat", "send", "--name", "ana", "--peer", bo_at, "all")
    assert room.returncode == 0, room.stderr
    _, bo_out, _ = stop(bo)
    _, cy_out, _ = stop(cy)
    assert [r["text"] for r in records(bo_out)] == ["all"]
    assert [(r["text"], r["private"]) for r in records(cy_out)] == [("psst", True), ("all", False)]


def test_a_newline_or_line_separator_in_a_message_cannot_forge_a_log_line(netassist, tmp_path):
    log = tmp_path / "bo.jsonl"
    bo, where = listen(netassist, "bo", "--log", str(log))
    forged = '{"type": "message", "sender": "admin", "text": "forged"}'
    texts = [f"a\n{forged}", f"b\r{forged}", f"c\u2028{forged}", f"d\x85{forged}\u2029"]
    for text in texts:
        result = run_netassist("chat", "send", "--name", "eve", "--peer", where, text)
        assert result.returncode == 0, result.stderr
    stop(bo)
    raw = log.read_text(encoding="utf-8")
    lines = raw.splitlines()  # splits on every separator Python knows, not only \n
    assert len(lines) == raw.count("\n")
    parsed = [json.loads(line) for line in lines]
    assert [r["text"] for r in parsed if r["type"] == "message"] == texts
    assert not [r for r in parsed if r.get("sender") == "admin"]
    shown = run_netassist("chat", "history", str(log)).stdout.decode()
    assert "eve: a\\n{" in shown and "admin" in shown  # as text, on eve's line
    assert all(line.startswith("[") for line in shown.splitlines())


def test_a_killed_peer_restarted_rejoins_and_the_others_say_so(netassist, spawn, tmp_path):
    ana, ana_at = listen(netassist, "ana", "--log", str(tmp_path / "ana.jsonl"))
    port = free_port(socket.SOCK_DGRAM)
    bo_args = ["--bind", f"127.0.0.1:{port}", "--peer", ana_at]
    bo, _ = listen(netassist, "bo", *bo_args)
    cy, _ = listen(netassist, "cy", "--peer", ana_at)
    for proc in (ana, cy):
        proc.expect_stderr("bo joined")
    bo.expect_stderr("cy joined")
    bo.popen.kill()  # no goodbye
    bo.popen.wait(10)
    bo2, _ = listen(netassist, "bo", *bo_args)
    ana.expect_stderr(rf"bo rejoined from 127.0.0.1:{port} \(it restarted\)")
    cy.expect_stderr(rf"bo rejoined from 127.0.0.1:{port} \(it restarted\)")
    result = run_netassist("chat", "send", "--name", "cy2", "--peer", ana_at, "after")
    assert result.returncode == 0, result.stderr
    _, out, _ = stop(bo2)
    assert [r["text"] for r in records(out)] == ["after"]
    _, _, ana_err = stop(ana)
    stop(cy)
    assert "bo left (went silent)" not in ana_err  # it came back before it could time out
    log = records((tmp_path / "ana.jsonl").read_bytes())
    assert [r["name"] for r in log if r.get("event") == "rejoined"] == ["bo"]


def signed(key: bytes, head: bytes, flags: int = protocol.FLAG_MAC) -> bytes:
    prefix = protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, flags, len(head))
    return prefix + hmac.new(key, prefix + head, hashlib.sha256).digest() + head


def hostile(key: bytes) -> list[tuple[bytes, str]]:
    member = {"from": "e" * 16, "name": "eve"}
    return [
        (b"{not json", "not a chat datagram"),
        (signed(key, b"{bad json"), "bad JSON header"),
        (signed(key, b'{"t": "msg", "from": "eeeeeeeeeeeeeeee", "seq": "1"}'), "bad field"),
        (signed(key, b"{}", flags=0x80), "unknown flags"),
        (protocol.encode({"t": "join", **member}, key=b"wrong"), "wrong key"),
        (protocol.encode({"t": "join", **member}), "not signed"),
        (b"NACH\x01\x01\xff\xff" + os.urandom(65499), "wrong key"),  # huge
        (os.urandom(65507), "not a chat datagram"),  # huge
    ]


def test_forged_malformed_huge_and_wrong_key_datagrams_are_dropped_and_counted(netassist):
    key = b"room secret"
    bo, where = listen(netassist, "bo", "--key", key.decode())
    port = int(where.rpartition(":")[2])
    counts: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data, reason in hostile(key):
            for _ in range(3):
                sock.sendto(data, ("127.0.0.1", port))
            counts[reason] += 3
            bo.expect_stderr(
                rf"dropped a datagram from 127.0.0.1:\d+: {reason}.*\({counts[reason]} so far\)"
            )
    result = run_netassist(
        "chat", "send", "--name", "ana", "--peer", where, "still here", "--key", key.decode()
    )
    assert result.returncode == 0, result.stderr
    unkeyed = run_netassist(
        "chat", "send", "--name", "mallory", "--peer", where, "let me in", "--timeout", "3"
    )
    assert unkeyed.returncode == ExitCode.TIMEOUT
    code, out, err = stop(bo)
    assert code == 0, err
    assert [r["text"] for r in records(out)] == ["still here"]
    summary = re.search(r"dropped (\d+) datagrams in all: .*not signed", err)
    assert summary and int(summary[1]) > sum(counts.values()), err  # mallory's joins too


def test_send_listen_and_the_line_interface_run_without_posix_names(spawn):
    bo = spawn([*WITHOUT_POSIX, "chat", "listen", "--name", "bo", "--timeout", "60"])
    where = f"127.0.0.1:{bo.port()}"
    result = subprocess.run(
        [*WITHOUT_POSIX, "chat", "send", "--name", "ana", "--peer", where, "下午好"],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    interactive = subprocess.run(
        [*WITHOUT_POSIX, "chat", "--name", "cy", "--peer", where],
        input="晚上好\n/peers\n/quit\n".encode(),
        capture_output=True,
        timeout=60,
    )
    assert interactive.returncode == 0, interactive.stderr
    assert "* bo at 127.0.0.1:" in interactive.stdout.decode()
    assert "✓ delivered: 晚上好" in interactive.stdout.decode()
    _, out, _ = stop(bo)
    assert [r["text"] for r in records(out)] == ["下午好", "晚上好"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--peer", "127.0.0.1:9"], "give your name with --name NAME"),
        (["--name", "a b", "--peer", "127.0.0.1:9"], "a name has no spaces"),
        (["--name", "ana", "--peer", "192.0.2.1:9"], "give --bind 0.0.0.0:PORT"),
        (["--name", "ana", "--discover"], "--discover looks beyond this machine"),
        (["--name", "ana", "--peer", "127.0.0.1:0"], "bad port 0"),
    ],
)
def test_bad_arguments_are_one_line(args, message):
    result = run_netassist("chat", "send", *args, "hi", "--timeout", "1")
    err = result.stderr.decode()
    assert result.returncode in (ExitCode.USAGE, ExitCode.BAD_PORT), err
    assert err.count("\n") == 1 and message in err, err


def test_listen_into_a_pipe_that_closes_stops_cleanly(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    command = " ".join(NETASSIST) + f" chat listen --name bo --bind 127.0.0.1:{port} --timeout 60"
    pipeline = subprocess.Popen(
        f"{command} | head -n 1; echo listen=${{PIPESTATUS[0]}} >&2",
        shell=True,
        executable="/bin/bash",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_bound(port, "udp")
        for text in ("one", "two", "three"):
            result = run_netassist(
                "chat", "send", "--name", "ana", "--peer", f"127.0.0.1:{port}", text
            )
            if result.returncode:
                break
        out, err = pipeline.communicate(timeout=30)
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
    assert [r["text"] for r in records(out)] == ["one"]
    assert b"listen=0" in err, err
    assert b"Traceback" not in err


def test_a_peer_that_goes_silent_is_announced_and_what_it_missed_undelivered(netassist, tmp_path):
    log = tmp_path / "ana.jsonl"
    ana = netassist(
        "chat",
        "listen",
        "--name",
        "ana",
        "--timeout",
        "120",
        "--log",
        str(log),
        "--send-stdin",
        stdin=subprocess.PIPE,
    )
    ana_at = f"127.0.0.1:{ana.port()}"
    bo, _ = listen(netassist, "bo", "--peer", ana_at)
    ana.expect_stderr("bo joined")
    bo.popen.send_signal(signal.SIGSTOP)  # no goodbye: only silence tells
    try:
        ana.popen.stdin.write(b"are you there?\n")
        ana.popen.stdin.flush()
        ana.expect_stderr(r"\* bo left \(went silent\)", timeout=20)  # 10 s without a datagram
        ana.expect_stderr(r"✗ undelivered to bo \(it went silent\): are you there\?")
    finally:
        bo.popen.send_signal(signal.SIGCONT)
    stop(ana)
    records_ = records(log.read_bytes())
    assert [(r["type"], r.get("event") or r.get("state")) for r in records_[:4]] == [
        ("event", "joined"),
        ("message", "sending"),
        ("event", "left"),
        ("delivery", "undelivered"),
    ]
    # Continued, bo pings again and is admitted again.
    assert [r.get("event") for r in records_[4:]] in ([], ["joined"])
    assert records_[3]["undelivered"] == [{"name": "bo", "why": "it went silent"}]
    shown = run_netassist("chat", "history", str(log)).stdout.decode()
    assert "ana: are you there?  ✗ undelivered to bo (it went silent)" in shown


def test_history_of_a_file_that_is_not_one_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b'{"type": "event", "event": "joined", "name": "bo"}\n\x00\xff binary\n')
    result = run_netassist("chat", "history", str(bad))
    err = result.stderr.decode()
    assert result.returncode == ExitCode.BAD_DATA, err
    assert err == (
        f"netassist: {bad}:2: not a chat history record (was it written by netassist chat --log?)\n"
    )
    missing = run_netassist("chat", "history", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == ExitCode.FILE
    assert missing.stderr.decode().count("\n") == 1


def test_send_does_not_fail_for_an_introduced_member_that_is_gone(netassist):
    bo, bo_at = listen(netassist, "bo")
    cy, _ = listen(netassist, "cy", "--peer", bo_at)
    bo.expect_stderr("cy joined")
    cy.popen.send_signal(signal.SIGSTOP)  # bo still lists it: it has not timed out yet
    try:
        result = run_netassist("chat", "send", "--name", "ana", "--peer", bo_at, "hello")
    finally:
        cy.popen.send_signal(signal.SIGCONT)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count("\n") == 1 and "warning: nothing answers at 127.0.0.1:" in err
    assert "a member knew of it, it may have left" in err
    _, out, _ = stop(bo)
    assert [r["text"] for r in records(out)] == ["hello"]
