"""The chat protocol, sans-IO: datagrams in, events and datagrams out.

Specified in ``docs/chat-protocol.md``. :class:`ChatProtocol` never touches a socket or a
clock: the caller feeds it what arrived (:meth:`~ChatProtocol.receive`), what the user did
(:meth:`~ChatProtocol.send_text`, :meth:`~ChatProtocol.rename`, :meth:`~ChatProtocol.leave`)
and the time (:meth:`~ChatProtocol.tick`), then takes the datagrams to send
(:meth:`~ChatProtocol.take_datagrams`) and the events to show
(:meth:`~ChatProtocol.take_events`). Any bytes at all may be fed to ``receive``: what is not
this protocol is dropped and counted, never raised.

Theory of operation
-------------------
UDP loses, duplicates and reorders datagrams. Each peer (one run of ``netassist chat``) has a
random 16-hex-digit id; a restarted peer has a new one. A message has a unique ``id``
(``SENDERID-N``) and, towards each recipient, a sequence number ``seq`` that counts the
messages this sender sent to that recipient (1, 2, 3, ...): the receiver shows a sender's
messages in ``seq`` order, holding back any that arrive early, and drops what it has seen
(by ``seq`` and by ``id``). The receiver acknowledges every copy it gets with the ``seq`` and
``upto``, the first ``seq`` it has not received yet (a cumulative acknowledgement, so one ack
that arrives makes up for earlier ones that were lost). The sender sends each message again
with a doubling delay until it is acknowledged or out of tries, with at most ``window``
messages unacknowledged per recipient; an ack for a later ``seq`` sends the lower ones still
unacknowledged again at once (they were most likely lost). A message the sender gave up on
would hold back the ones after it forever, so every message and ping carries ``base``: the
lowest ``seq`` the sender still tries to deliver; a receiver waits for nothing below it.
Each run of ``seq`` numbers has a stream id, ``sid``: a sender that dropped a member and
admits it again starts a new stream from 1, which the receiver must not take for copies of
the old one.

Membership: a peer introduces itself with ``join``, sent again until the other answers with
``peers``, the list of the members it knows, to whom the newcomer introduces itself in turn:
knowing one member is enough to meet the room. Members ``ping`` each other every few
seconds; one not heard from within ``peer_timeout`` has left, as has one that says ``leave``.
A ``join`` from a new id at the address of a known member is that member restarted: it
replaces the old one (``Rejoined``), and the messages still owed to the old one go to it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: A peer's address as the socket layer gives it: ``(host, port)``.
Address = tuple[str, int]

MAGIC = b"NACH"
VERSION = 1
FLAG_MAC = 0x01
#: magic, version, flags, length of the JSON header.
PREFIX = struct.Struct(">4sBBH")
MAC_SIZE = 32
#: The largest UDP payload over IPv4.
MAX_DATAGRAM = 65507
#: The longest message text, in bytes of UTF-8 (60 KiB: with its header it fits a datagram).
MAX_TEXT = 60 * 1024
#: The longest name one may choose (characters); names from the wire may be up to MAX_WIRE_NAME.
MAX_NAME = 32
MAX_WIRE_NAME = 64
#: The most members one peer keeps, and lists in a ``peers`` answer.
MAX_MEMBERS = 256
TYPES = ("msg", "ack", "join", "peers", "ping", "leave")
_ID = re.compile(r"[0-9a-f]{16}\Z")
_STREAM = re.compile(r"[0-9a-f]{8}\Z")
_MAX_NUMBER = 2**53
# Characters a name must not hold: controls, invisible formatting, separators, spaces.
_BAD_NAME = re.compile(
    "[\\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff/]"
)


class ChatError(ValueError):
    """Something the user asked of the chat cannot be done (the message says what)."""


class TooLong(ChatError):
    """A message longer than :data:`MAX_TEXT` bytes of UTF-8."""


class Malformed(Exception):
    """A datagram that is not this protocol; ``reason`` is what the warning says."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChatSettings:
    """The protocol's timing and limits (seconds and counts); the defaults suit a LAN."""

    #: First retransmission delay, doubled after each try up to ``rto_max``.
    rto_initial: float = 0.25
    rto_max: float = 2.0
    #: Tries of one message to one recipient before it is marked undelivered to it.
    max_tries: int = 16
    #: Messages in flight (unacknowledged) per recipient; more wait their turn.
    window: int = 32
    #: Tries of a ``join`` before the address is reported as not answering.
    join_tries: int = 6
    ping_interval: float = 2.0
    #: A member not heard from for this long has left.
    peer_timeout: float = 10.0
    #: Messages held back per sender while an earlier one is missing.
    hold_max: int = 4096


