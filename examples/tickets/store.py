"""Where the tickets live: one small storage interface, two back ends.

The tutorial sold 20 tickets from two threads that shared a global ``ticket``, saw ``-1``
left, and fixed it with ``threading.Lock``. Then it learned that processes share no globals.
``netassist run --workers 4`` forks four processes: each would have its own ``ticket`` and
its own lock, and together they would sell 80 of the 20. So the count lives in a database,
and the database decides, in one short transaction per sale, who gets which ticket:

    UPDATE events SET remaining = remaining - 1
     WHERE id = ? AND remaining > 0
    RETURNING count - remaining, remaining      -- the ticket's number, what is left
    INSERT INTO tickets (event_id, number, buyer, idempotency_key, sold_at) VALUES (...)

The ``UPDATE`` is the tutorial's ``if ticket > 0: ticket -= 1`` done as one step that no
other process can come between; the schema refuses what must never happen (a negative
count, a number sold twice, a second ticket for the same buyer, a key used twice).

:class:`Store` holds the sale, written once. A back end only says how to open a
connection, begin a transaction and make its tables: :mod:`tickets.sqlite` (a file; each
sale a ``BEGIN IMMEDIATE`` transaction) and :mod:`tickets.postgres` (psycopg 3 with a pool
per worker process). :func:`open_store` picks one from a ``DATABASE_URL``.
"""

from __future__ import annotations

import datetime
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AlreadyBought",
    "Event",
    "KeyReused",
    "NoSuchEvent",
    "Sale",
    "SoldOut",
    "Store",
    "StoreError",
    "Ticket",
    "Unavailable",
    "open_store",
]


