"""``netassist udp`` as a process, against real nc and socat over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import pytest

from netassist.wire.udp import UdpListener
from netassist.wire.udp import send as udp_send
from tests.conftest import free_port, need, run_netassist, wait_bound

pytestmark = pytest.mark.integration


def test_listen_shows_text_from_nc_with_escapes(netassist):
    nc = need("nc")
    # -w1, not -w0: nc waits a moment after the end of its input, so it cannot quit unsent.
    listener = netassist("udp", "listen", "0", "--count", "2", "--timeout", "20")
    port = listener.port()
    subprocess.run([nc, "-u", "-w1", "127.0.0.1", str(port)], input=b"hello\x1b[31m", check=True)
    subprocess.run([nc, "-u", "-w1", "127.0.0.1", str(port)], input="你好\n".encode(), check=True)
    code, out, _ = listener.finish(timeout=40)
    assert code == 0
    lines = out.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("(10 bytes): hello\\x1b[31m")
    assert "from 127.0.0.1:" in lines[0]
    assert lines[1].endswith("(7 bytes): 你好\\n")


def test_listen_hex_dump_of_binary_from_socat(netassist):
    socat = need("socat")
    listener = netassist("udp", "listen", "0", "--hex", "--count", "1", "--timeout", "20")
    port = listener.port()
    payload = bytes(range(20))
    subprocess.run(
        [socat, "-u", "STDIN", f"UDP-SENDTO:127.0.0.1:{port}"], input=payload, check=True
    )
    code, out, _ = listener.finish()
    assert code == 0
    text = out.decode()
    assert "(20 bytes):" in text
    assert "00000000: 0001 0203 0405 0607 0809 0a0b 0c0d 0e0f  ................" in text
    assert "00000010: 1011 1213" in text


def test_send_reaches_nc_listener_exact_bytes(spawn):
    nc = need("nc")
    port = free_port(socket.SOCK_DGRAM)
    receiver = spawn([nc, "-u", "-l", "-W", "1", "127.0.0.1", str(port)])
    wait_bound(port, "udp")
    result = run_netassist("udp", "send", "127.0.0.1", str(port), "--hex", "00ff 1b 41")
    assert result.returncode == 0, result.stderr
    code, out, _ = receiver.finish()
    assert (code, out) == (0, b"\x00\xff\x1bA")


def test_send_stdin_one_datagram_per_line_to_socat(spawn, tmp_path):
    socat = need("socat")
    port = free_port(socket.SOCK_DGRAM)
    out_file = tmp_path / "got"
    # UDP-RECVFROM without fork takes one datagram and exits; run it once per line.
    got = []
    for line in (b"one", b"two", "三".encode()):
        receiver = spawn(
            [socat, "-u", f"UDP-RECVFROM:{port},bind=127.0.0.1", f"OPEN:{out_file},creat,trunc"]
        )
        wait_bound(port, "udp")
        result = run_netassist("udp", "send", "127.0.0.1", str(port), input=line + b"\n")
        assert result.returncode == 0, result.stderr
        assert receiver.popen.wait(10) == 0
        got.append(out_file.read_bytes())
    assert got == [b"one", b"two", "三".encode()]


def test_gbk_round_trip_through_echo_listener(netassist):
    listener = netassist(
        "udp", "listen", "0", "--echo", "--encoding", "gbk", "--count", "1", "--timeout", "20"
    )
    port = listener.port()
    result = run_netassist(
        "udp", "send", "127.0.0.1", str(port), "中文测试", "--encoding", "gbk", "--wait-reply", "5"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().rstrip().endswith("(8 bytes): 中文测试")
    code, out, _ = listener.finish()
    assert code == 0
    assert out.decode().rstrip().endswith("(8 bytes): 中文测试")


def test_repeat_with_reply_and_log(netassist, tmp_path):
    log = tmp_path / "send.jsonl"
    listener = netassist("udp", "listen", "0", "--reply", "ack", "--count", "3", "--timeout", "20")
    port = listener.port()
    result = run_netassist(
        "udp",
        "send",
        "127.0.0.1",
        str(port),
        "ping",
        "--repeat",
        "3",
        "--interval",
        "0.01",
        "--wait-reply",
        "5",
        "--log",
        str(log),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().count("(3 bytes): ack") == 3
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["direction"], bytes.fromhex(r["hex"])) for r in records] == [
        ("out", b"ping"),
        ("in", b"ack"),
    ] * 3
    assert listener.finish()[0] == 0


def test_listen_log_keeps_invalid_bytes(netassist, tmp_path):
    log = tmp_path / "listen.jsonl"
    listener = netassist("udp", "listen", "0", "--count", "1", "--timeout", "20", "--log", str(log))
    port = listener.port()
    assert (
        run_netassist("udp", "send", "127.0.0.1", str(port), "--hex", "e4bd a0ff").returncode == 0
    )
    code, out, _ = listener.finish()
    assert code == 0
    assert out.decode().rstrip().endswith("(4 bytes): 你\\xff")
    record = json.loads(log.read_text())
    assert record["hex"] == "e4bda0ff"
    assert record["text"] == "你\\xff"
    assert record["direction"] == "in"


def test_listener_stops_with_count_shortfall_as_timeout(netassist):
    listener = netassist("udp", "listen", "0", "--count", "5", "--timeout", "0.5")
    listener.port()
    code, _, err = listener.finish()
    assert code == 9
    assert "received 0 of 5 datagrams" in err


def test_many_senders_ipv6_library(tmp_path):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:  # no IPv6, or no ::1 on this machine: the only reasons to skip
        pytest.skip("::1 is not configured here")
    listener = UdpListener("::1", 0, echo=True)
    seen = []
    listener.on_datagram = lambda d: seen.append(d.data)
    with listener:
        thread = threading.Thread(target=listener.serve, kwargs={"count": 20, "timeout": 20})
        thread.start()
        for i in range(20):
            result = udp_send("::1", listener.port, [f"m{i}".encode()], wait_reply=5)
            assert result.replies[0].data == f"m{i}".encode()
        thread.join(20)
        assert not thread.is_alive()
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(20))


def test_send_bind_sends_from_the_port_the_peer_expects():
    """The tutorial's chat binds one port and talks to another: its peer must answer from
    the port the chat sends to, and to the port the chat bound."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as chat,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken,
    ):
        chat.bind(("127.0.0.1", 0))
        chat.settimeout(20)
        taken.bind(("127.0.0.1", 0))
        ours = taken.getsockname()[1]
        taken.close()  # a port that was free a moment ago, for netassist to bind
        answered = []

        def answer() -> None:
            data, addr = chat.recvfrom(100)
            answered.append(addr)
            chat.sendto(b"hi back " + data, addr)

        thread = threading.Thread(target=answer)
        thread.start()
        result = run_netassist(
            "udp", "send", "127.0.0.1", str(chat.getsockname()[1]), "hello",
            "--bind", f"127.0.0.1:{ours}", "--wait-reply", "5",
        )  # fmt: skip
        thread.join(20)
    assert result.returncode == 0, result.stderr
    assert answered == [("127.0.0.1", ours)]
    assert result.stdout.decode().rstrip().endswith("(13 bytes): hi back hello")


