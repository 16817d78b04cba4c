"""The SQLite back end: one file that every worker process opens.

SQLite lets one writer in at a time, for the whole file, and that is what a sale needs:

- **WAL mode** (``PRAGMA journal_mode=WAL``): readers never wait for the writer, and a commit
  appends to the log instead of rewriting pages. ``synchronous=NORMAL`` syncs the log at
  checkpoints, not at every commit: a sale survives any process being killed (the log is in
  the file), and the last few could be lost only if the machine itself loses power.
- **BEGIN IMMEDIATE**: a sale takes the write lock when its transaction begins, before it
  reads anything. A plain ``BEGIN`` takes it at the first write; a transaction that read
  first (an idempotency key's look-up) and finds that another wrote since cannot upgrade,
  and fails at once with "database is locked", whatever the busy timeout.
- **a busy timeout**: a worker that finds the lock taken waits for it (up to
  ``busy_timeout`` seconds) instead of failing; sales are short, so the wait is too.

Each thread of each worker has its own connection (a sqlite3 connection belongs to the
thread that made it), made on its first call, after the fork.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tickets.store import EVENTS_COLUMNS, TICKETS_TABLE, Store, Unavailable

__all__ = ["SQLiteStore"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY," + EVENTS_COLUMNS,
    TICKETS_TABLE,
)


class SQLiteStore(Store):
    """Tickets in the SQLite file ``path`` (made, with its folder, on first use)."""

    INTEGRITY_ERRORS = (sqlite3.IntegrityError,)

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 30.0) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"the tickets example needs SQLite 3.35 or newer (for RETURNING);"
                f" this Python has {sqlite3.sqlite_version}"
            )
        super().__init__()
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._schema_made_by: int | None = None  # the pid that made sure of the tables

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self.path)!r}>"

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        # A thread's storage survives fork in the thread that forked: a connection made
        # before the fork belongs to the parent, so the pid is part of the key.
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self._open()
            local.pid = os.getpid()
        return local.connection

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: the module begins no transaction of its own; ours
            # are written out below.
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise Unavailable(f"cannot open the SQLite file {self.path}: {exc}") from exc
        if mode != "wal":
            connection.close()
            raise Unavailable(f"{self.path} cannot be put in WAL mode (it stays {mode!r})")
        if self._schema_made_by != os.getpid():
            with self._begun(connection, "BEGIN IMMEDIATE"):
                for statement in SCHEMA:
                    connection.execute(statement)
            self._schema_made_by = os.getpid()
        return connection

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's connection in ``BEGIN IMMEDIATE`` (``BEGIN`` to read)."""
        connection = self._connection()
        with self._begun(connection, "BEGIN IMMEDIATE" if write else "BEGIN"):
            yield connection

    @contextmanager
    def _begun(self, connection: sqlite3.Connection, begin: str) -> Iterator[None]:
        try:
            connection.execute(begin)
        except sqlite3.OperationalError as exc:  # the busy timeout ran out
            raise Unavailable(f"{self.path}: {exc}") from exc
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            connection.execute("ROLLBACK")
            raise Unavailable(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the calling thread's connection."""
        if getattr(self._local, "pid", None) == os.getpid():
            self._local.connection.close()
        self._local = threading.local()
