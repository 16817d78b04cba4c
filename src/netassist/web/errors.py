"""HTTP errors as exceptions (:class:`HTTPError`, :func:`abort`) and the pages they show."""

from __future__ import annotations

import html
import json
import traceback
from collections.abc import Iterable
from http import HTTPStatus
from typing import NoReturn

__all__ = ["HTTPError", "abort", "error_body", "reason", "traceback_page"]


def reason(status: int) -> str:
    """The reason phrase of ``status`` (``Unknown`` for codes HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HTTPError(Exception):
    """An answer other than success, raised from anywhere a request is handled.

    ``status`` is the code, ``description`` what the page says (escaped; the code's own
    explanation when None), ``headers`` extra response headers (``Allow`` for a 405).
    ``@app.errorhandler(status)`` decides what the client sees; without one, a short page.
    """

    def __init__(
        self,
        status: int,
        description: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"an HTTP error is a 4xx or 5xx status, not {status}")
        self.status_code = status
        self.description = description if description is not None else _explain(status)
        self.headers = list(headers)
        super().__init__(f"{status} {reason(status)}: {self.description}")


def abort(
    status: int, description: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> NoReturn:
    """Stop handling the request and answer ``status`` (``abort(404)``, ``abort(400, "name
    is required")``)."""
    raise HTTPError(status, description, headers)


def _explain(status: int) -> str:
    try:
        return HTTPStatus(status).description or reason(status)
    except ValueError:
        return reason(status)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {reason}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1f2430; }}
main {{ max-width: 40rem; margin: 12vh auto; padding: 2rem; background: #fff;
        border-radius: 12px; box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ margin-top: 0; font-size: 1.5rem; }}
pre {{ overflow: auto; background: #1f2430; color: #e6e6e6; padding: 1rem; border-radius: 8px;
       font-size: .85rem; }}
</style>
</head>
<body>
<main>
<h1>{status} {reason}</h1>
<p>{description}</p>
{extra}</main>
</body>
</html>
"""


def wants_json(accept: str) -> bool:
    """Whether an ``Accept`` header asks for JSON rather than a page (API clients)."""
    return "application/json" in accept and "text/html" not in accept


def error_body(status: int, description: str, accept: str = "") -> tuple[str, bytes]:
    """(content type, body) of the default error answer: a small page, or JSON when the
    client asked for JSON and not HTML."""
    if wants_json(accept):
        text = json.dumps({"error": {"status": status, "message": description}})
        return "application/json", text.encode()
    page = _PAGE.format(
        status=status,
        reason=html.escape(reason(status)),
        description=html.escape(description),
        extra="",
    )
    return "text/html; charset=utf-8", page.encode()


def traceback_page(exc: BaseException, method: str, url: str) -> bytes:
    """The debug page of an unhandled exception (only ever shown with ``App(debug=True)``)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    extra = (
        f"<p><code>{html.escape(method)} {html.escape(url)}</code></p>\n"
        f"<pre>{html.escape(text)}</pre>\n"
    )
    return _PAGE.format(
        status=500,
        reason="Internal Server Error",
        description=html.escape(f"{type(exc).__name__}: {exc}"),
        extra=extra,
    ).encode()
