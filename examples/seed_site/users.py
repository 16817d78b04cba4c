"""The demo's accounts: a SQLite file, so that every worker process sees every sign-up.

Passwords are stored as PBKDF2-SHA256 hashes with a salt of their own, never as text. The
file also keeps the secret that signs the sign-in cookie, made on first use, so that every
worker (and the next start) signs alike. The file is ``$SEED_SITE_DB``, or
``netassist-seed-site.sqlite3`` in the temporary folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

ROUNDS = 120_000


def database() -> Path:
    """Where the accounts are kept."""
    named = os.environ.get("SEED_SITE_DB")
    return Path(named) if named else Path(tempfile.gettempdir()) / "netassist-seed-site.sqlite3"


def _connect() -> sqlite3.Connection:
    connection = sqlite3.connect(database(), timeout=10)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, email TEXT NOT NULL,"
        " salt BLOB NOT NULL, hash BLOB NOT NULL, created REAL NOT NULL)"
    )
    connection.execute("CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT)")
    return connection


def secret() -> str:
    """The cookie-signing secret kept in the file (made by the first process to ask)."""
    with _connect() as connection:
        connection.execute(
            "INSERT OR IGNORE INTO settings VALUES ('secret', ?)", (secrets.token_hex(32),)
        )
        (value,) = connection.execute("SELECT value FROM settings WHERE name = 'secret'").fetchone()
    connection.close()
    return value


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, ROUNDS)


def add(name: str, email: str, password: str) -> bool:
    """Create the account; False if the name is taken."""
    salt = secrets.token_bytes(16)
    with _connect() as connection:
        try:
            connection.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                (name, email, salt, _hash(password, salt), time.time()),
            )
        except sqlite3.IntegrityError:
            return False
    connection.close()
    return True


def check(name: str, password: str) -> bool:
    """Whether ``password`` is the account's (the same work is done for unknown names)."""
    with _connect() as connection:
        row = connection.execute("SELECT salt, hash FROM users WHERE name = ?", (name,)).fetchone()
    connection.close()
    salt, stored = row if row else (b"\0" * 16, b"")
    return hmac.compare_digest(_hash(password, salt), stored) and row is not None