@dataclass(frozen=True)
class Event:
    """An event and how many of its tickets are left."""

    id: int
    name: str
    count: int
    remaining: int

    @property
    def sold(self) -> int:
        """Tickets sold so far."""
        return self.count - self.remaining

    def as_json(self) -> dict[str, Any]:
        """The event as the API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "count": self.count,
            "sold": self.sold,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class Ticket:
    """One sold ticket. Tickets are numbered 1..count in the order they were sold, so
    ticket ``number`` left ``count - number`` behind it."""

    event: int
    number: int
    buyer: str
    sold_at: float
    remaining: int

    def as_json(self) -> dict[str, Any]:
        """The ticket as the API shows it."""
        moment = datetime.datetime.fromtimestamp(self.sold_at, datetime.UTC)
        return {
            "ticket": self.number,
            "event": self.event,
            "buyer": self.buyer,
            "remaining": self.remaining,
            "sold_at": moment.isoformat(timespec="milliseconds"),
        }


@dataclass(frozen=True)
class Sale:
    """The answer to a purchase: the ticket, and whether it was sold by an earlier request
    with the same idempotency key (a retry gets the same ticket, not a second one)."""

    ticket: Ticket
    replayed: bool = False


class StoreError(Exception):
    """A purchase or a look-up that cannot be done as asked."""


class NoSuchEvent(StoreError):
    """No event has that id."""


class SoldOut(StoreError):
    """Every ticket of the event is sold (the tutorial's 票卖完了)."""


class AlreadyBought(StoreError):
    """This buyer holds a ticket of this event already (one each)."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__(f"{ticket.buyer} already holds ticket {ticket.number}")
        self.ticket = ticket


class KeyReused(StoreError):
    """The idempotency key belongs to another purchase (another event or buyer)."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__("that idempotency key was used for another purchase")
        self.ticket = ticket


class Unavailable(StoreError):
    """The database cannot be reached or did not answer in time."""


# The sale and the look-ups, written once for both back ends. ``?`` is the placeholder;
# a back end whose driver wants another (psycopg: %s) sets PLACEHOLDER.
_TICKET_COLUMNS = "t.event_id, t.number, t.buyer, t.sold_at, e.count - t.number"
SQL = {
    "create": "INSERT INTO events (name, count, remaining, created) VALUES (?, ?, ?, ?)"
    " RETURNING id",
    "event": "SELECT id, name, count, remaining FROM events WHERE id = ?",
    "events": "SELECT id, name, count, remaining FROM events ORDER BY id",
    "take": "UPDATE events SET remaining = remaining - 1 WHERE id = ? AND remaining > 0"
    " RETURNING count - remaining, remaining",
    "insert": "INSERT INTO tickets (event_id, number, buyer, idempotency_key, sold_at)"
    " VALUES (?, ?, ?, ?, ?)",
    "by_key": f"SELECT {_TICKET_COLUMNS}, t.idempotency_key FROM tickets t"
    " JOIN events e ON e.id = t.event_id WHERE t.idempotency_key = ?",
    "by_buyer": f"SELECT {_TICKET_COLUMNS} FROM tickets t JOIN events e ON e.id = t.event_id"
    " WHERE t.event_id = ? AND t.buyer = ?",
    "tickets": f"SELECT {_TICKET_COLUMNS} FROM tickets t JOIN events e ON e.id = t.event_id"
    " WHERE t.event_id = ? ORDER BY t.number",
}


# The tickets table is the same text for both back ends (SQLite reads BIGINT as INTEGER and
# DOUBLE PRECISION as REAL). Its keys are the rules: a number is sold once per event, a buyer
# holds one ticket per event, an idempotency key names one purchase.
TICKETS_TABLE = """
CREATE TABLE IF NOT EXISTS tickets (
    event_id BIGINT NOT NULL REFERENCES events (id),
    number INTEGER NOT NULL CHECK (number > 0),
    buyer TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    sold_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, number),
    UNIQUE (event_id, buyer)
)"""
# What an events table must say, after its id column (whose type each back end writes).
EVENTS_COLUMNS = """
    name TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count > 0),
    remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= count),
    created DOUBLE PRECISION NOT NULL
)"""


class Store:
    """The storage interface: create and read events, sell a ticket, list the holders.

    A back end subclasses it and gives :meth:`transaction` (one connection of this thread
    in a transaction that commits when the block ends and rolls back when it raises),
    :attr:`INTEGRITY_ERRORS` (what its driver raises when a constraint refuses a row) and
    :meth:`close`. Nothing is opened before the first call, so a store made at import time
    in a pre-fork master opens its connections in each worker, after the fork.
    """

    PLACEHOLDER: ClassVar[str] = "?"
    INTEGRITY_ERRORS: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self) -> None:
        self.sql = {name: text.replace("?", self.PLACEHOLDER) for name, text in SQL.items()}

    # --- what a back end provides -----------------------------------------------------------

    def transaction(self, write: bool = True) -> AbstractContextManager[Any]:
        """A connection (anything with ``execute(sql, params)`` returning a cursor) inside a
        transaction; ``write=False`` for one that only reads (SQLite then takes no lock).
        Raises Unavailable when the database cannot be had."""
        raise NotImplementedError

    def close(self) -> None:
        """Close this process's connections."""
        raise NotImplementedError

    # --- the interface ------------------------------------------------------------------------

    def create_event(self, name: str, count: int) -> Event:
        """A new event with ``count`` tickets, none sold."""
        with self.transaction() as db:
            (event_id,) = db.execute(
                self.sql["create"], (name, count, count, time.time())
            ).fetchone()
        return Event(event_id, name, count, count)

    def event(self, event_id: int) -> Event:
        """The event ``event_id`` as it is now (NoSuchEvent if there is none)."""
        with self.transaction(write=False) as db:
            row = db.execute(self.sql["event"], (event_id,)).fetchone()
        if row is None:
            raise NoSuchEvent(f"no event {event_id}")
        return Event(*row)

    def events(self) -> list[Event]:
        """Every event, oldest first."""
        with self.transaction(write=False) as db:
            return [Event(*row) for row in db.execute(self.sql["events"], ()).fetchall()]

    def tickets(self, event_id: int) -> list[Ticket]:
        """The event's sold tickets in the order they were sold (NoSuchEvent if none)."""
        with self.transaction(write=False) as db:
            if db.execute(self.sql["event"], (event_id,)).fetchone() is None:
                raise NoSuchEvent(f"no event {event_id}")
            return [Ticket(*row) for row in db.execute(self.sql["tickets"], (event_id,))]

    def buy(self, event_id: int, buyer: str, key: str | None = None) -> Sale:
        """Sell one ticket of ``event_id`` to ``buyer``, in one short transaction.

        ``key`` is the request's idempotency key: if a purchase with that key was made
        already, its ticket is returned again (``replayed``) and nothing is sold. Raises
        SoldOut, NoSuchEvent, AlreadyBought (one ticket per buyer) or KeyReused (the key
        belongs to another event or buyer).
        """
        try:
            with self.transaction() as db:
                if key is not None:
                    earlier = self._by_key(db, key, event_id, buyer)
                    if earlier is not None:
                        return Sale(earlier, replayed=True)
                taken = db.execute(self.sql["take"], (event_id,)).fetchone()
                if taken is None:
                    if db.execute(self.sql["event"], (event_id,)).fetchone() is None:
                        raise NoSuchEvent(f"no event {event_id}")
                    raise SoldOut(f"event {event_id} is sold out")
                number, remaining = taken
                now = time.time()
                db.execute(self.sql["insert"], (event_id, number, buyer, key, now))
                return Sale(Ticket(event_id, number, buyer, now, remaining))
        except self.INTEGRITY_ERRORS:
            # A unique constraint refused the ticket, and the whole sale was rolled back
            # (the count too). Either this buyer has a ticket already, or a request with
            # the same key won the race (PostgreSQL lets both read before either commits).
            pass
        with self.transaction(write=False) as db:
            if key is not None:
                earlier = self._by_key(db, key, event_id, buyer)
                if earlier is not None:
                    return Sale(earlier, replayed=True)
            row = db.execute(self.sql["by_buyer"], (event_id, buyer)).fetchone()
        if row is None:  # a constraint refused it, and yet nobody holds it: say so
            raise StoreError(f"the sale to {buyer!r} was refused by the database")
        raise AlreadyBought(Ticket(*row))

    def _by_key(self, db: Any, key: str, event_id: int, buyer: str) -> Ticket | None:
        row = db.execute(self.sql["by_key"], (key,)).fetchone()
        if row is None:
            return None
        ticket = Ticket(*row[:5])
        if (ticket.event, ticket.buyer) != (event_id, buyer):
            raise KeyReused(ticket)
        return ticket


def open_store(url: str) -> Store:
    """The store a ``DATABASE_URL`` names: ``sqlite:///relative/file.sqlite3``,
    ``sqlite:////absolute/file.sqlite3`` (as SQLAlchemy writes them) or
    ``postgresql://user:password@host:port/database``. Nothing is connected yet."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from tickets.sqlite import SQLiteStore

        return SQLiteStore(_sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        from tickets.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"DATABASE_URL {redact(url)!r} is neither sqlite:///FILE nor postgresql://...")


def _sqlite_path(url: str) -> str:
    rest = url.partition(":")[2]
    if not rest.startswith("///") or rest == "///":
        raise ValueError(
            f"DATABASE_URL {url!r}: write sqlite:///relative/file.sqlite3 or"
            " sqlite:////absolute/file.sqlite3"
        )
    return rest[3:]


def redact(url: str) -> str:
    """``url`` without a password, for a message."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, credentials = head.partition("://")
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{tail}" if sep else url
