"""Cookies: reading the ``Cookie`` header, writing ``Set-Cookie``, and signed values.

A signed value is JSON, never pickle (a pickle from a client whose secret leaked runs code;
JSON is only data): ``base64url(JSON) . timestamp . base64url(HMAC-SHA256)``. The MAC covers
the cookie's name, so a value signed for one cookie is refused under another, and the time,
so ``max_age`` is checked on the server and not left to the browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["BadSignature", "Cookie", "parse_cookie_header", "sign", "unsign"]

# RFC 6265 cookie-name is an RFC 7230 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# cookie-octet minus "%", which starts an escape: everything else is percent-encoded.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
_ATTRIBUTE_BAD = re.compile(r"[;\x00-\x1f\x7f]")
MIN_SECRET = 16


class BadSignature(ValueError):
    """A signed value was altered, signed with another secret or name, or is too old."""


def parse_cookie_header(header: str) -> dict[str, str]:
    """``a=1; b=2`` as {name: value}, values percent-decoded; the first of a repeated name
    wins (browsers send the most specific path first). Pieces without ``=`` are skipped."""
    cookies: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if not sep or not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not value.isascii():
            # WSGI hands header bytes over as latin-1; raw UTF-8 sent by a client is kept.
            try:
                value = value.encode("latin-1").decode("utf-8")
            except UnicodeError:
                pass
        cookies[name] = unquote(value) if "%" in value else value
    return cookies


@dataclass
class Cookie:
    """One ``Set-Cookie`` to send. ``secure=None`` means: when the request came over HTTPS."""

    name: str
    value: str
    max_age: int | None = None
    expires: datetime | None = None
    path: str | None = "/"
    domain: str | None = None
    secure: bool | None = None
    httponly: bool = True
    samesite: str | None = "Lax"

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name):
            raise ValueError(
                f"cookie name {self.name!r} must be letters, digits and !#$%&'*+-.^_`|~"
            )
        for label, text in (("path", self.path), ("domain", self.domain)):
            if text is not None and _ATTRIBUTE_BAD.search(text):
                raise ValueError(
                    f"cookie {self.name}: {label} {text!r} holds ';' or a control character"
                )
        if self.samesite is not None:
            self.samesite = self.samesite.capitalize()
            if self.samesite not in ("Strict", "Lax", "None"):
                raise ValueError(f"samesite is 'Strict', 'Lax' or 'None', not {self.samesite!r}")
            if self.samesite == "None" and self.secure is False:
                raise ValueError("browsers refuse samesite='None' without secure=True")

    def header(self, https: bool) -> str:
        """The ``Set-Cookie`` value; ``https`` settles ``secure=None``."""
        parts = [f"{self.name}={quote(self.value, safe=_COOKIE_SAFE)}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.expires is not None:
            parts.append(f"Expires={format_datetime(self.expires.astimezone(UTC), usegmt=True)}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.path:
            parts.append(f"Path={self.path}")
        secure = self.secure if self.secure is not None else (https or self.samesite == "None")
        if secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite}")
        return "; ".join(parts)


def expires_from(value: int | float | timedelta | datetime | None) -> datetime | None:
    """An ``expires=`` argument (a datetime, or seconds since the epoch) as a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, timedelta):
        return datetime.now(UTC) + value
    return datetime.fromtimestamp(value, UTC)


def _key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET:
        raise ValueError(
            f"a signing secret needs at least {MIN_SECRET} bytes (use secrets.token_hex(32))"
        )
    # A key of its own for cookies: the same secret used elsewhere gives other MACs.
    return hmac.new(raw, b"netassist.web signed cookie", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(value: Any, secret: str | bytes, name: str = "", now: float | None = None) -> str:
    """``value`` (anything JSON can write) as a signed text for the cookie ``name``."""
    payload = _b64(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    stamp = str(int(time.time() if now is None else now))
    mac = hmac.new(_key(secret), f"{name}\0{payload}.{stamp}".encode(), hashlib.sha256)
    return f"{payload}.{stamp}.{_b64(mac.digest())}"


def unsign(
    text: str,
    secret: str | bytes,
    name: str = "",
    max_age: float | None = None,
    now: float | None = None,
) -> Any:
    """The value :func:`sign` wrote, or :class:`BadSignature`."""
    key = _key(secret)  # a secret too short is the caller's error, not a bad cookie
    try:
        payload, stamp, mac = text.rsplit(".", 2)
        expected = hmac.new(key, f"{name}\0{payload}.{stamp}".encode(), hashlib.sha256)
        if not hmac.compare_digest(_unb64(mac), expected.digest()):
            raise BadSignature(f"cookie {name!r}: the signature does not match")
        if max_age is not None and (time.time() if now is None else now) - int(stamp) > max_age:
            raise BadSignature(f"cookie {name!r}: signed more than {max_age} seconds ago")
        return json.loads(_unb64(payload))
    except BadSignature:
        raise
    except (ValueError, TypeError) as exc:  # split, base64, int and JSON errors alike
        raise BadSignature(f"cookie {name!r} is not a signed value") from exc