def check_name(name: str) -> str:
    """``name`` if a peer may call itself that, else :class:`ChatError` saying why."""
    if not name:
        raise ChatError("a name cannot be empty")
    if len(name) > MAX_NAME:
        raise ChatError(f"a name has at most {MAX_NAME} characters")
    if _BAD_NAME.search(name):
        raise ChatError("a name has no spaces, slashes or control characters")
    return name


def format_address(address: Address) -> str:
    """``host:port``, or ``[v6]:port``: how addresses travel in a ``peers`` list."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: Reads an address of a ``peers`` list (``None``: not one). The protocol parses none itself:
#: the caller hands it ``netassist.addresses``' parser, the one parser of addresses.
AddressParser = Callable[[str], "Address | None"]


# --- datagrams ------------------------------------------------------------------------------


def encode(header: dict, body: bytes = b"", key: bytes | None = None) -> bytes:
    """One datagram: prefix, the HMAC when there is a key, the JSON header, the body."""
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    prefix = PREFIX.pack(MAGIC, VERSION, FLAG_MAC if key else 0, len(head))
    if key is None:
        return prefix + head + body
    mac = hmac.new(key, prefix + head + body, hashlib.sha256).digest()
    return prefix + mac + head + body


def decode(data: bytes, key: bytes | None = None) -> tuple[dict, bytes]:
    """The header and body of a datagram, or :class:`Malformed` saying what is wrong."""
    if len(data) > MAX_DATAGRAM:
        raise Malformed("too large")
    if len(data) < PREFIX.size or not data.startswith(MAGIC):
        raise Malformed("not a chat datagram")
    _magic, version, flags, length = PREFIX.unpack_from(data)
    if version != VERSION:
        raise Malformed(f"protocol version {version}, not {VERSION}")
    if flags & ~FLAG_MAC:
        raise Malformed("unknown flags")
    start = PREFIX.size
    if flags & FLAG_MAC:
        if key is None:
            raise Malformed("signed with a key (start with the room's --key)")
        mac, start = data[start : start + MAC_SIZE], start + MAC_SIZE
        expected = hmac.new(key, data[: PREFIX.size] + data[start:], hashlib.sha256).digest()
        if len(mac) != MAC_SIZE or not hmac.compare_digest(mac, expected):
            raise Malformed("wrong key")
    elif key is not None:
        raise Malformed("not signed (the sender has no --key)")
    if start + length > len(data):
        raise Malformed("header cut short")
    try:
        header = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Malformed("bad JSON header") from None
    if not isinstance(header, dict):
        raise Malformed("bad JSON header")
    return header, data[start + length :]


def _field(header: dict, name: str, kind: type, *, optional: bool = False):
    value = header.get(name)
    if value is None and optional:
        return None
    if type(value) is not kind:  # bool is not an int here
        raise Malformed(f"bad field {name!r}")
    return value


def _peer_id(header: dict, name: str = "from") -> str:
    value = _field(header, name, str)
    if not _ID.match(value):
        raise Malformed(f"bad field {name!r}")
    return value


def _stream_id(header: dict) -> str:
    value = _field(header, "sid", str)
    if not _STREAM.match(value):
        raise Malformed("bad field 'sid'")
    return value


def _number(header: dict, name: str, *, low: int = 1) -> int:
    value = _field(header, name, int)
    if not low <= value < _MAX_NUMBER:
        raise Malformed(f"bad field {name!r}")
    return value


def _wire_name(header: dict) -> str:
    value = _field(header, "name", str)
    if not 0 < len(value) <= MAX_WIRE_NAME:
        raise Malformed("bad field 'name'")
    return value


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A member as this peer knows it; a plain peer has the id ``""``."""

    id: str
    name: str
    address: Address

    @property
    def where(self) -> str:
        """Its address as text."""
        return format_address(self.address)


@dataclass(frozen=True, slots=True)
class Joined:
    """A new member."""

    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class Rejoined:
    """A member restarted: ``peer`` replaces ``old``."""

    peer: PeerInfo
    old: PeerInfo


