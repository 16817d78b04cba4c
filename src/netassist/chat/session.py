"""One run of ``netassist chat``: a peer, its log, its history in memory, and what a person
is told, shared by the terminal interface, ``chat send`` and ``chat listen``.

:class:`Session` turns each protocol event into a record (:mod:`netassist.chat.history`),
writes it to the ``--log`` file, keeps the recent ones for ``/history``, and hands lines for
a person to ``say`` and message records to ``on_message``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netassist.chat.history import ChatLog, format_delivery, format_record, to_record
from netassist.chat.peer import ChatPeer, user_error
from netassist.chat.protocol import (
    Address,
    ChatError,
    ChatSettings,
    Delivered,
    Dropped,
    Event,
    JoinUnanswered,
    PeerInfo,
    Received,
    Sent,
    Undelivered,
)
from netassist.errors import ExitCode, NetassistError, explain

#: How long ``chat send`` waits for members it was only told of (one may have left).
INTRODUCED_PATIENCE = 3.0
#: Messages (and events) kept in memory for ``/history N``.
HISTORY_KEPT = 10_000


def warn_now(count: int) -> bool:
    """Whether the ``count``-th drop of one reason is worth a warning line (the first ten,
    then every hundredth): a flood must not bury the conversation."""
    return count <= 10 or count % 100 == 0


@dataclass(frozen=True)
class RoomOptions:
    """Where a session sits and whom it meets (addresses as given, not yet resolved)."""

    name: str
    bind: tuple[str, int] = ("127.0.0.1", 0)
    peers: tuple[tuple[str, int], ...] = ()
    plain_peers: tuple[tuple[str, int], ...] = ()
    key: bytes | None = None
    discover_to: tuple[str, int] | None = None
    log: str | None = None
    settings: ChatSettings | None = None


class Session:
    """A running peer with its log and memory; see the module docstring."""

    def __init__(
        self,
        options: RoomOptions,
        *,
        say: Callable[[str], None],
        on_message: Callable[[dict], None] | None = None,
        show_own: bool = True,
        show_events: bool = True,
    ) -> None:
        self.options = options
        self.say = say
        self.on_message = on_message
        self.show_own = show_own
        self.show_events = show_events
        self.records: deque[dict] = deque(maxlen=HISTORY_KEPT)
        self.messages: dict[str, dict] = {}
        self.deliveries: dict[str, dict] = {}
        self.unanswered: list[Address] = []
        #: The --peer addresses, resolved: the members the user named.
        self.named: list[Address] = []
        self.discover_error: str | None = None
        self.log = ChatLog(options.log) if options.log else None
        try:
            self.peer = ChatPeer(
                options.name,
                options.bind,
                key=options.key,
                settings=options.settings,
                on_event=self._on_event,
            )
        except BaseException:
            if self.log:
                self.log.close()
            raise
        self.me = PeerInfo(self.peer.id, options.name, ("", 0))

    def start(self) -> Session:
        """Start the peer, then meet the room: plain peers, joins, discovery."""
        host, port = self.peer.sock.getsockname()[:2]
        self.me = PeerInfo(self.peer.id, self.peer.name, (host, port))
        self.peer.start()
        try:
            for host, port in self.options.plain_peers:
                self.peer.add_plain_peer(self.peer.target(host, port))
            for host, port in self.options.peers:
                self.named.append(self.peer.target(host, port))
                self.peer.join(self.named[-1])
            if self.options.discover_to is not None:
                self._discover(self.peer.target(*self.options.discover_to))
        except BaseException:
            self.peer.close(leave=False)
            if self.log:
                self.log.close()
            raise
        return self

    def _discover(self, broadcast: Address) -> None:
        self.peer.discover(broadcast)
        failure = self.peer.send_failures.get(broadcast)
        if failure is not None:
            where = f"{broadcast[0]}:{broadcast[1]}"
            self.discover_error = (
                f"{explain(failure, f'broadcasting to {where}')} (name your LAN's broadcast "
                f"address with --discover-to, as in 192.168.1.255:{broadcast[1]})"
            )
            if self.show_events:  # chat send reports it as its error instead
                self.say(f"warning: {self.discover_error}")

    def send(self, text: str, to: Iterable[str] | None = None) -> str:
        """Send ``text`` (privately to the member ids ``to``); raise :class:`NetassistError`
        when it cannot go (too long, no one there)."""
        try:
            return self.peer.send_text(text, None if to is None else list(to))
        except ChatError as exc:
            raise user_error(exc) from None

    def rename(self, name: str) -> None:
        """Take another name."""
        try:
            self.peer.rename(name)
        except ChatError as exc:
            raise user_error(exc) from None
        self.me = PeerInfo(self.me.id, name, self.me.address)

    def wait_for_room(self, timeout: float, *, introduced: float = INTRODUCED_PATIENCE) -> None:
        """Wait until every join was answered or given up (and, when discovering, the
        broadcasts are done or someone answered), at most ``timeout`` seconds; joins to
        members only introduced by others are waited for ``introduced`` seconds at most."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            joins, members = self.peer.joining()
            named = [a for a in joins.addresses if a in self.named]
            settled = not joins.unicast or time.monotonic() - start >= introduced
            if settled and not named and not (joins.broadcast and not members):
                return
            time.sleep(0.02)

    def history(self, last: int) -> list[str]:
        """The last ``last`` messages and events, each message with its mark as it is now."""
        chosen = list(self.records)[-last:] if last > 0 else []
        return [format_record(r, self.deliveries.get(str(r.get("id")))) for r in chosen]

    def close(self, *, grace: float = 0.0) -> None:
        """Wait up to ``grace`` seconds for our messages to be acknowledged, leave the room,
        and write the log out; then report drops and log trouble."""
        if grace > 0:
            self.peer.wait_settled(grace)
        self.peer.close()
        if self.log:
            self.log.close()
        dropped = self.peer.protocol.dropped
        if dropped:
            detail = ", ".join(f"{reason} {count}" for reason, count in dropped.most_common())
            self.say(f"dropped {sum(dropped.values())} datagrams in all: {detail}")
        if self.log and self.log.error:
            raise NetassistError(self.log.error, ExitCode.FILE)

    # --- events (on the peer's lock: quick, and never back into the peer) ------------------

    def _on_event(self, event: Event, ts: float) -> None:
        if isinstance(event, Dropped):
            if warn_now(event.count):
                self.say(
                    f"warning: dropped a datagram from {event.address[0]}:{event.address[1]}: "
                    f"{event.reason} ({event.count} so far)"
                )
            return
        if isinstance(event, JoinUnanswered):
            self.unanswered.append(event.address)
        if isinstance(event, Sent):
            self.me = PeerInfo(self.me.id, self.peer.protocol.name, self.me.address)
        record = to_record(event, ts, self.me)
        if record is None:
            return
        if self.log:
            self.log.write(record)
        if isinstance(event, Delivered | Undelivered):
            self.deliveries[event.id] = record
            if len(self.deliveries) > HISTORY_KEPT:
                del self.deliveries[next(iter(self.deliveries))]
            message = self.messages.pop(event.id, None)
            if message is not None and self.show_own:
                self.say(format_delivery(message, record))
            return
        self.records.append(record)
        if isinstance(event, Sent):
            if event.recipients:
                self.messages[event.id] = record
            if self.show_own:
                self.say(format_record(record))
        elif isinstance(event, Received):
            if self.on_message is not None:
                self.on_message(record)
            else:
                self.say(format_record(record))
        elif self.show_events:
            self.say(format_record(record))
