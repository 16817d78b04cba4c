"""Past one machine: two ``netassist run`` servers on two ports behind Debian's nginx as the
load balancer, sharing one PostgreSQL, sell exactly the tickets there are to 1,000 buyers
who all come through nginx (docs/tickets.md shows the same on several machines)."""

from __future__ import annotations

import asyncio
import re

import pytest
import requests

from tests.conftest import need, start_nginx
from tests.examples.buyers import crowd
from tests.examples.test_tickets_integration import (
    BUYERS,
    TICKETS,
    Watcher,
    check_totals,
    new_event,
)

pytestmark = pytest.mark.integration


def test_two_servers_behind_nginx_sharing_one_postgresql(tickets, spawn, postgres_url, tmp_path):
    need("nginx")
    first, port_a = tickets(postgres_url, "--workers", "2", "--threads", "4")
    second, port_b = tickets(postgres_url, "--workers", "2", "--threads", "4")
    # Its log says which upstream answered each request.
    port = start_nginx(
        spawn,
        tmp_path,
        [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"],
        http=f"log_format upstream '$upstream_addr $status $request_method $uri';"
        f" access_log {tmp_path}/nginx-access.log upstream;",
        keepalive=32,
        connections=4096,
    )
    event = new_event(port)
    watcher = Watcher(port, event)
    buyers = [f"buyer-{n:04d}" for n in range(BUYERS)]
    answers = asyncio.run(crowd(port, event, buyers, seconds=60, during=watcher))
    check_totals(port, event, answers)
    watcher.check()
    # Both machines sold.
    log = (tmp_path / "nginx-access.log").read_text()
    sales = re.findall(r"^127\.0\.0\.1:(\d+) 201 POST /events/\d+/buy$", log, re.MULTILINE)
    by_server = {int(p): sales.count(p) for p in set(sales)}
    assert set(by_server) == {port_a, port_b} and sum(by_server.values()) == TICKETS, by_server
    # Each server alone tells the same totals as the other: the state is in the database.
    for one in (port_a, port_b):
        seen = requests.get(f"http://127.0.0.1:{one}/events/{event}", timeout=10).json()
        assert (seen["sold"], seen["remaining"]) == (TICKETS, 0)
    for proc in (first, second):
        proc.popen.terminate()
        assert proc.finish()[0] == 0
