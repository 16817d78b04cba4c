"""Fixtures of the assistant's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.wire.terminal import Terminal


@pytest.fixture
def terminal(tmp_path) -> Iterator[Terminal]:
    """A real terminal (tmux) on a tmux server of this test's own, killed afterwards."""
    term = Terminal(need("tmux"), tmp_path)
    try:
        yield term
    finally:
        term.close()
