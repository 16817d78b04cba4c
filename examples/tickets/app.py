"""The tickets app: an event has N tickets, and many buyers at once never get N + 1.

    POST /events              {"name": ..., "count": N}  -> 201 the event, with its "id"
    GET  /events              every event
    GET  /events/<id>         {"id", "name", "count", "sold", "remaining"}
    POST /events/<id>/buy     {"buyer": NAME} -> 201 {"ticket": n, ...}; 409 when sold out
                              or when NAME holds a ticket already; an Idempotency-Key header
                              makes a retried request get the same ticket again
    GET  /events/<id>/tickets the holders, in the order they bought
    GET  /                    a page to make events; GET /events/<id>/buy a page to buy

Nothing here is kept in a worker's memory: every answer comes from the store
(:mod:`tickets.store`), so any worker of any machine can answer any request. JSON in, JSON
out; a browser (which asks for ``text/html``) gets pages, and its forms post the same fields.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from netassist.web import App, HTTPError, Request, Response, abort, json, redirect
from tickets.store import (
    AlreadyBought,
    KeyReused,
    NoSuchEvent,
    SoldOut,
    StoreError,
    Unavailable,
    open_store,
)

__all__ = ["DEFAULT_DATABASE_URL", "create_app"]

#: Where the tickets are kept when DATABASE_URL is not set (relative to the working folder).
DEFAULT_DATABASE_URL = "sqlite:///var/tickets.sqlite3"
MAX_COUNT = 1_000_000
MAX_NAME = 200
MAX_KEY = 200
KEY_HEADER = "Idempotency-Key"
log = logging.getLogger("tickets")

# What each refusal of the store means to a client: status, error code, and a sentence
# (the tutorial's words first, for its readers).
REFUSALS: dict[type[StoreError], tuple[int, str]] = {
    NoSuchEvent: (404, "no_such_event"),
    SoldOut: (409, "sold_out"),
    AlreadyBought: (409, "already_bought"),
    KeyReused: (422, "idempotency_key_reused"),
    Unavailable: (503, "unavailable"),
}


def create_app(database_url: str | None = None) -> App:
    """The app, storing its tickets at ``database_url`` (default: $DATABASE_URL, else
    ``sqlite:///var/tickets.sqlite3``). Nothing is connected until the first request."""
    url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    store = open_store(url)
    app = App(__name__)
    app.store = store  # type: ignore[attr-defined]  # for tests and tools
    backend = "PostgreSQL" if type(store).__name__ == "PostgresStore" else "SQLite"

    def page(template: str, status: int = 200, **context: Any) -> Response:
        # Every page says which worker process drew it: reload and watch the pid change.
        return app.render(
            template, status=status, code=status, backend=backend, pid=os.getpid(), **context
        )

    @app.get("/")
    def home(request: Request) -> Response:
        """The events, and a form for a new one."""
        return page("index.html", events=store.events())

    @app.get("/events")
    def list_events(request: Request) -> Any:
        """Every event as JSON."""
        return {"events": [event.as_json() for event in store.events()]}

    @app.post("/events")
    def create_event(request: Request) -> Response:
        """A new event: 201 with the event (JSON), or to its page (a browser's form)."""
        fields = _fields(request)
        name = _text(fields.get("name"), "name", MAX_NAME)
        count = _count(fields.get("count"))
        event = store.create_event(name, count)
        where = app.url_for("show_event", id=event.id)
        if _wants_page(request):
            return redirect(app.url_for("buy_page", id=event.id), 303)
        return json(event.as_json(), 201, [("Location", where)])

    @app.get("/events/<int:id>")
    def show_event(request: Request, id: int) -> Any:
        """The event and how many tickets are left."""
        return store.event(id).as_json()

    @app.get("/events/<int:id>/tickets")
    def list_tickets(request: Request, id: int) -> Any:
        """Who holds which ticket, in the order they bought."""
        return {"id": id, "tickets": [ticket.as_json() for ticket in store.tickets(id)]}

    @app.get("/events/<int:id>/buy")
    def buy_page(request: Request, id: int) -> Response:
        """The page a person buys on. Its form carries a fresh idempotency key, so sending
        the same form twice (a reload, a double click) gets the one ticket."""
        return _event_page(request, id)

    @app.post("/events/<int:id>/buy")
    def buy(request: Request, id: int) -> Response:
        """Sell one ticket: 201 and the ticket; 409 sold out or bought already."""
        fields = _fields(request)
        buyer = _text(fields.get("buyer"), "buyer", MAX_NAME)
        key = request.headers.get(KEY_HEADER) or fields.get("idempotency_key") or None
        if key is not None:
            key = _key(key)
        sale = store.buy(id, buyer, key)
        headers = [("Idempotent-Replayed", "true")] if sale.replayed else []
        if _wants_page(request):
            event = store.event(id)
            answer = page("bought.html", 201, event=event, ticket=sale.ticket, sale=sale)
            for name, value in headers:
                answer.headers[name] = value
            return answer
        return json(sale.ticket.as_json(), 201, headers)

    def _event_page(
        request: Request, id: int, status: int = 200, problem: str | None = None
    ) -> Response:
        event = store.event(id)
        recent = store.tickets(id)[-10:][::-1]
        return page(
            "event.html",
            status,
            event=event,
            recent=recent,
            key=secrets.token_urlsafe(16),
            problem=problem,
            buyer=request.form.get("buyer", "") if request.method == "POST" else "",
        )

    @app.errorhandler(StoreError)
    def refused(request: Request, error: StoreError) -> Response:
        """What the store refused, as JSON (or, for a browser, on the event's page)."""
        status, code = REFUSALS.get(type(error), (500, "store_error"))
        body: dict[str, Any] = {"error": code, "message": _message(error)}
        event_id = request.params.get("id")
        if event_id is not None:
            body["event"] = event_id
        if isinstance(error, AlreadyBought):
            body["ticket"] = error.ticket.number
        headers = []
        if status == 503:  # the client hears "try again"; the log says why
            log.warning("%s %s: %s", request.method, request.path, error)
            headers.append(("Retry-After", "1"))
        if _wants_page(request) and event_id is not None and status == 409:
            return _event_page(request, event_id, status, body["message"])
        if _wants_page(request):
            return page("problem.html", status, message=body["message"])
        return json(body, status, headers)

    @app.errorhandler(HTTPError)
    def bad_request(request: Request, error: HTTPError) -> Response:
        """The framework's refusals (400, 404, 405, 415) in the same shape."""
        if _wants_page(request):
            return page("problem.html", error.status_code, message=error.description)
        body = {"error": _CODES.get(error.status_code, "error"), "message": error.description}
        return json(body, error.status_code, error.headers)

    return app


_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def _message(error: StoreError) -> str:
    if isinstance(error, SoldOut):
        return "票卖完了 (sold out)"
    if isinstance(error, AlreadyBought):
        return (
            f"{error.ticket.buyer} 已经买过了: 第 {error.ticket.number} 张票 (one ticket per buyer)"
        )
    if isinstance(error, KeyReused):
        return "this Idempotency-Key was sent with another purchase; make a new key per purchase"
    if isinstance(error, Unavailable):
        return "the database is not answering; try again in a moment"
    return str(error)


def _wants_page(request: Request) -> bool:
    """A browser asks for HTML; API clients (curl, requests, fetch) do not."""
    return "text/html" in (request.headers.get("accept") or "")


def _fields(request: Request) -> Any:
    """The request's fields: a JSON object, or a form's."""
    if request.is_json:
        fields = request.json
        if not isinstance(fields, dict):
            abort(400, 'the JSON body must be an object, as in {"buyer": "zhangsan"}')
        return fields
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form
    sent = request.content_type or "none"
    abort(415, f"send JSON (Content-Type: application/json), not {sent}")


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        abort(400, f"{field!r} is required: a non-empty string")
    value = value.strip()
    if len(value) > limit:
        abort(400, f"{field!r} is longer than {limit} characters")
    if not value.isprintable():
        abort(400, f"{field!r} holds control characters")
    return value


def _count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():  # a form's field is text
        value = int(value)
    if type(value) is not int or not 1 <= value <= MAX_COUNT:
        abort(400, f"'count' must be a whole number from 1 to {MAX_COUNT}")
    return value


def _key(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_KEY
        or not all("!" <= c <= "~" for c in value)
    ):
        abort(400, f"the {KEY_HEADER} must be 1 to {MAX_KEY} visible ASCII characters")
    return value
