"""TCP: an nc-style client session and a listener that serves many clients at once.

The two live in their own modules (:mod:`netassist.wire.tcp_client`,
:mod:`netassist.wire.tcp_listen`); this module gathers them, so ``from netassist.wire import
tcp`` gives ``tcp.connect``, ``tcp.run_session`` and ``tcp.TcpListener`` alike.
"""

from __future__ import annotations

from netassist.wire.tcp_client import (
    Channel,
    SessionResult,
    Source,
    StdinSource,
    connect,
    parts_source,
    run_session,
    stdin_source,
)
from netassist.wire.tcp_listen import (
    BROADCAST_BUFFER_LIMIT,
    ECHO_HIGH_WATER,
    MAX_LINE,
    MAX_NAME,
    HostInput,
    ListenerClient,
    TcpListener,
)

__all__ = [
    "BROADCAST_BUFFER_LIMIT",
    "ECHO_HIGH_WATER",
    "MAX_LINE",
    "MAX_NAME",
    "Channel",
    "HostInput",
    "ListenerClient",
    "SessionResult",
    "Source",
    "StdinSource",
    "TcpListener",
    "connect",
    "parts_source",
    "run_session",
    "stdin_source",
]
