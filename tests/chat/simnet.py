"""A network in memory for the sans-IO chat protocol: peers, a virtual clock, and datagrams
dropped, duplicated and reordered at will, all from one seeded random generator."""

from __future__ import annotations

import heapq
import itertools
import random

from netassist import addresses
from netassist.chat.protocol import ChatProtocol, ChatSettings, Received


def parse_address(text: str) -> tuple[str, int] | None:
    """What the peer layer hands the protocol: :mod:`netassist.addresses`' reading."""
    parsed = addresses.parse(text)
    return parsed.host, parsed.port


class SimNet:
    """Peers ``0..n-1`` at addresses ``("10.0.0.i", 9000)``; :meth:`run` moves time on."""

    def __init__(
        self,
        names: list[str],
        *,
        seed: int = 0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        key: bytes | None = None,
        settings: ChatSettings | None = None,
    ) -> None:
        self.random = random.Random(seed)
        self.drop, self.duplicate, self.delay = drop, duplicate, delay
        self.now = 0.0
        self.peers = [
            ChatProtocol(
                name,
                key=key,
                settings=settings,
                peer_id=f"{self.random.getrandbits(64):016x}",
                parse_address=parse_address,
            )
            for name in names
        ]
        self.addresses = [(f"10.0.0.{i + 1}", 9000) for i in range(len(names))]
        self.index = {address: i for i, address in enumerate(self.addresses)}
        self.queue: list[tuple[float, int, int, tuple, bytes]] = []
        self.order = itertools.count()
        self.events: list[list] = [[] for _ in names]
        self.down: set[int] = set()
        #: (from, to) pairs whose datagrams are all lost: one-way trouble.
        self.blocked: set[tuple[int, int]] = set()

    def received(self, i: int) -> list[Received]:
        """What peer ``i`` showed, in order."""
        return [e for e in self.events[i] if isinstance(e, Received)]

    def pump(self) -> None:
        """Move every peer's outgoing datagrams into the network, and its events out."""
        for i, peer in enumerate(self.peers):
            for address, data in peer.take_datagrams():
                if i in self.down or address not in self.index:
                    continue
                if (i, self.index[address]) in self.blocked:
                    continue
                copies = 2 if self.random.random() < self.duplicate else 1
                for _ in range(copies):
                    if self.random.random() < self.drop:
                        continue
                    when = self.now + self.random.random() * self.delay
                    heapq.heappush(
                        self.queue,
                        (when, next(self.order), self.index[address], self.addresses[i], data),
                    )
            self.events[i].extend(peer.take_events())

    def run(self, until: float, *, stop=None) -> None:
        """Deliver datagrams and fire timers in time order up to ``until`` (virtual seconds),
        or until ``stop()`` is true."""
        self.pump()
        for _ in range(2_000_000):  # bounded, whatever happens
            if stop is not None and stop():
                return
            deadlines = [p.next_deadline() for i, p in enumerate(self.peers) if i not in self.down]
            deadlines = [d for d in deadlines if d is not None]
            next_time = min([*deadlines, *([self.queue[0][0]] if self.queue else [])], default=None)
            if next_time is None or next_time > until:
                self.now = until
                return
            self.now = max(self.now, next_time)
            while self.queue and self.queue[0][0] <= self.now:
                _, _, target, source, data = heapq.heappop(self.queue)
                if target not in self.down:
                    self.peers[target].receive(data, source, self.now)
            for i, peer in enumerate(self.peers):
                if i not in self.down:
                    peer.tick(self.now)
            self.pump()
        raise AssertionError("the simulation did not settle")

    def meet(self) -> None:
        """Every peer joins peer 0 only; introductions do the rest."""
        for i in range(1, len(self.peers)):
            self.peers[i].join(self.addresses[0], self.now)
        self.run(self.now + 30, stop=self.everyone_knows_everyone)

    def everyone_knows_everyone(self) -> bool:
        size = len(self.peers) - len(self.down) - 1
        return all(len(p.members) == size for i, p in enumerate(self.peers) if i not in self.down)
