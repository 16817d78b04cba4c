"""One address syntax for every command, checked against the sockets the processes really open.

``PORT`` and ``:PORT`` must bind loopback only; ``HOST:PORT`` and ``[V6]:PORT`` work where
``HOST PORT`` does; bad ports are refused the same way everywhere.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest

from netassist.errors import ExitCode
from tests.conftest import free_port, run_netassist

pytestmark = pytest.mark.integration


def bound_addresses(pid: int, port: int) -> set[str]:
    """The local addresses of the TCP sockets that process ``pid`` listens on at ``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                address, hexport = fields[1].split(":")
                if fields[3] == "0A" and fields[9] in inodes and int(hexport, 16) == port:
                    if v6:
                        raw = bytes.fromhex(address)
                        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                        found.add(socket.inet_ntop(socket.AF_INET6, words))
                    else:
                        found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize(
    "command",
    [
        ["files", "serve", ".", "-b", "{port}"],
        ["files", "serve", ".", "-b", ":{port}"],
        ["serve", ".", "-b", "{port}"],
        ["serve", ".", "-b", ":{port}"],
        ["run", "tests.server.apps:hello", "-b", ":{port}"],
        ["tcp", "listen", "{port}", "-k"],
        ["tcp", "listen", ":{port}", "-k"],
    ],
)
def test_a_bare_port_listens_on_loopback_only(netassist, command):
    port = free_port()
    proc = netassist(*(word.format(port=port) for word in command))
    proc.expect_stderr(rf"(listening on|Listening at).*:{port}\b")
    assert bound_addresses(proc.popen.pid, port) == {"127.0.0.1"}


def test_ipv6_in_brackets_for_listeners_and_clients(netassist):
    port = free_port()
    listener = netassist("tcp", "listen", f"[::1]:{port}")
    listener.expect_stderr(rf"listening on tcp \[::1\]:{port}")
    assert bound_addresses(listener.popen.pid, port) == {"::1"}
    sent = run_netassist("tcp", "connect", f"[::1]:{port}", "--send", "hello v6")
    assert sent.returncode == 0, sent.stderr
    code, out, _ = listener.finish()
    assert code == 0 and b"hello v6" in out


@pytest.mark.parametrize("form", ["joined", "split", "port"])
def test_udp_send_takes_host_port_as_one_word_or_two(netassist, form):
    listener = netassist("udp", "listen", "0", "--count", "1")
    port = listener.port()
    target = {
        "joined": [f"127.0.0.1:{port}"],
        "split": ["127.0.0.1", str(port)],
        "port": [str(port)],
    }[form]
    sent = run_netassist("udp", "send", *target, "下午好")
    assert sent.returncode == 0, sent.stderr
    code, out, _ = listener.finish()
    assert code == 0 and "下午好" in out.decode()


@pytest.mark.parametrize(
    "command",
    [
        ["tcp", "connect", "127.0.0.1", "9_0_9_0"],
        ["tcp", "connect", "127.0.0.1", "+9"],
        ["udp", "send", "127.0.0.1", "９０９０", "x"],
        ["udp", "listen", "70000"],
        ["files", "ls", "127.0.0.1:9_0"],
        ["files", "serve", ".", "-b", "127.0.0.1:+9"],
        ["serve", ".", "-b", "127.0.0.1:９０"],
        ["run", "tests.server.apps:hello", "-b", "127.0.0.1:1_000"],
        ["replay", sys.executable, "--to", "127.0.0.1:0"],
    ],
)
def test_bad_ports_are_refused_the_same_way_everywhere(command):
    result = run_netassist(*command)
    err = result.stderr.decode()
    assert result.returncode == ExitCode.BAD_PORT, err
    assert "bad port" in err and err.count("\n") == 1


def test_a_host_where_a_port_belongs_is_not_looked_up():
    result = run_netassist("files", "serve", ".", "-b", "127.0.0.1:x")
    assert result.returncode == ExitCode.BAD_PORT
    result = run_netassist("tcp", "connect", "::1:80")
    assert result.returncode == ExitCode.USAGE
    assert "[::1]:8000" in result.stderr.decode()
