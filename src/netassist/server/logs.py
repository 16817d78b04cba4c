"""The server's two logs: the access log (one line per request, Apache/nginx formats) and
the error log (Python logging, with levels), both files that USR1 reopens for logrotate.

Access-log formats use Apache's ``mod_log_config`` directives, so the default, the
``combined`` format, is what log tools (GoAccess, AWStats, fail2ban) read as it is:

=================  ===========================================================
``%h`` ``%a``      the client's address (after ``--forwarded-allow-ips``' rules)
``%l``             ``-`` (identd, never used)
``%u``             the user of HTTP Basic authentication, or ``-``
``%t``             the time the request arrived: ``[10/Oct/2000:13:55:36 +0000]``
``%r``             the request line: ``GET /path?q HTTP/1.1``
``%s`` ``%>s``     the status code
``%b`` ``%B``      bytes of the response body (``%b`` writes ``-`` for none)
``%D`` ``%T``      how long the request took, in microseconds / whole seconds
``%m`` ``%U``      the method; the path without the query
``%q`` ``%H``      the query with its ``?`` (or nothing); the protocol
``%P``             the worker's process id
``%{Name}i``       a request header; ``%{Name}o`` a response header
``%{NAME}e``       a key of the WSGI environ
``%%``             a per cent sign
=================  ===========================================================

Everything that came from the client or the app is escaped as nginx and Apache do
(``"`` and ``\\`` with a backslash, control and non-ASCII bytes as ``\\xHH``), so a request
cannot forge a line or a field. Lines are written with one ``write`` each to a file opened
for appending, so workers sharing one file never mix their lines.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from netassist.errors import explain

_log = logging.getLogger("netassist.server")

ERROR_FORMAT = "[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s"

_DIRECTIVE = re.compile(r"%(?:\{([^}]*)\}([ioe])|(>?[a-zA-Z%]))")
# Bytes as latin-1 characters: what must not reach a log line as it is.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """``text`` safe inside a quoted log field (see the module docstring)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


