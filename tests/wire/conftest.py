"""Fixtures of the assistant's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.wire.netns import NetnsHosts
from tests.wire.terminal import Terminal


@pytest.fixture
def terminal(tmp_path) -> Iterator[Terminal]:
    """A real terminal (tmux) on a tmux server of this test's own, killed afterwards."""
    term = Terminal(need("tmux"), tmp_path)
    try:
        yield term
    finally:
        term.close()


@pytest.fixture
def one_host() -> Iterator[NetnsHosts]:
    """A network namespace of this test's own, with only loopback (its counters are ours)."""
    hosts = NetnsHosts(1)
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def two_hosts() -> Iterator[NetnsHosts]:
    """Two network namespaces joined by a veth pair on a /24 of this run's own."""
    hosts = NetnsHosts(2)
    try:
        yield hosts
    finally:
        hosts.close()