@dataclass(frozen=True, slots=True)
class Left:
    """A member left: ``reason`` is ``"quit"`` (it said so) or ``"silent"`` (timed out)."""

    peer: PeerInfo
    reason: str


@dataclass(frozen=True, slots=True)
class Renamed:
    """A member took another name."""

    peer: PeerInfo
    old_name: str


@dataclass(frozen=True, slots=True)
class JoinUnanswered:
    """Nothing answered our ``join`` at ``address``."""

    address: Address


@dataclass(frozen=True, slots=True)
class Received:
    """A message to show: in order per sender, exactly once. ``plain`` is a datagram of a
    ``--plain-peer`` (no id, no order, no acknowledgement)."""

    id: str
    sender: PeerInfo
    text: str
    private: bool = False
    plain: bool = False


@dataclass(frozen=True, slots=True)
class Sent:
    """Our message went out to ``recipients`` (and, unacknowledged, to ``plain``)."""

    id: str
    text: str
    recipients: tuple[PeerInfo, ...]
    private: bool = False
    plain: tuple[PeerInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivered:
    """Every recipient acknowledged our message."""

    id: str
    recipients: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Some recipients never acknowledged it: ``missing`` pairs each with why."""

    id: str
    delivered: tuple[PeerInfo, ...]
    missing: tuple[tuple[PeerInfo, str], ...]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A datagram was dropped; ``count`` is how many were dropped for ``reason`` so far."""

    address: Address
    reason: str
    count: int


Event = (
    Joined
    | Rejoined
    | Left
    | Renamed
    | JoinUnanswered
    | Received
    | Sent
    | Delivered
    | Undelivered
    | Dropped
)


# --- state ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Outgoing:
    """One message of ours and where it stands with each recipient."""

    id: str
    text: bytes
    private: bool
    #: recipient id -> "pending", "acked" or why it failed.
    states: dict[str, str]
    #: recipient id -> who it was (kept after the member leaves).
    who: dict[str, PeerInfo]
    done: bool = False


@dataclass(eq=False)
class _Try:
    entry: _Outgoing
    seq: int
    tries: int
    due: float
    rto: float
    #: Sent again early since its last timed send (see _on_ack): once per try at most.
    hurried: bool = False


def _new_stream_id() -> str:
    return secrets.token_hex(4)


@dataclass(eq=False)
class _OutStream:
    #: Names this run of sequence numbers: a member dropped and admitted again gets a new
    #: stream from 1, and its receiver must know it is not the old one.
    sid: str = field(default_factory=_new_stream_id)
    next_seq: int = 1
    flying: dict[int, _Try] = field(default_factory=dict)
    waiting: deque[_Outgoing] = field(default_factory=deque)

    @property
    def base(self) -> int:
        return min(self.flying) if self.flying else self.next_seq


@dataclass(eq=False)
class _InStream:
    sid: str | None = None
    expected: int = 1
    held: dict[int, tuple[str, str, bool]] = field(default_factory=dict)


@dataclass(eq=False)
class _Member:
    id: str
    name: str
    address: Address
    last_seen: float
    pinged: float
    out: _OutStream = field(default_factory=_OutStream)
    inbound: _InStream = field(default_factory=_InStream)

    @property
    def info(self) -> PeerInfo:
        return PeerInfo(self.id, self.name, self.address)


@dataclass(eq=False)
class _Join:
    tries: int
    due: float
    rto: float
    limit: int
    broadcast: bool = False


@dataclass(frozen=True, slots=True)
class Joining:
    """How many joins wait for an answer."""

    unicast: int
    broadcast: int
    #: Where the joins to single peers went.
    addresses: tuple[Address, ...] = ()


#: Tries of a ``join`` to a broadcast address (as IP Messenger does at start).
BROADCAST_TRIES = 3


#: How many message ids are remembered to drop duplicates by id.
_SEEN_IDS = 100_000


class ChatProtocol:
    """One peer of a room: membership, reliable ordered messages, and their bookkeeping."""

    def __init__(
        self,
        name: str,
        *,
        key: bytes | None = None,
        settings: ChatSettings | None = None,
        peer_id: str | None = None,
        parse_address: AddressParser | None = None,
    ) -> None:
        self.name = check_name(name)
        self._parse_address = parse_address
        self.id = peer_id or secrets.token_hex(8)
        self.key = key
        self.settings = settings or ChatSettings()
        self.members: dict[str, _Member] = {}
        self.plain_peers: dict[Address, PeerInfo] = {}
        self._by_address: dict[Address, str] = {}
        self._joins: dict[Address, _Join] = {}
        self._number = 0
        self._plain_count = 0
        self._outgoing: dict[str, _Outgoing] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._datagrams: list[tuple[Address, bytes]] = []
        self._events: list[Event] = []
        self.dropped: Counter[str] = Counter()
        self.duplicates = 0
        self.retransmits = 0
        self.left = False

    # --- what the caller takes ------------------------------------------------------------

    def take_datagrams(self) -> list[tuple[Address, bytes]]:
        """The datagrams to send now, each with its destination; the list is emptied."""
        out, self._datagrams = self._datagrams, []
        return out

    def take_events(self) -> list[Event]:
        """What happened since the last call, in order; the list is emptied."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has work next (in the caller's clock), or ``None``."""
        times = [join.due for join in self._joins.values()]
        for member in self.members.values():
            times.append(member.pinged + self.settings.ping_interval)
            times.append(member.last_seen + self.settings.peer_timeout)
            times.extend(attempt.due for attempt in member.out.flying.values())
        return min(times) if times else None

    @property
    def joining(self) -> Joining:
        """Joins still waiting for an answer, to single peers and to broadcast addresses."""
        single = tuple(a for a, join in self._joins.items() if not join.broadcast)
        return Joining(len(single), len(self._joins) - len(single), single)

    @property
    def pending(self) -> int:
        """Our messages not yet delivered or given up."""
        return sum(1 for entry in self._outgoing.values() if not entry.done)

    def find(self, name: str) -> list[PeerInfo]:
        """The members called ``name``."""
        return [m.info for m in self.members.values() if m.name == name]

    def peers(self) -> list[PeerInfo]:
        """Every member, and every plain peer (id ``""``)."""
        return [m.info for m in self.members.values()] + list(self.plain_peers.values())

    # --- what the user does ---------------------------------------------------------------

    def join(self, address: Address, now: float, *, broadcast: bool = False) -> None:
        """Introduce ourselves at ``address`` (again and again until it answers).

        ``broadcast``: the address is a broadcast address; answers come from elsewhere, and
        silence is not reported.
        """
        if address in self._joins or address in self._by_address:
            return
        limit = BROADCAST_TRIES if broadcast else self.settings.join_tries
        self._joins[address] = _Join(0, now, self.settings.rto_initial * 2, limit, broadcast)
        self._send_join(address, now)

    def add_plain_peer(self, address: Address) -> None:
        """A peer that speaks plain text datagrams (the tutorial's program)."""
        self.plain_peers[address] = PeerInfo("", format_address(address), address)

    def send_text(self, text: str, now: float, to: list[str] | None = None) -> str:
        """Send ``text`` to the room (or to the member ids ``to``, privately); its id.

        Raises :class:`TooLong` for more than :data:`MAX_TEXT` bytes of UTF-8, and
        :class:`ChatError` when there is no one to send it to.
        """
        body = text.encode("utf-8", "surrogatepass")
        if len(body) > MAX_TEXT:
            raise TooLong(
                f"message too long: {len(body):,} bytes of UTF-8, at most {MAX_TEXT:,} "
                "(60 KiB); send it in parts"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ChatError("the message holds characters UTF-8 cannot carry") from None
        private = to is not None
        members = (
            [self.members[i] for i in to if i in self.members] if private else self.members.values()
        )
        members = list(members)
        plain = () if private else tuple(self.plain_peers.values())
        if not members and not plain:
            raise ChatError(
                "no one to send it to: nobody is in the room yet"
                if not private
                else "no such member in the room"
            )
        self._number += 1
        entry = _Outgoing(
            f"{self.id}-{self._number}",
            body,
            private,
            {m.id: "pending" for m in members},
            {m.id: m.info for m in members},
        )
        self._outgoing[entry.id] = entry
        for peer in plain:
            self._datagrams.append((peer.address, body))
        self._events.append(Sent(entry.id, text, tuple(m.info for m in members), private, plain))
        for member in members:
            member.out.waiting.append(entry)
            self._fill_window(member, now)
        if not members:
            entry.done = True
            self._outgoing.pop(entry.id)
        return entry.id

    def rename(self, name: str, now: float) -> None:
        """Take another name and tell every member at once."""
        self.name = check_name(name)
        for member in self.members.values():
            self._ping(member, now)

    def leave(self, now: float) -> None:
        """Say goodbye to every member (twice: it is not acknowledged); what is still
        undelivered is given up."""
        self.left = True
        for member in list(self.members.values()):
            for _ in range(2):
                self._send(member.address, {"t": "leave", "name": self.name})
            self._fail_all(member, "we left before it was acknowledged")
        self.members.clear()
        self._by_address.clear()
        self._joins.clear()

    # --- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Do what is due: retransmissions, joins, pings, and members timed out."""
        for address, join in list(self._joins.items()):
            if join.due <= now:
                if join.tries >= join.limit:
                    del self._joins[address]
                    if not join.broadcast:
                        self._events.append(JoinUnanswered(address))
                else:
                    self._send_join(address, now)
        for member in list(self.members.values()):
            if member.last_seen + self.settings.peer_timeout <= now:
                self._remove(member, Left(member.info, "silent"), "it went silent")
                continue
            self._retransmit(member, now)
            if member.pinged + self.settings.ping_interval <= now:
                self._ping(member, now)

    def _retransmit(self, member: _Member, now: float) -> None:
        gave_up = False
        for seq, attempt in list(member.out.flying.items()):
            if attempt.due > now:
                continue
            if attempt.tries >= self.settings.max_tries:
                del member.out.flying[seq]
                why = f"no acknowledgement after {attempt.tries} tries"
                self._settle(attempt.entry, member.id, why)
                gave_up = True
                continue
            self.retransmits += 1
            self._send_message(member, attempt, now)
        if gave_up:
            self._fill_window(member, now)
            self._ping(member, now)  # its new base, so the receiver stops waiting

    # --- what arrives ---------------------------------------------------------------------

    def receive(self, data: bytes, address: Address, now: float) -> None:
        """Take one datagram that arrived from ``address``. Never raises."""
        if address in self.plain_peers:
            peer = self.plain_peers[address]
            self._plain_count += 1
            text = data.decode("utf-8", "backslashreplace")
            message_id = f"{peer.name}#{self._plain_count}"
            self._events.append(Received(message_id, peer, text, plain=True))
            return
        try:
            header, body = decode(data, self.key)
            kind = _field(header, "t", str)
            if kind not in TYPES:
                raise Malformed(f"unknown type {kind[:20]!r}")
            sender = _peer_id(header)
            if sender == self.id:
                return  # our own broadcast, come back
            if self.left:
                return
            handler = getattr(self, f"_on_{kind}")
            handler(header, body, sender, address, now)
        except Malformed as exc:
            self._drop(address, exc.reason)

    def _drop(self, address: Address, reason: str) -> None:
        self.dropped[reason] += 1
        self._events.append(Dropped(address, reason, self.dropped[reason]))

    def _known(self, sender: str, address: Address, now: float) -> _Member | None:
        """The member ``sender``, refreshed; ``None`` if unknown. A known id from another
        address is forged (a restarted peer has a new id)."""
        member = self.members.get(sender)
        if member is None:
            return None
        if member.address != address:
            raise Malformed("forged sender (a member's id from another address)")
        member.last_seen = now
        self._joins.pop(address, None)
        return member

    def _for_me(self, header: dict, address: Address, now: float) -> None:
        if _peer_id(header, "dst") != self.id:
            # Meant for an earlier run of ours at this address: say who we are now.
            if address not in self._by_address:
                self.join(address, now)
            raise _Stale

    def _on_join(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        name = _wire_name(header)
        member = self._known(sender, address, now) or self._admit(sender, name, address, now)
        self._rename(member, name)
        self._send_peers(member, address)

    def _on_peers(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        name = _wire_name(header)
        listed = _field(header, "peers", list)
        member = self._known(sender, address, now) or self._admit(sender, name, address, now)
        self._rename(member, name)
        for item in listed[:MAX_MEMBERS]:
            if not isinstance(item, dict):
                continue
            other, where = item.get("id"), item.get("addr")
            if not isinstance(other, str) or not isinstance(where, str):
                continue
            if other == self.id or other in self.members or not _ID.match(other):
                continue
            target = self._parse_address(where) if self._parse_address else None
            if target is not None and len(self.members) < MAX_MEMBERS:
                self.join(target, now)

    def _on_ping(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        name = _wire_name(header)
        sid = _stream_id(header)
        try:
            self._for_me(header, address, now)
        except _Stale:
            return
        member = self._known(sender, address, now)
        if member is None:  # it knows us, we had lost it: it is back
            member = self._admit(sender, name, address, now)
            self._send_peers(member, address)
        self._rename(member, name)
        base = header.get("base")
        if type(base) is int and 1 <= base < _MAX_NUMBER:
            self._inbound(member, sid)
            self._deliver(member, base)

    def _on_leave(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        member = self._known(sender, address, now)
        if member is not None:
            self._remove(member, Left(member.info, "quit"), "it left before acknowledging it")

    def _on_ack(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        seq, upto = _number(header, "seq"), _number(header, "upto")
        sid = _stream_id(header)
        try:
            self._for_me(header, address, now)
        except _Stale:
            return
        member = self._known(sender, address, now)
        if member is None or sid != member.out.sid:
            return  # for a stream of ours that is gone
        flying = member.out.flying
        done = [s for s in flying if s == seq or s < upto]
        for s in done:
            self._settle(flying.pop(s).entry, member.id, "acked")
        # A later seq came through while these did not: they were most likely lost, so
        # they go again now rather than when their timers run out (TCP's fast retransmit).
        # Once per try, so reordering costs at most one extra copy each.
        for s, attempt in flying.items():
            if s < seq and not attempt.hurried:
                self.retransmits += 1
                self._send_message(member, attempt, now, hurried=True)
        if done:
            self._fill_window(member, now)

    def _on_msg(self, header: dict, body: bytes, sender: str, address: Address, now: float):
        name = _wire_name(header)
        seq, number = _number(header, "seq"), _number(header, "n")
        base = _number(header, "base")
        sid = _stream_id(header)
        private = header.get("private") is True
        if len(body) > MAX_TEXT:
            raise Malformed("too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("text is not UTF-8") from None
        try:
            self._for_me(header, address, now)
        except _Stale:
            return
        member = self._known(sender, address, now)
        if member is None:
            member = self._admit(sender, name, address, now)
            self._send_peers(member, address)
        self._rename(member, name)
        stream = self._inbound(member, sid)
        self._deliver(member, base)  # nothing below base is waited for, or held against
        message_id = f"{sender}-{number}"
        if seq < stream.expected or seq in stream.held:
            self.duplicates += 1  # (a copy of an id already shown is dropped by _show)
        elif seq - stream.expected >= self.settings.hold_max:
            return  # too far ahead to hold: not acknowledged, so it comes again
        else:
            stream.held[seq] = (message_id, text, private)
        self._deliver(member, base)
        self._send(
            address,
            {"t": "ack", "dst": sender, "sid": sid, "seq": seq, "upto": stream.expected},
        )

    # --- helpers --------------------------------------------------------------------------

    def _admit(self, sender: str, name: str, address: Address, now: float) -> _Member:
        if len(self.members) >= MAX_MEMBERS:
            raise Malformed("room full")
        member = _Member(sender, name, address, now, now)
        old_id = self._by_address.get(address)
        old = self.members.get(old_id) if old_id else None
        if old is None:
            silent = [
                m
                for m in self.members.values()
                if m.name == name and now - m.last_seen > 2 * self.settings.ping_interval
            ]
            old = silent[0] if silent else None
        self.members[sender] = member
        if old is not None:
            self._replace(old, member)
            self._events.append(Rejoined(member.info, old.info))
        else:
            self._events.append(Joined(member.info))
        self._by_address[address] = sender
        self._joins.pop(address, None)
        self._fill_window(member, now)
        return member

    def _replace(self, old: _Member, new: _Member) -> None:
        """``new`` is ``old`` restarted: what we still owe ``old`` goes to ``new``."""
        del self.members[old.id]
        if self._by_address.get(old.address) == old.id:
            del self._by_address[old.address]
        owed = [attempt.entry for _, attempt in sorted(old.out.flying.items())]
        owed += list(old.out.waiting)
        for entry in owed:
            if entry.states.get(old.id) == "pending":
                del entry.states[old.id]
                entry.states[new.id] = "pending"
                entry.who[new.id] = new.info
                new.out.waiting.append(entry)

    def _remove(self, member: _Member, event: Left, why: str) -> None:
        del self.members[member.id]
        if self._by_address.get(member.address) == member.id:
            del self._by_address[member.address]
        self._events.append(event)
        self._fail_all(member, why)

    def _fail_all(self, member: _Member, why: str) -> None:
        entries = [attempt.entry for attempt in member.out.flying.values()]
        entries += list(member.out.waiting)
        member.out.flying.clear()
        member.out.waiting.clear()
        for entry in entries:
            self._settle(entry, member.id, why)

    def _rename(self, member: _Member, name: str) -> None:
        if member.name != name:
            old, member.name = member.name, name
            self._events.append(Renamed(member.info, old))

    def _settle(self, entry: _Outgoing, member_id: str, state: str) -> None:
        if entry.states.get(member_id) != "pending":
            return
        entry.states[member_id] = state
        if entry.done or "pending" in entry.states.values():
            return
        entry.done = True
        self._outgoing.pop(entry.id, None)
        delivered = tuple(entry.who[i] for i, s in entry.states.items() if s == "acked")
        missing = tuple((entry.who[i], s) for i, s in entry.states.items() if s != "acked")
        if missing:
            self._events.append(Undelivered(entry.id, delivered, missing))
        else:
            self._events.append(Delivered(entry.id, delivered))

    def _fill_window(self, member: _Member, now: float) -> None:
        out = member.out
        while out.waiting and len(out.flying) < self.settings.window:
            entry = out.waiting.popleft()
            if entry.states.get(member.id) != "pending":
                continue
            attempt = _Try(entry, out.next_seq, 0, now, self.settings.rto_initial)
            out.flying[out.next_seq] = attempt
            out.next_seq += 1
            self._send_message(member, attempt, now)

    def _send_message(
        self, member: _Member, attempt: _Try, now: float, *, hurried: bool = False
    ) -> None:
        attempt.hurried = hurried
        if not hurried:  # a hurried copy leaves the timer and the count of tries alone
            attempt.tries += 1
            attempt.due = now + attempt.rto
            attempt.rto = min(attempt.rto * 2, self.settings.rto_max)
        entry = attempt.entry
        header = {
            "t": "msg",
            "name": self.name,
            "dst": member.id,
            "n": int(entry.id.rpartition("-")[2]),
            "sid": member.out.sid,
            "seq": attempt.seq,
            "base": member.out.base,
        }
        if entry.private:
            header["private"] = True
        self._send(member.address, header, entry.text)

    def _inbound(self, member: _Member, sid: str) -> _InStream:
        """``member``'s stream to us; a new ``sid`` starts it again from 1 (the sender
        dropped us and admitted us anew), after what the old one held is shown."""
        stream = member.inbound
        if stream.sid != sid:
            if stream.sid is not None:
                for seq in sorted(stream.held):
                    self._show(member, stream.held.pop(seq))
                stream.expected = 1
            stream.sid = sid
        return stream

    def _deliver(self, member: _Member, base: int) -> None:
        """Show what is next in ``member``'s order; nothing below ``base`` is waited for."""
        stream = member.inbound
        if base > stream.expected:
            for seq in sorted(s for s in stream.held if s < base):
                self._show(member, stream.held.pop(seq))
            stream.expected = base
        while stream.expected in stream.held:
            self._show(member, stream.held.pop(stream.expected))
            stream.expected += 1

    def _show(self, member: _Member, held: tuple[str, str, bool]) -> None:
        message_id, text, private = held
        if message_id in self._seen:
            self.duplicates += 1
            return
        self._seen[message_id] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        self._events.append(Received(message_id, member.info, text, private))

    def _ping(self, member: _Member, now: float) -> None:
        member.pinged = now
        self._send(
            member.address,
            {
                "t": "ping",
                "name": self.name,
                "dst": member.id,
                "sid": member.out.sid,
                "base": member.out.base,
            },
        )

    def _send_join(self, address: Address, now: float) -> None:
        join = self._joins[address]
        join.tries += 1
        join.due = now + join.rto
        join.rto = min(join.rto * 2, self.settings.rto_max * 2)
        self._send(address, {"t": "join", "name": self.name})

    def _send_peers(self, member: _Member, address: Address) -> None:
        listed = [
            {"id": m.id, "name": m.name, "addr": format_address(m.address)}
            for m in self.members.values()
            if m is not member
        ][:MAX_MEMBERS]
        self._send(address, {"t": "peers", "name": self.name, "peers": listed})

    def _send(self, address: Address, header: dict, body: bytes = b"") -> None:
        header["from"] = self.id
        self._datagrams.append((address, encode(header, body, self.key)))


class _Stale(Exception):
    """A datagram meant for an earlier run of ours: dropped without a warning."""
