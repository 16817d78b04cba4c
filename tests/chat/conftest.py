"""Fixtures of the chat's tests: the assistant's real terminal (tmux) and network namespaces."""

from tests.wire.conftest import terminal, two_hosts

__all__ = ["terminal", "two_hosts"]
