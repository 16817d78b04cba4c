"""``--discover`` across two hosts of the test's own (network namespaces joined by a veth
pair): broadcasts stay inside them, never on a real interface."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from netassist.errors import ExitCode
from tests.conftest import NETASSIST

pytestmark = pytest.mark.integration


def test_discover_finds_the_room_by_broadcast(two_hosts, spawn):
    where = ["--discover-to", f"{two_hosts.broadcast}:9090"]
    bo = spawn(
        two_hosts.command(
            1,
            [
                *NETASSIST,
                "chat",
                "listen",
                "--name",
                "bo",
                "--bind",
                "0.0.0.0:9090",
                "--discover",
                *where,
                "--timeout",
                "60",
            ],
        )
    )
    assert bo.port() == 9090
    sent = subprocess.run(
        two_hosts.command(
            0,
            [
                *NETASSIST,
                "chat",
                "send",
                "--name",
                "ana",
                "--bind",
                "0.0.0.0:9090",
                "--discover",
                *where,
                "你好, LAN",
                "--timeout",
                "20",
            ],
        ),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert sent.returncode == 0, sent.stderr
    bo.expect_stderr(rf"ana joined from {two_hosts.address(0)}:9090")
    bo.popen.send_signal(signal.SIGINT)
    code, out, err = bo.finish(30)
    assert code == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["text"] == "你好, LAN" and record["address"] == f"{two_hosts.address(0)}:9090"


def test_discover_where_the_limited_broadcast_has_no_route_says_what_to_do(two_hosts):
    # These hosts have no default route: 255.255.255.255 cannot leave, and saying so beats
    # waiting for answers that cannot come.
    sent = subprocess.run(
        two_hosts.command(
            0,
            [
                *NETASSIST,
                "chat",
                "send",
                "--name",
                "ana",
                "--bind",
                "0.0.0.0:9090",
                "--discover",
                "hello",
                "--timeout",
                "20",
            ],
        ),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    err = sent.stderr.decode()
    assert sent.returncode == ExitCode.NETWORK, err
    assert err.count("\n") == 1
    assert err.splitlines()[-1] == (
        "netassist: broadcasting to 255.255.255.255:9090: network unreachable (name your "
        "LAN's broadcast address with --discover-to, as in 192.168.1.255:9090)"
    )
