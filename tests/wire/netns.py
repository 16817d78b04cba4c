"""Hosts of a test's own: network namespaces joined by a veth pair, removed afterwards.

Traffic of these tests (broadcasts included) stays inside the namespaces the test made; no
real interface sees it. Making them needs root and ``ip`` (CI has both); otherwise skip.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Sequence

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class NetnsHosts:
    """``count`` namespaces with loopback up; with two, a veth pair joins them on a /24
    picked per run in 10.231.X.0/24, host ``i`` being ``10.231.X.(i+1)``."""

    def __init__(self, count: int) -> None:
        if shutil.which("ip") is None or os.geteuid() != 0:
            pytest.skip("network namespaces need root and iproute2 (CI has both)")
        tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.names = [f"na{tag}{chr(ord('a') + i)}" for i in range(count)]
        self.subnet = f"10.231.{random.randint(1, 254)}"
        self.made: list[str] = []
        try:
            for name in self.names:
                _ip("netns", "add", name)
                self.made.append(name)
                _ip("-n", name, "link", "set", "lo", "up")
            if count == 2:
                self._join(tag)
        except BaseException:
            self.close()
            raise

    def _join(self, tag: str) -> None:
        ends = [f"v{tag}{side}" for side in "ab"]  # at most 15 characters, as Linux wants
        _ip("link", "add", ends[0], "type", "veth", "peer", "name", ends[1])
        for i, (name, end) in enumerate(zip(self.names, ends, strict=True)):
            _ip("link", "set", end, "netns", name)
            _ip(
                "-n",
                name,
                "addr",
                "add",
                f"{self.address(i)}/24",
                "brd",
                self.broadcast,
                "dev",
                end,
            )
            _ip("-n", name, "link", "set", end, "up")

    def address(self, host: int) -> str:
        """The address of host ``host`` (0 or 1) on the veth link."""
        return f"{self.subnet}.{host + 1}"

    @property
    def broadcast(self) -> str:
        """The link's broadcast address."""
        return f"{self.subnet}.255"

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """``argv`` to run inside host ``host``."""
        return ["ip", "netns", "exec", self.names[host], *argv]

    def snmp(self, host: int, table: str) -> dict[str, int]:
        """A table of host ``host``'s /proc/net/snmp counters, e.g. ``Udp``."""
        text = subprocess.run(
            self.command(host, ["cat", "/proc/net/snmp"]),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        names, values = (
            line.split()[1:] for line in text.splitlines() if line.startswith(table + ":")
        )
        return dict(zip(names, map(int, values), strict=True))

    def close(self) -> None:
        """Delete the namespaces (their veth ends go with them)."""
        for name in self.made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.made.clear()
