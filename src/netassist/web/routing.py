"""Routes: paths with typed parameters, matched fast, built back into URLs.

Theory of operation
-------------------
A rule is a path such as ``/users/<int:id>/posts/<slug>``. Rules without parameters are
*static*: a request for one of them is a dictionary lookup, whatever the number of routes.

A rule with parameters is *dynamic*. Its leading literal segments (``/users/`` above) name
its group; the rest of the rule (``<int:id>/posts/<slug>``) becomes one alternative of a
single regular expression compiled per group and per method, holding, in registration
order, every rule of the group that accepts the method. A path is matched by looking up its
own prefixes that end in ``/``, longest first (``/users/42/posts/x`` tries ``/users/42/posts/``,
``/users/42/``, ``/users/``, ``/``: a dictionary lookup each), and trying the pattern of each
group found: more leading literal segments is more specific, as with Werkzeug's
static-before-dynamic weights. One ``fullmatch`` per group decides, and the regex group that
matched names the rule. So matching costs about as much for the 200th route as for the
first: Python's regular expressions try alternatives one by one (200 of them cost ~60 us
here), which the grouping keeps few.

Converters turn a parameter's text into a value (``int``, ``float``, ``path``, ``uuid``,
``str``, and any registered :class:`Converter`). A converter that refuses a value that its
regular expression took (``to_python`` raising ``ValueError``) sends matching on to the rules
after it, one by one.

Mistakes are errors when a route is added, not surprises later: two rules for the same path
shape with a method in common, a rule that can never match because one tried before it takes
every path it would, an endpoint name used twice, an unknown converter, a parameter named
twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "BuildError",
    "Converter",
    "FloatConverter",
    "IntConverter",
    "Match",
    "PathConverter",
    "RouteConflict",
    "Router",
    "Rule",
    "StringConverter",
    "UUIDConverter",
]

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class RouteConflict(ValueError):
    """Two routes cannot both be registered as written (raised when the second is added)."""


class BuildError(LookupError):
    """``url_for`` cannot build a URL: no such endpoint, or a parameter missing or refused."""


class Converter:
    """Turns one path parameter's text into a value and back.

    Subclass it and register it (``app.converters["lang"] = LangConverter``): ``regex`` says
    what the parameter may look like (without groups that capture: use ``(?:...)``),
    ``to_python`` makes the value (raise ``ValueError`` to refuse it: the next route is tried),
    ``to_url`` writes a value back for ``url_for``.
    """

    regex = "[^/]+"
    #: Whether the parameter may span several segments (only ``path`` does).
    spans_segments = False

    def to_python(self, value: str) -> Any:
        """The value handed to the handler."""
        return value

    def to_url(self, value: Any) -> str:
        """The path text for ``value`` (quoted afterwards)."""
        return str(value)


class StringConverter(Converter):
    """``<name>`` and ``<str:name>``: one segment, any text but ``/``."""


class IntConverter(Converter):
    """``<int:name>``: ASCII digits (``int`` would also take other scripts' digits)."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        """The number; more digits than ``int`` converts is a ``ValueError``."""
        return int(value)


class FloatConverter(Converter):
    """``<float:name>``: digits, a dot, digits (as Werkzeug's)."""

    regex = r"[0-9]+\.[0-9]+"

    def to_python(self, value: str) -> float:
        """The number."""
        return float(value)

    def to_url(self, value: Any) -> str:
        """``repr`` keeps every digit; an integral float still gets its ``.0``."""
        return repr(float(value))


class PathConverter(Converter):
    """``<path:name>``: the rest of the path, slashes included (not starting with one)."""

    regex = "[^/].*?"
    spans_segments = True

    def to_url(self, value: Any) -> str:
        """The text as given."""
        return str(value)


class UUIDConverter(Converter):
    """``<uuid:name>``: a UUID in its 8-4-4-4-12 hexadecimal form, as :class:`uuid.UUID`."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        """The UUID."""
        return uuid.UUID(value)


DEFAULT_CONVERTERS: dict[str, type[Converter]] = {
    "str": StringConverter,
    "string": StringConverter,
    "int": IntConverter,
    "float": FloatConverter,
    "path": PathConverter,
    "uuid": UUIDConverter,
}

# <name> or <converter:name>; the name is a Python identifier (it becomes a keyword argument).
_PARAMETER = re.compile(r"<(?:([A-Za-z_][A-Za-z0-9_]*):)?([A-Za-z_][A-Za-z0-9_]*)>")
_SAFE_IN_SEGMENT = "!$&'()*+,;=:@-._~"  # RFC 3986 pchar minus "/", left unquoted by url_for


@dataclass(eq=False)
class Rule:
    """One registered route: its path, methods, handler and endpoint name."""

    path: str
    methods: frozenset[str]
    handler: Callable[..., Any]
    endpoint: str
    #: (literal text, None) and (None, (name, converter)) pieces, in path order.
    pieces: list[tuple[str | None, tuple[str, Converter] | None]] = field(default_factory=list)
    order: int = 0
    #: Whether HEAD came in with GET rather than being asked for.
    implicit_head: bool = False

    @property
    def is_static(self) -> bool:
        """Whether the path has no parameters."""
        return all(param is None for _, param in self.pieces)

    @property
    def parameters(self) -> list[str]:
        """The parameter names, in path order."""
        return [param[0] for _, param in self.pieces if param is not None]

    @cached_property
    def shape(self) -> tuple:
        """The path with parameter names left out: two rules of one shape match alike."""
        return tuple(
            text if param is None else (type(param[1]), param[1].regex)
            for text, param in self.pieces
        )

    @cached_property
    def segments(self) -> list:
        """The path segment by segment, as :func:`segments_of` writes it."""
        return segments_of(self)

    @cached_property
    def leading(self) -> tuple[str, ...]:
        """The literal segments before the first one with a parameter (all, if static)."""
        first = self.pieces[0][0] or ""
        if self.is_static:
            return tuple(first.split("/")[1:])
        return tuple(first.split("/")[1:-1])

    def where(self) -> str:
        """The handler as ``module.function`` (for error messages)."""
        handler = self.handler
        name = getattr(handler, "__qualname__", None) or repr(handler)
        module = getattr(handler, "__module__", None)
        return f"{module}.{name}" if module else name

    def build(self, values: Mapping[str, Any]) -> str:
        """The URL path for parameter ``values``; the other values become the query string."""
        out = []
        used = set()
        for text, param in self.pieces:
            if param is None:
                out.append(quote(text, safe="/" + _SAFE_IN_SEGMENT))
                continue
            name, converter = param
            if name not in values:
                raise BuildError(f"url_for({self.endpoint!r}) needs a value for {name!r}")
            used.add(name)
            text_value = converter.to_url(values[name])
            safe = _SAFE_IN_SEGMENT + ("/" if converter.spans_segments else "")
            if not text_value or not re.fullmatch(converter.regex, text_value, re.DOTALL):
                raise BuildError(
                    f"url_for({self.endpoint!r}): {name}={values[name]!r} does not fit "
                    f"<{name}> of {self.path}"
                )
            out.append(quote(text_value, safe=safe))
        path = "".join(out)
        query = [
            (key, item)
            for key, value in values.items()
            if key not in used and value is not None
            for item in (value if isinstance(value, list | tuple) else [value])
        ]
        return path + ("?" + urlencode(query) if query else "")


#: The outcome of a lookup: the rule and its converted parameters.
Match = tuple[Rule, dict[str, Any]]


class _Group:
    """The dynamic rules that share one literal prefix (``/users/`` for ``/users/<int:id>``
    and ``/users/<name>/posts``)."""

    __slots__ = ("compiled", "rules")

    def __init__(self) -> None:
        self.rules: list[tuple[Rule, str]] = []  # (rule, regex of the rest of its path)
        # method -> (compiled alternatives, group index -> (rule, [(name, to_python, group)]))
        self.compiled: dict[str, tuple[re.Pattern[str], dict[int, tuple[Rule, list]]]] = {}


def parse_rule(
    path: str, converters: Mapping[str, type[Converter]]
) -> list[tuple[str | None, tuple[str, Converter] | None]]:
    """Split ``path`` into literal text and (name, converter) pieces, checking it."""
    if not path.startswith("/"):
        raise ValueError(f"a route starts with /: {path!r}")
    pieces: list[tuple[str | None, tuple[str, Converter] | None]] = []
    names: set[str] = set()
    position = 0
    for found in _PARAMETER.finditer(path):
        if found.start() > position:
            pieces.append((path[position : found.start()], None))
        kind, name = found.group(1) or "str", found.group(2)
        if kind not in converters:
            known = ", ".join(sorted(converters))
            raise ValueError(f"unknown converter {kind!r} in {path!r} (known: {known})")
        if name in names:
            raise ValueError(f"parameter {name!r} appears twice in {path!r}")
        names.add(name)
        converter = converters[kind]()
        if re.compile(converter.regex).groups:
            raise ValueError(
                f"converter {kind!r}: its regex must not capture; write (?:...) for groups"
            )
        pieces.append((None, (name, converter)))
        position = found.end()
    if position < len(path):
        pieces.append((path[position:], None))
    stray = "".join(text for text, _ in pieces if text is not None)
    if "<" in stray or ">" in stray:
        raise ValueError(f"cannot read the parameter in {path!r}: write <name> or <kind:name>")
    return pieces


def _covers(earlier: Rule, later: Rule) -> bool:
    """Whether every path ``later`` matches is matched by ``earlier`` (a safe guess: False
    when unsure). Only the built-in converters are compared by what they take."""
    a, b = earlier.segments, later.segments
    for index, segment in enumerate(a):
        if segment == ("path",):
            return index < len(b)  # takes the rest, whatever it is, if there is a rest
        if index >= len(b):
            return False
        other = b[index]
        if segment == other:
            continue
        if segment == ("str",) and (
            other in (("int",), ("float",), ("uuid",)) or (isinstance(other, str) and other)
        ):
            continue
        return False
    return len(a) == len(b)


def segments_of(rule: Rule) -> list:
    """The rule's path segments: literal text, or a 1-tuple naming a whole-segment built-in
    converter, or a tuple of pieces for anything else (compared whole)."""
    segments: list = []
    current: list = []
    for text, param in rule.pieces:
        if param is None:
            parts = text.split("/")
            current.append(parts[0])
            for part in parts[1:]:
                segments.append(current)
                current = [part]
        else:
            current.append(param[1])
    segments.append(current)
    out: list = []
    builtin = {v: k for k, v in DEFAULT_CONVERTERS.items() if k != "string"}
    for pieces in segments[1:]:  # the first is the empty text before the leading "/"
        pieces = [p for p in pieces if p != ""]
        if len(pieces) == 1 and isinstance(pieces[0], Converter):
            kind = builtin.get(type(pieces[0]))
            out.append((kind,) if kind else (type(pieces[0]), pieces[0].regex))
        elif all(isinstance(p, str) for p in pieces):
            out.append("".join(pieces))
        else:
            out.append(tuple(p if isinstance(p, str) else (type(p), p.regex) for p in pieces))
    return out


class Router:
    """Every route of one application: adds them, finds them, builds their URLs."""

    def __init__(self, converters: Mapping[str, type[Converter]] | None = None) -> None:
        #: Converter kinds by name; add yours before the routes that use them.
        self.converters: dict[str, type[Converter]] = dict(DEFAULT_CONVERTERS)
        if converters:
            self.converters.update(converters)
        self.rules: list[Rule] = []
        self.by_endpoint: dict[str, Rule] = {}
        self._static: dict[str, dict[str, Rule]] = {}  # path -> method -> rule
        self._groups: dict[str, _Group] = {}  # literal prefix ("/users/") -> its rules

    # --- adding -------------------------------------------------------------------------------

    def add(
        self,
        path: str,
        handler: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        endpoint: str | None = None,
    ) -> Rule:
        """Register ``handler`` for ``path`` and ``methods``; raise :class:`RouteConflict` if
        that clashes with a route already there. GET brings HEAD along."""
        if isinstance(methods, str):
            raise TypeError(f"methods is a list of names, as in methods=[{methods!r}]")
        wanted = {m.upper() for m in methods}
        if not wanted:
            raise ValueError(f"route {path!r} needs at least one method")
        unknown = sorted(m for m in wanted if not re.fullmatch(r"[A-Z][A-Z0-9_-]*", m))
        if unknown:
            raise ValueError(f"route {path!r}: {unknown[0]!r} is not a method name")
        implicit_head = "GET" in wanted and "HEAD" not in wanted
        if implicit_head:
            wanted.add("HEAD")
        name = endpoint or getattr(handler, "__name__", None) or path
        rule = Rule(
            path=path,
            methods=frozenset(wanted),
            handler=handler,
            endpoint=name,
            pieces=parse_rule(path, self.converters),
            order=len(self.rules),
            implicit_head=implicit_head,
        )
        self._settle_head(rule)
        self._check(rule)
        self.rules.append(rule)
        self.by_endpoint.setdefault(name, rule)  # a handler on several paths builds its first
        if rule.is_static:
            self._static.setdefault(path, {}).update(dict.fromkeys(rule.methods, rule))
        else:
            group, rest = self._place(rule)
            group.rules.append((rule, rest))
            group.compiled.clear()
        return rule

    def _settle_head(self, rule: Rule) -> None:
        """A HEAD that only came along with GET yields to a route of the same shape that
        asks for HEAD, whichever is added first."""
        for other in self.rules:
            if other.shape != rule.shape:
                continue
            if rule.implicit_head and "HEAD" in _explicit(other):
                rule.methods, rule.implicit_head = rule.methods - {"HEAD"}, False
            elif other.implicit_head and "HEAD" in _explicit(rule):
                other.methods, other.implicit_head = other.methods - {"HEAD"}, False

    def _check(self, rule: Rule) -> None:
        known = self.by_endpoint.get(rule.endpoint)
        if known is not None and known.handler is not rule.handler:
            raise RouteConflict(
                f"endpoint {rule.endpoint!r} is taken by {known.where()} ({known.path}); "
                f"give {rule.where()} another endpoint= name"
            )
        shape = rule.shape
        for other in self.rules:
            common = _explicit(other) & _explicit(rule)
            if common and other.shape == shape:
                raise RouteConflict(
                    f"{', '.join(sorted(common))} {rule.path} ({rule.where()}) is already "
                    f"routed to {other.where()} as {other.path}"
                )
            if (
                not rule.is_static
                and rule.methods <= other.methods
                and other.leading == rule.leading
                and _covers(other, rule)
            ):
                raise RouteConflict(
                    f"{rule.path} ({rule.where()}) can never match: {other.path} "
                    f"({other.where()}), tried first, takes every path it would; "
                    "register the narrower route first"
                )

    def _place(self, rule: Rule) -> tuple[_Group, str]:
        prefix = "/" + "".join(segment + "/" for segment in rule.leading)
        group = self._groups.setdefault(prefix, _Group())
        first = rule.pieces[0][0] or ""
        skip = first.rfind("/") + 1  # the literal part the prefix already matched
        rest = []
        for index, (text, param) in enumerate(rule.pieces):
            if param is None:
                rest.append(re.escape(text[skip:] if index == 0 else text))
            else:
                rest.append(f"({param[1].regex})")
        return group, "".join(rest)

    # --- finding ------------------------------------------------------------------------------

    def match(self, method: str, path: str) -> Match | None:
        """The route for ``method`` and ``path`` and its converted parameters, as
        ``(rule, params)``, or None (see :meth:`allowed` for why). This runs for every
        request: it is written for speed."""
        methods = self._static.get(path)
        if methods is not None:
            rule = methods.get(method)
            if rule is not None:
                return rule, {}
        groups = self._groups
        end = len(path)
        while (slash := path.rfind("/", 0, end)) >= 0:
            # The path's prefixes ending in "/", longest (most specific) first.
            end = slash
            group = groups.get(path[: slash + 1])
            if group is None:
                continue
            compiled = group.compiled.get(method)
            if compiled is None:
                compiled = group.compiled[method] = self._compile(group, method)
            found = compiled[0].fullmatch(path, slash + 1)
            if found is None:
                continue
            rule, params = compiled[1][found.lastindex]
            get = found.group
            try:
                if len(params) == 1:  # the usual case, without a comprehension's frame
                    name, to_python, index = params[0]
                    values = {name: to_python(get(index))}
                else:
                    values = {name: to_python(get(index)) for name, to_python, index in params}
            except ValueError:
                return self._match_slowly(method, path, after=rule)
            return rule, values
        return None

    def _reached(self, path: str) -> list[tuple[_Group, int]]:
        """The groups whose prefix ``path`` starts with, longest first, with where the
        rest of the path starts."""
        reached = []
        end = len(path)
        while (slash := path.rfind("/", 0, end)) >= 0:
            end = slash
            group = self._groups.get(path[: slash + 1])
            if group is not None:
                reached.append((group, slash + 1))
        return reached

    @staticmethod
    def _compile(
        group: _Group, method: str
    ) -> tuple[re.Pattern[str], dict[int, tuple[Rule, list]]]:
        """One pattern of every rule of ``group`` that takes ``method``, in order. Each rule
        is one regex group around its parameters' groups, so ``lastindex`` names the rule."""
        alternatives = []
        groups: dict[int, tuple[Rule, list]] = {}
        index = 1
        for rule, rest in group.rules:
            if method not in rule.methods:
                continue
            params = [
                (name, converter.to_python, index + 1 + n)
                for n, (name, converter) in enumerate(
                    param for _, param in rule.pieces if param is not None
                )
            ]
            alternatives.append(f"({rest})")
            groups[index] = (rule, params)
            index += 1 + len(params)
        if not alternatives:
            return re.compile(r"(?!)"), {}
        return re.compile("|".join(alternatives), re.DOTALL), groups

    def _match_slowly(self, method: str, path: str, after: Rule) -> Match | None:
        """Matching again rule by rule, past ``after`` whose converter refused the value."""
        passed = False
        for group, position in self._reached(path):
            for rule, rest in group.rules:
                if not passed:
                    passed = rule is after
                    continue
                if method not in rule.methods:
                    continue
                found = re.fullmatch(rest, path[position:], re.DOTALL)
                if found is None:
                    continue
                params = [param for _, param in rule.pieces if param is not None]
                try:
                    values = {
                        name: converter.to_python(text)
                        for (name, converter), text in zip(params, found.groups(), strict=True)
                    }
                except ValueError:
                    continue
                return rule, values
        return None

    def allowed(self, path: str) -> set[str]:
        """Every method some route accepts for ``path`` (empty: no route has this path)."""
        found: set[str] = set()
        static = self._static.get(path)
        if static:
            found.update(static)
        for method in HTTP_METHODS + tuple(
            sorted({m for rule in self.rules for m in rule.methods} - set(HTTP_METHODS))
        ):
            if method not in found and self.match(method, path) is not None:
                found.add(method)
        return found

    # --- building -----------------------------------------------------------------------------

    def build(self, endpoint: str, values: Mapping[str, Any]) -> str:
        """The path (and query) of ``endpoint`` with ``values``."""
        rule = self.by_endpoint.get(endpoint)
        if rule is None:
            raise BuildError(f"no route is named {endpoint!r}")
        return rule.build(values)


def _explicit(rule: Rule) -> frozenset[str]:
    return rule.methods - {"HEAD"} if rule.implicit_head else rule.methods