class Entry:
    """What the access log may say about one finished request."""

    __slots__ = (
        "environ",
        "method",
        "request_headers",
        "response_headers",
        "sent",
        "started",
        "status",
        "target",
        "took",
        "version",
    )

    def __init__(
        self,
        *,
        method: str,
        target: str,
        version: str,
        status: str,
        sent: int | None,
        started: float,
        took: float,
        request_headers: list[tuple[bytes, bytes]],
        response_headers: list[tuple[str, str]] | None,
        environ: dict | None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.status = status
        self.sent = sent
        self.started = started
        self.took = took
        self.request_headers = request_headers
        self.response_headers = response_headers or []
        self.environ = environ or {}


Field = Callable[[Entry], str]

_clock_cache: list[Any] = [-1, ""]


def _clock(entry: Entry) -> str:
    second = int(entry.started)
    if _clock_cache[0] != second:
        _clock_cache[0] = second
        _clock_cache[1] = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
    return _clock_cache[1]


def _remote(entry: Entry) -> str:
    return escape(entry.environ.get("REMOTE_ADDR") or "-")


def _user(entry: Entry) -> str:
    auth = _request_header(entry, b"authorization")
    if auth[:6].lower() != "basic ":
        return "-"
    try:
        user = base64.b64decode(auth[6:].strip(), validate=True).split(b":", 1)[0]
    except ValueError:
        return "-"
    return escape(user.decode("latin-1")) or "-"


def _request_header(entry: Entry, name: bytes) -> str:
    values = [v.decode("latin-1") for n, v in entry.request_headers if n.lower() == name]
    return ",".join(values)


def _path(entry: Entry) -> str:
    return escape(entry.target.partition("?")[0])


def _query(entry: Entry) -> str:
    _, mark, query = entry.target.partition("?")
    return escape(mark + query)


_FIELDS: dict[str, Field] = {
    "h": _remote,
    "a": _remote,
    "l": lambda e: "-",
    "u": _user,
    "t": _clock,
    "r": lambda e: escape(f"{e.method} {e.target} HTTP/{e.version}"),
    "s": lambda e: e.status.split(" ", 1)[0] if e.status else "-",
    "b": lambda e: str(e.sent) if e.sent else "-",
    "B": lambda e: str(e.sent or 0),
    "D": lambda e: str(int(e.took * 1_000_000)),
    "T": lambda e: str(int(e.took)),
    "m": lambda e: escape(e.method),
    "U": _path,
    "q": _query,
    "H": lambda e: f"HTTP/{e.version}",
    "P": lambda e: str(os.getpid()),
    "%": lambda e: "%",
}
_FIELDS[">s"] = _FIELDS["s"]


def _header_field(kind: str, name: str) -> Field:
    if kind == "i":
        wanted = name.lower().encode("latin-1")
        return lambda e: escape(_request_header(e, wanted)) or "-"
    if kind == "o":
        lowered = name.lower()

        def response_header(entry: Entry) -> str:
            values = [v for n, v in entry.response_headers if n.lower() == lowered]
            return escape(",".join(values)) or "-"

        return response_header
    return lambda e: escape(str(e.environ.get(name, ""))) or "-"


def compile_format(text: str) -> Callable[[Entry], str]:
    """A function that writes one log line (without its newline) for an :class:`Entry`;
    ValueError names a directive this module does not know."""
    parts: list[str | Field] = []
    position = 0
    for match in _DIRECTIVE.finditer(text):
        literal = text[position : match.start()]
        if "%" in literal:
            raise ValueError(f"{literal[literal.index('%') :][:3]!r} is not a known field")
        if literal:
            parts.append(literal)
        name, kind, letter = match.groups()
        if kind:
            if not name:
                raise ValueError(f"{match.group(0)!r} names no header or key")
            parts.append(_header_field(kind, name))
        else:
            field = _FIELDS.get(letter)
            if field is None:
                known = " ".join(f"%{k}" for k in _FIELDS if k != "%")
                raise ValueError(f"%{letter} is not a known field (known: {known}, %{{Name}}i/o/e)")
            parts.append(field)
        position = match.end()
    tail = text[position:]
    if "%" in tail:
        raise ValueError(f"{tail[tail.index('%') :][:3]!r} is not a known field")
    if tail:
        parts.append(tail)
    literals = [p if isinstance(p, str) else None for p in parts]
    fields = [(i, p) for i, p in enumerate(parts) if not isinstance(p, str)]

    def line(entry: Entry) -> str:
        out = literals.copy()
        for index, field in fields:
            out[index] = field(entry)
        return "".join(out)  # type: ignore[arg-type]

    return line


class LogFile:
    """A log destination: ``-`` for stderr, or a file opened for appending that
    :meth:`reopen` opens again under the same descriptor number (logrotate moved it)."""

    failing = False  # the last write failed, and that was said

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.fd = sys.stderr.fileno()
        else:
            self.fd = self._open()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise explain(exc, f"opening the log {self.path}") from None

    def reopen(self) -> None:
        """Open the path again; the descriptor number stays, so every writer (threads, the
        error log's stream) goes on writing, into the new file."""
        if self.path == "-":
            return
        fresh = self._open()
        try:
            os.dup2(fresh, self.fd)
        finally:
            os.close(fresh)

    def write(self, line: str) -> None:
        """Write one line (with its newline) in one call, so lines never interleave. A
        failed write (a full disk) costs its line, never the request: it is said once, and
        once more when the log takes lines again."""
        data = line.encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:
            if not self.failing:
                self.failing = True
                why = explain(exc, f"writing the access log {self.path}")
                _log.warning("%s; requests are not logged until it can be written", why)
            return
        if self.failing:
            self.failing = False
            _log.warning("access log %s is written again", self.path)

    def close(self) -> None:
        """Close a file (stderr stays open)."""
        if self.path != "-":
            os.close(self.fd)


class AccessLog:
    """One line per finished request, in ``format``, to ``file``."""

    def __init__(self, file: LogFile, format: str) -> None:
        self.file = file
        self._line = compile_format(format)

    def log(self, entry: Entry) -> None:
        """Write the line of ``entry``."""
        try:
            text = self._line(entry)
        except Exception:  # a header the app set oddly must not cost the request
            _log.exception("cannot write an access-log line")
            return
        self.file.write(text + "\n")


class Logs:
    """The error log and the access log of one server, set up from its configuration."""

    def __init__(
        self, error_log: str, level: str, access_log: str | None, access_format: str
    ) -> None:
        self.error: LogFile | None = None
        self.access: AccessLog | None = None
        self._handler: logging.StreamHandler | None = None
        self.configure(error_log, level, access_log, access_format)

    def configure(
        self, error_log: str, level: str, access_log: str | None, access_format: str
    ) -> None:
        """Point the logs where a (new) configuration says; a file that stays is kept open."""
        if self.error is None or self.error.path != error_log:
            error = LogFile(error_log)
            stream = (
                sys.stderr
                if error_log == "-"
                else open(error.fd, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
            )
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter(ERROR_FORMAT))
            root = logging.getLogger()
            for old in list(root.handlers):
                root.removeHandler(old)  # ours replaces basicConfig's or a previous one
            root.addHandler(handler)
            self._close_error()
            self.error, self._handler = error, handler
        logging.getLogger().setLevel(getattr(logging, level.upper()))
        if access_log is None:
            self._close_access()
        elif self.access is None or self.access.file.path != access_log:
            access = AccessLog(LogFile(access_log), access_format)
            self._close_access()
            self.access = access
        else:
            self.access = AccessLog(self.access.file, access_format)

    def reopen(self) -> None:
        """USR1: open both files again (after logrotate moved them)."""
        if self._handler is not None:
            self._handler.flush()
        if self.error is not None:
            self.error.reopen()
        if self.access is not None:
            self.access.file.reopen()

    def _close_error(self) -> None:
        handler, error = self._handler, self.error
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.flush()
            if error is not None and error.path != "-":
                handler.stream.close()
        if error is not None:
            error.close()
        self._handler = self.error = None

    def _close_access(self) -> None:
        if self.access is not None:
            self.access.file.close()
        self.access = None

    def close(self) -> None:
        """Detach the handler and close the files."""
        self._close_error()
        self._close_access()
