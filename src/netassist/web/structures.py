"""The containers requests and responses are made of: multi-dicts and headers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar, overload

__all__ = ["EnvironHeaders", "Headers", "MultiDict"]

T = TypeVar("T")
_MISSING: Any = object()


class MultiDict(MutableMapping[str, Any]):
    """A dict whose keys may hold several values, in the order they came (query strings and
    forms: ``?tag=a&tag=b``). ``d[key]`` and ``d.get(key)`` give the first value,
    ``d.getlist(key)`` all of them; setting a key replaces all its values."""

    def __init__(self, items: Iterable[tuple[str, Any]] | Mapping[str, Any] = ()) -> None:
        self._data: dict[str, list[Any]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            self._data.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> Any:
        return self._data[key][0]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = [value]

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MultiDict({self.items(multi=True)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return self._data == other._data
        return NotImplemented

    @overload
    def get(self, key: str) -> Any: ...
    @overload
    def get(self, key: str, default: Any = None, type: Callable[[Any], T] = ...) -> T | Any: ...

    def get(self, key: str, default: Any = None, type: Callable[[Any], Any] | None = None) -> Any:
        """The first value of ``key``, or ``default``; with ``type`` (such as ``int``) the value
        converted, and ``default`` where the conversion raises ``ValueError``."""
        values = self._data.get(key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str, type: Callable[[Any], Any] | None = None) -> list[Any]:
        """Every value of ``key`` (an empty list if none); with ``type``, those it converts."""
        values = self._data.get(key, [])
        if type is None:
            return list(values)
        out = []
        for value in values:
            try:
                out.append(type(value))
            except (ValueError, TypeError):
                continue
        return out

    def add(self, key: str, value: Any) -> None:
        """Add one more value to ``key``."""
        self._data.setdefault(key, []).append(value)

    def items(self, multi: bool = False) -> list[tuple[str, Any]]:  # type: ignore[override]
        """(key, first value) pairs; with ``multi=True`` one pair per value."""
        if multi:
            return [(key, value) for key, values in self._data.items() for value in values]
        return [(key, values[0]) for key, values in self._data.items()]

    def values(self) -> list[Any]:  # type: ignore[override]
        """The first value of each key."""
        return [values[0] for values in self._data.values()]

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        """A plain dict: first values, or with ``flat=False`` lists of all of them."""
        if flat:
            return {key: values[0] for key, values in self._data.items()}
        return {key: list(values) for key, values in self._data.items()}


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAKS = re.compile(r"[\r\n\0]")
_GOOD_NAMES: set[str] = set()  # names checked once; the same few come up again and again


def check_header(name: str, value: str) -> None:
    """Refuse a header that would break the response: a name that is not a token, or a value
    with CR, LF or NUL (which would start a header of the client's choosing)."""
    if name not in _GOOD_NAMES:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a token")
        if len(_GOOD_NAMES) < 1024:
            _GOOD_NAMES.add(name)
    if _BREAKS.search(value):
        raise ValueError(f"header {name}: {value!r} holds CR, LF or NUL")


class Headers:
    """Response headers: case-insensitive names, several values each (``Set-Cookie``), in
    order. ``h[name] = value`` replaces, ``h.add(name, value)`` appends."""

    __slots__ = ("_items", "_names")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._names: set[str] = set()  # the lower-case names present
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def checked(cls, items: list[tuple[str, str]], names: set[str] | None = None) -> Headers:
        """Headers from pairs the caller has already checked (the framework's own), and
        their lower-case names if the caller has them at hand."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._names = {name.lower() for name, _ in items} if names is None else names
        return headers

    def add(self, name: str, value: Any) -> None:
        """Append a header (its value made a string)."""
        value = str(value)
        check_header(name, value)
        self._items.append((name, value))
        self._names.add(name.lower())

    def __setitem__(self, name: str, value: Any) -> None:
        value = str(value)
        check_header(name, value)
        lower = name.lower()
        if lower in self._names:
            self._items = [item for item in self._items if item[0].lower() != lower]
        self._items.append((name, value))
        self._names.add(lower)

    def __getitem__(self, name: str) -> str:
        lower = name.lower()
        if lower in self._names:
            for key, value in self._items:
                if key.lower() == lower:
                    return value
        raise KeyError(name)

    def __delitem__(self, name: str) -> None:
        lower = name.lower()
        if lower not in self._names:
            raise KeyError(name)
        self._items = [item for item in self._items if item[0].lower() != lower]
        self._names.discard(lower)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``."""
        lower = name.lower()
        return [value for key, value in self._items if key.lower() == lower]

    def setdefault(self, name: str, value: Any) -> str:
        """Set ``name`` unless it is there; return its value."""
        if name not in self:
            self.add(name, value)
        return self[name]

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value), in order (what ``start_response`` takes)."""
        return list(self._items)


class EnvironHeaders(Mapping[str, str]):
    """A request's headers, read from its WSGI environ: ``headers["content-type"]`` and
    ``headers.get("X-Token")`` in any case. Values are as the server gave them (repeated
    headers joined with commas, as WSGI does)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return key
        return "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(self._key(name))
        if value is None or (value == "" and name.lower() in ("content-type", "content-length")):
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        for key, value in self._environ.items():
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                yield key.replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"EnvironHeaders({dict(self.items())!r})"
