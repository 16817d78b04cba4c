"""``make tickets``, as a reader of the tutorial types it: the tickets app in the foreground
with 4 workers, its URL printed, its tickets in the file DATABASE_URL names."""

from __future__ import annotations

import os
import sqlite3

import pytest
import requests

from tests.conftest import MakeForeground, free_port

pytestmark = pytest.mark.integration


def test_make_tickets_serves_the_app_with_4_workers(tmp_path):
    port = free_port()
    database = tmp_path / "tickets.sqlite3"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{database}")
    make = MakeForeground("tickets", f"TICKETS_ADDRESS=127.0.0.1:{port}", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        home = make.first_answer(base + "/", headers={"Accept": "text/html"})
        assert home.status_code == 200 and "抢票" in home.text
        event = requests.post(base + "/events", json={"name": "make", "count": 1}, timeout=5)
        sale = requests.post(f"{base}/events/{event.json()['id']}/buy", json={"buyer": "a"})
        assert sale.status_code == 201 and sale.json()["ticket"] == 1
        # Said once all four workers are up; the first can answer before the last is.
        make.expect(f"listening on http://127.0.0.1:{port} (4 workers, 4 threads each)")
    finally:
        output = make.stop()
    assert f"open http://127.0.0.1:{port}/ (Ctrl-C stops it)" in output
    assert f"listening on http://127.0.0.1:{port} (4 workers, 4 threads each)" in output
    with sqlite3.connect(database) as connection:  # the sale is in the file DATABASE_URL named
        assert connection.execute("SELECT buyer FROM tickets").fetchall() == [("a",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
