"""``netassist udp`` across hosts of the test's own (network namespaces, a veth pair).

Broadcasts are tested here only, inside namespaces the test makes: never on a real
interface. A namespace of its own also gives the test kernel counters no one else moves.
"""

from __future__ import annotations

import subprocess

import pytest

from netassist.errors import ExitCode
from tests.conftest import NETASSIST

pytestmark = pytest.mark.integration


def run_in(hosts, host: int, *args: str, input: bytes | None = None):
    return subprocess.run(
        hosts.command(host, [*NETASSIST, *args]),
        input=input,
        capture_output=True,
        timeout=30,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def test_broadcast_reaches_the_other_host_with_broadcast(two_hosts, spawn):
    listener = spawn(
        two_hosts.command(
            1, [*NETASSIST, "udp", "listen", "0.0.0.0", "9090", "--count", "1", "--timeout", "20"]
        )
    )
    assert listener.port() == 9090
    result = run_in(two_hosts, 0, "udp", "send", two_hosts.broadcast, "9090", "hi", "--broadcast")
    assert result.returncode == 0, result.stderr
    code, out, err = listener.finish()
    assert code == 0, err
    assert f"from {two_hosts.address(0)}:" in out.decode()
    assert out.decode().rstrip().endswith("(2 bytes): hi")


def test_broadcast_replies_from_the_other_host_are_shown(two_hosts, spawn):
    listener = spawn(
        two_hosts.command(
            1,
            [*NETASSIST, "udp", "listen", "0.0.0.0", "9090", "--reply", "pong", "--count", "1"],
        )
    )
    listener.port()
    result = run_in(
        two_hosts,
        0,
        "udp",
        "send",
        two_hosts.broadcast,
        "9090",
        "ping",
        "--broadcast",
        "--wait-reply",
        "5",
    )
    assert result.returncode == 0, result.stderr
    assert f"reply from {two_hosts.address(1)}:9090 (4 bytes): pong" in result.stdout.decode()
    assert listener.finish()[0] == 0


def test_without_broadcast_one_line_suggests_it_and_no_root_hint(two_hosts):
    result = run_in(two_hosts, 0, "udp", "send", two_hosts.broadcast, "9090", "hi")
    err = result.stderr.decode()
    assert result.returncode == ExitCode.PERMISSION_DENIED, err
    assert err.count("\n") == 1, err
    assert f"sending to udp {two_hosts.broadcast}:9090: permission denied" in err
    assert "add --broadcast" in err
    assert "below 1024" not in err
    counters = two_hosts.snmp(1, "Udp")
    assert counters["InDatagrams"] + counters["NoPorts"] == 0  # and nothing went out


def test_a_broadcast_with_no_route_names_the_lan_broadcast_address(two_hosts):
    # A host without a default route (as the tests' namespaces, or a LAN without a
    # gateway) said only "network unreachable" for 255.255.255.255.
    result = run_in(two_hosts, 0, "udp", "send", "255.255.255.255", "9090", "hi", "--broadcast")
    err = result.stderr.decode()
    assert result.returncode == ExitCode.NETWORK and err.count("\n") == 1, err
    assert "sending to udp 255.255.255.255:9090: network unreachable" in err
    assert "the LAN's own broadcast address" in err
    sent = run_in(two_hosts, 0, "udp", "send", two_hosts.broadcast, "9090", "hi", "--broadcast")
    assert sent.returncode == 0, sent.stderr  # the hint's way works


@pytest.mark.parametrize("lines", [1, 3])
def test_every_datagram_to_a_closed_port_is_sent_and_the_refusals_counted(one_host, lines):
    stdin = b"".join(b"%d\n" % i for i in range(1, lines + 1))
    result = run_in(one_host, 0, "udp", "send", "127.0.0.1", "9999", input=stdin)
    err = result.stderr.decode()
    assert result.returncode == ExitCode.CONNECTION_REFUSED, err
    assert err.count("\n") == 1, err
    plural = "" if lines == 1 else "s"
    assert f"{lines} datagram{plural} sent to udp 127.0.0.1:9999; the peer refused {lines}" in err
    assert "connection refused" in err
    # The namespace's own counter: every datagram reached the closed port.
    assert one_host.snmp(0, "Udp")["NoPorts"] == lines
