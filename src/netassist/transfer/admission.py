"""Who may hold a connection to the file server, and for how long.

A connection is *pending* from the moment it is accepted until its handshake is done (a
HELLO, with the right token when the server has one), and a *session* after that. The two
are counted apart, so that connections nobody has vouched for never hold what the
clients who did need:

- pending connections are bounded per client address and in total. One more evicts the
  oldest: of its own address when that address is at its bound, otherwise of the address
  holding the most. A flood of idle connections or half-sent handshakes therefore only
  pushes out the flood itself, and a real client, whose handshake takes a round trip, gets
  through it. Each pending connection also has a deadline (a few seconds) for its handshake;
- sessions are bounded in total (``--max-clients``) and per address
  (``--max-per-address``); a client beyond either is told it is busy, after its handshake.

This module only counts and decides; the server owns the sockets and ends the connections
it is told to end (from any thread, by shutting their socket down).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HANDSHAKE_TIMEOUT = 5.0  # seconds from accept to a finished handshake
IDLE_TIMEOUT = 300.0  # seconds a session may stay silent (between requests, or not reading)


@dataclass(eq=False)
class Ticket:
    """One accepted connection, as the admission sees it. ``conn`` is the server's."""

    address: str
    started: float
    peer: str = ""  # host:port, for the log
    conn: Any = None
    session: bool = False
    dropped: str | None = None  # why it was pushed out before its handshake finished


class Admission:
    """Counts pending connections and sessions per address; thread-safe."""

    def __init__(
        self,
        *,
        max_sessions: int = 64,
        per_address: int = 16,
        max_pending: int | None = None,
        pending_per_address: int | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or per_address < 1:
            raise ValueError("a server must admit at least one client")
        self.max_sessions = max_sessions
        self.per_address = per_address
        self.max_pending = max_pending or max_sessions
        self.pending_per_address = pending_per_address or per_address
        self.handshake_timeout = handshake_timeout
        self._clock = clock
        self._lock = threading.Lock()
        # Insertion-ordered: the first ticket of an address is its oldest.
        self._pending: dict[str, dict[Ticket, None]] = {}
        self._pending_count = 0
        self._sessions: Counter[str] = Counter()
        self._session_count = 0

    def arrive(self, address: str) -> tuple[Ticket, list[Ticket]]:
        """A new connection from ``address``: its ticket, and the pending connections it
        pushed out (the caller ends them; each says why in ``dropped``)."""
        with self._lock:
            evicted = []
            waiting = self._pending.get(address)
            if waiting is not None and len(waiting) >= self.pending_per_address:
                evicted.append(self._drop(next(iter(waiting)), "too many unfinished handshakes"))
            elif self._pending_count >= self.max_pending:
                crowded = max(self._pending.values(), key=len)
                evicted.append(self._drop(next(iter(crowded)), "too many unfinished handshakes"))
            ticket = Ticket(address, self._clock())
            self._pending.setdefault(address, {})[ticket] = None
            self._pending_count += 1
            return ticket, evicted

    def admit(self, ticket: Ticket) -> str | None:
        """Turn a pending ticket whose handshake is done into a session; returns None, or
        why it cannot be one (the client is then told it is busy)."""
        with self._lock:
            if ticket.dropped is not None:
                return ticket.dropped
            if self._session_count >= self.max_sessions:
                return f"too many clients ({self.max_sessions})"
            if self._sessions[ticket.address] >= self.per_address:
                return f"too many connections from {ticket.address} ({self.per_address})"
            self._forget_pending(ticket)
            ticket.session = True
            self._sessions[ticket.address] += 1
            self._session_count += 1
            return None

    def leave(self, ticket: Ticket) -> None:
        """The connection of ``ticket`` is over, at whatever stage."""
        with self._lock:
            if ticket.session:
                ticket.session = False
                self._sessions[ticket.address] -= 1
                if not self._sessions[ticket.address]:
                    del self._sessions[ticket.address]
                self._session_count -= 1
            elif ticket.dropped is None:
                self._forget_pending(ticket)
                ticket.dropped = "gone"

    def overdue(self) -> list[Ticket]:
        """The pending connections whose handshake deadline has passed, no longer counted
        (the caller ends them)."""
        limit = self._clock() - self.handshake_timeout
        with self._lock:
            late = [
                ticket
                for waiting in self._pending.values()
                for ticket in waiting
                if ticket.started <= limit
            ]
            for ticket in late:
                self._drop(ticket, f"no handshake within {self.handshake_timeout:g} s")
            return late

    @property
    def pending(self) -> int:
        """Connections waiting for their handshake now."""
        return self._pending_count

    @property
    def sessions(self) -> int:
        """Sessions now."""
        return self._session_count

    def _drop(self, ticket: Ticket, reason: str) -> Ticket:
        self._forget_pending(ticket)
        ticket.dropped = reason
        return ticket

    def _forget_pending(self, ticket: Ticket) -> None:
        waiting = self._pending.get(ticket.address)
        if waiting is None or ticket not in waiting:
            return
        del waiting[ticket]
        if not waiting:
            del self._pending[ticket.address]
        self._pending_count -= 1
