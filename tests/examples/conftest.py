"""Fixtures for the examples' tests: the tickets app under ``netassist run``, on SQLite and
on a PostgreSQL of its own (a fresh database per test, in a throw-away cluster)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts"
LISTENING = r"listening on http://127\.0\.0\.1:(\d+)"
# The examples are imported as netassist run imports them, from their folder.
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database: the cluster .ci/run started
    ($TICKETS_TEST_DATABASE_URL), else one of our own for this test session."""
    named = os.environ.get("TICKETS_TEST_DATABASE_URL")
    if named:
        yield named
        return
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    from tests.examples.postgres import Cluster, programs

    if programs() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs the postgresql package)")
    cluster = Cluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    import psycopg

    name = f"tickets_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each back end in turn: a SQLite file in the test's folder, then a fresh PostgreSQL
    database (skipped, with the reason, where PostgreSQL is missing)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tickets.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def tickets(netassist):
    """Start the tickets app with ``netassist run`` (4 workers, 4 threads each, unless told
    otherwise); returns (process, port)."""

    def start(database_url: str, *flags: str, bind: str = "127.0.0.1:0"):
        env = dict(os.environ, DATABASE_URL=database_url)
        proc = netassist(
            "run",
            *("--chdir", str(EXAMPLES), "tickets:app", "--bind", bind),
            *(flags or ("--workers", "4", "--threads", "4")),
            env=env,
        )
        port = int(proc.expect_stderr(LISTENING, timeout=30).group(1))
        return proc, port

    return start