def test_send_bind_to_a_port_in_use_is_address_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = run_netassist("udp", "send", "127.0.0.1", "9", "x", "--bind", str(port))
    err = result.stderr.decode()
    assert result.returncode == 7, err
    assert f"binding udp 127.0.0.1:{port}: address already in use" in err


@pytest.mark.parametrize(
    ("bind", "target", "said"),
    [
        ("[::1]:0", "127.0.0.1", "--bind [::1]:0 is IPv6 and 127.0.0.1:9 is IPv4"),
        ("127.0.0.1:0", "::1", "--bind 127.0.0.1:0 is IPv4 and [::1]:9 is IPv6"),
    ],
)
def test_send_bind_of_the_other_family_says_so(bind, target, said):
    # It said "looking up '::1' for udp: host not found" (exit 5): true of neither address.
    result = run_netassist("udp", "send", target, "9", "x", "--bind", bind)
    err = result.stderr.decode()
    assert err.count("\n") == 1 and said in err and "0.0.0.0:PORT" in err, err
    assert result.returncode == 2


def test_listen_bind_answers_from_the_chosen_address(netassist):
    listener = netassist(
        "udp", "listen", "--bind", "127.0.0.2:0", "--reply", "ack", "--count", "1",
        "--timeout", "20",
    )  # fmt: skip
    port = listener.port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        # Connected: only a reply from exactly 127.0.0.2:PORT is let through.
        client.connect(("127.0.0.2", port))
        client.settimeout(10)
        client.send(b"hi")
        assert client.recv(100) == b"ack"
    code, out, err = listener.finish()
    assert code == 0, err
    assert "(2 bytes): hi" in out.decode()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bind", "127.0.0.1:0", "127.0.0.1", "0"], "give the address once"),
        ([], "give [HOST] PORT, or --bind HOST:PORT"),
        (["--bind", "::1:9"], "in brackets"),
    ],
)
def test_listen_address_given_twice_or_not_at_all(args, needle):
    result = run_netassist("udp", "listen", *args, "--timeout", "1")
    assert result.returncode == 2
    assert needle in result.stderr.decode()


@pytest.mark.parametrize("count", [1, 3])
def test_datagrams_to_a_closed_port_exit_6_whether_one_or_three(count):
    port = free_port(socket.SOCK_DGRAM)
    stdin = b"".join(b"line %d\n" % i for i in range(count))
    result = run_netassist("udp", "send", "127.0.0.1", str(port), input=stdin)
    err = result.stderr.decode()
    assert result.returncode == 6, err
    assert err.count("\n") == 1
    assert f"sent to udp 127.0.0.1:{port}; the peer refused {count}" in err
