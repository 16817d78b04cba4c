"""The tickets app in-process (netassist.web.testing.Client), on each back end: the API's
contract, the refusals, idempotency keys, the pages, and the store after a fork."""

from __future__ import annotations

import os

import pytest
from tickets.app import create_app
from tickets.store import Unavailable, open_store

from netassist.web.testing import Client

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(database_url):
    app = create_app(database_url)
    yield Client(app)
    app.store.close()


def new_event(client, count=3, name="周杰伦演唱会"):
    answer = client.post("/events", json={"name": name, "count": count})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_an_event_is_made_and_read_with_the_fields_the_issue_names(client):
    answer = client.post("/events", json={"name": " 演唱会 ", "count": 20})
    assert answer.status_code == 201
    event = answer.json()
    assert set(event) == {"id", "name", "count", "sold", "remaining"}
    assert (event["name"], event["count"], event["sold"], event["remaining"]) == (
        "演唱会",
        20,
        0,
        20,
    )
    assert answer.headers["Location"] == f"/events/{event['id']}"
    assert client.get(f"/events/{event['id']}").json() == event
    assert client.get("/events").json() == {"events": [event]}


def test_tickets_are_numbered_in_order_of_sale_then_sold_out_is_409(client):
    event = new_event(client, count=2)
    first = client.post(f"/events/{event}/buy", json={"buyer": "线程1"})
    second = client.post(f"/events/{event}/buy", json={"buyer": "线程2"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["ticket"], first.json()["remaining"]) == (1, 1)
    assert (second.json()["ticket"], second.json()["remaining"]) == (2, 0)
    assert first.json()["buyer"] == "线程1" and first.json()["event"] == event
    late = client.post(f"/events/{event}/buy", json={"buyer": "线程3"})
    assert late.status_code == 409
    assert late.json()["error"] == "sold_out" and "票卖完了" in late.json()["message"]
    assert client.get(f"/events/{event}").json()["remaining"] == 0  # never -1
    holders = client.get(f"/events/{event}/tickets").json()
    assert [(t["ticket"], t["buyer"]) for t in holders["tickets"]] == [(1, "线程1"), (2, "线程2")]


def test_a_buyer_gets_one_ticket_per_event(client):
    event = new_event(client)
    assert client.post(f"/events/{event}/buy", json={"buyer": "zhangsan"}).status_code == 201
    again = client.post(f"/events/{event}/buy", json={"buyer": "zhangsan"})
    assert again.status_code == 409
    assert again.json()["error"] == "already_bought" and again.json()["ticket"] == 1
    # The refused sale took nothing: the next buyer gets ticket 2, and 1 is left.
    other = client.post(f"/events/{event}/buy", json={"buyer": "lisi"}).json()
    assert (other["ticket"], other["remaining"]) == (2, 1)
    # Another event is another count.
    elsewhere = new_event(client, name="another")
    assert client.post(f"/events/{elsewhere}/buy", json={"buyer": "zhangsan"}).status_code == 201


def test_an_idempotency_key_makes_a_retry_return_the_same_ticket(client):
    event = new_event(client, count=1)
    key = {"Idempotency-Key": "7f3c9a1e-retry-me"}
    first = client.post(f"/events/{event}/buy", json={"buyer": "wangwu"}, headers=key)
    retry = client.post(f"/events/{event}/buy", json={"buyer": "wangwu"}, headers=key)
    assert (first.status_code, retry.status_code) == (201, 201)  # even though sold out now
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert client.get(f"/events/{event}").json()["sold"] == 1
    # The key belongs to that purchase: another buyer or event with it is refused.
    other = client.post(f"/events/{event}/buy", json={"buyer": "zhaoliu"}, headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    elsewhere = new_event(client)
    moved = client.post(f"/events/{elsewhere}/buy", json={"buyer": "wangwu"}, headers=key)
    assert moved.status_code == 422
    assert client.get(f"/events/{elsewhere}").json()["sold"] == 0


def test_bad_requests_get_a_clear_json_error(client):
    event = new_event(client)
    cases = [
        ("/events", {"json": {"name": "x", "count": 0}}, 400, "count"),
        ("/events", {"json": {"name": "x", "count": True}}, 400, "count"),
        ("/events", {"json": {"name": "x", "count": 2_000_000}}, 400, "count"),
        ("/events", {"json": {"name": "", "count": 3}}, 400, "name"),
        ("/events", {"json": {"count": 3}}, 400, "name"),
        ("/events", {"json": ["name", 3]}, 400, "object"),
        ("/events", {"data": b"{", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ("/events", {"data": b"name=x", "headers": {"Content-Type": "text/plain"}}, 415, "JSON"),
        (f"/events/{event}/buy", {"json": {}}, 400, "buyer"),
        (f"/events/{event}/buy", {"json": {"buyer": 7}}, 400, "buyer"),
        (f"/events/{event}/buy", {"json": {"buyer": "a\x1b[2J"}}, 400, "control"),
        (f"/events/{event}/buy", {"json": {"buyer": "x" * 201}}, 400, "longer"),
        (
            f"/events/{event}/buy",
            {"json": {"buyer": "a"}, "headers": {"Idempotency-Key": "has space"}},
            400,
            "Idempotency-Key",
        ),
        ("/events/999/buy", {"json": {"buyer": "a"}}, 404, "no event 999"),
    ]
    for path, kwargs, status, words in cases:
        answer = client.post(path, **kwargs)
        assert answer.status_code == status, (path, kwargs, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        assert words in answer.json()["message"], answer.json()
    assert client.get("/events/999").status_code == 404
    assert client.get("/events/999/tickets").status_code == 404
    wrong = client.delete(f"/events/{event}")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert client.get(f"/events/{event}").json()["sold"] == 0


def test_the_pages_make_an_event_and_sell_through_forms(client):
    home = client.get("/", headers=HTML)
    assert home.status_code == 200 and 'id="new-event"' in home.text
    made = client.post("/events", data={"name": "<script>x</script>", "count": "2"}, headers=HTML)
    assert made.status_code == 303
    page = client.get(made.headers["Location"], headers=HTML)
    assert page.status_code == 200 and "还剩 2 张" in page.text
    assert "<script>x</script>" not in page.text and "&lt;script&gt;" in page.text
    key = page.text.split('name="idempotency_key" value="')[1].split('"')[0]
    assert len(key) >= 16
    form = {"buyer": "李四", "idempotency_key": key}
    bought = client.post(f"{made.headers['Location']}", data=form, headers=HTML)
    assert bought.status_code == 201 and "李四 买到第 1 张票,还剩 1 张" in bought.text
    # The same form sent again (a reload, a double click): the same ticket.
    again = client.post(f"{made.headers['Location']}", data=form, headers=HTML)
    assert again.status_code == 201 and 'id="replayed"' in again.text
    twice = client.post(made.headers["Location"], data={"buyer": "李四"}, headers=HTML)
    assert twice.status_code == 409 and "李四 已经买过了: 第 1 张票" in twice.text
    client.post(made.headers["Location"], data={"buyer": "王五"}, headers=HTML)
    gone = client.post(made.headers["Location"], data={"buyer": "赵六"}, headers=HTML)
    assert gone.status_code == 409 and "票卖完了" in gone.text and 'id="buy-form"' not in gone.text
    missing = client.get("/events/999/buy", headers=HTML)
    assert missing.status_code == 404 and "no event 999" in missing.text


def test_database_urls_are_read_as_sqlalchemy_writes_them(tmp_path):
    assert open_store(f"sqlite:///{tmp_path}/a.sqlite3").path == tmp_path / "a.sqlite3"
    assert str(open_store("sqlite:///var/t.sqlite3").path) == "var/t.sqlite3"
    for bad in ("mysql://u:secret@h/db", "sqlite://relative", "sqlite:///", "tickets.db"):
        with pytest.raises(ValueError) as caught:
            open_store(bad)
        assert "secret" not in str(caught.value)
        assert "sqlite:///" in str(caught.value)


def test_a_database_that_cannot_be_had_is_503_not_a_crash(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = create_app(f"sqlite:///{blocker}/tickets.sqlite3")
    answer = Client(app).get("/events/1")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"] == "unavailable"


def test_postgresql_that_does_not_answer_is_unavailable():
    pytest.importorskip("psycopg")
    from tickets.postgres import PostgresStore

    store = PostgresStore("postgresql://nobody:secret@127.0.0.1:1/none", timeout=0.5)
    with pytest.raises(Unavailable) as caught:
        store.event(1)
    assert "secret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_store_used_before_a_fork_opens_its_own_connections_in_the_child(database_url):
    store = open_store(database_url)
    event = store.create_event("fork", 3)
    assert store.buy(event.id, "parent").ticket.number == 1
    pid = os.fork()
    if pid == 0:  # the child: a worker after the fork
        try:
            sale = store.buy(event.id, "child")
            os._exit(0 if sale.ticket.number == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's own connection still works after the child's came and went.
    assert store.buy(event.id, "parent again").ticket.number == 3
    assert [t.buyer for t in store.tickets(event.id)] == ["parent", "child", "parent again"]
    store.close()
