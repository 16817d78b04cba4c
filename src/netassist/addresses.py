"""The one parser of network addresses for every command and for the Python API.

Every address a user types goes through :func:`parse` (or :func:`parse_pair` for commands
that also take ``HOST PORT`` as two words), so ``netassist tcp``, ``udp``, ``files``,
``serve`` and ``run`` read the same text the same way:

==================  ==============================================================
``PORT``            ``127.0.0.1:PORT``: nothing listens beyond loopback unless asked
``:PORT``           the same; an empty host is loopback too, never "every interface"
``HOST:PORT``       a name or an IPv4 address
``[V6]:PORT``       an IPv6 address, in brackets as in URLs (``[::1]:8000``)
``HOST``, ``[V6]``  the command's default port, where it has one
``V6``              a bare IPv6 address (two colons or more), default port only
``unix:PATH``       a Unix socket, where the command can listen on one
==================  ==============================================================

A port is ASCII digits only, 1 to 65535; 0 ("any free port") only for a listener. Python's
``int()`` would also take ``+9``, ``9_0_9_0`` and full-width digits; users mean none of them.

This module is pure: it never resolves a name or touches a socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netassist.errors import BadPortError, UsageError

LOOPBACK = "127.0.0.1"
"""Where ``PORT`` and ``:PORT`` point: listeners stay on this machine unless told otherwise."""

_HOST_FORBIDDEN = frozenset(" \t\r\n/\\[]@?#")


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP/UDP ``host`` and ``port``, or a Unix socket ``path`` (then host and port are unset)."""

    host: str = LOOPBACK
    port: int = 0
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        """True for a Unix socket address."""
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_port(text: str | int, *, listening: bool = False) -> int:
    """``text`` as a port number, or :class:`BadPortError` naming what is wrong.

    ``listening`` admits port 0, which asks the system for any free port.
    """
    low = 0 if listening else 1
    shown = str(text)
    if isinstance(text, bool) or not (
        isinstance(text, int) or (shown.isascii() and shown.isdigit())
    ):
        raise BadPortError(f"bad port {shown!r}: give a number from {low} to 65535")
    port = int(shown)
    if not low <= port <= 65535:
        raise BadPortError(f"bad port {port}: give a number from {low} to 65535")
    return port


def parse(
    text: str,
    *,
    default_port: int | None = None,
    listening: bool = False,
    unix: bool = False,
) -> Address:
    """Read one address in any of the forms in this module's table.

    ``default_port`` lets a bare host stand alone; without it a port is required.
    ``listening`` admits port 0; ``unix`` admits ``unix:PATH``.
    """
    if text.startswith("unix:"):
        if not unix:
            raise UsageError(f"{text!r}: a Unix socket cannot be used here; give HOST:PORT")
        if not text[5:]:
            raise UsageError("unix: needs a path, as in unix:/tmp/app.sock")
        return Address(path=text[5:])
    host, port = _split(text)
    if port is None:
        if default_port is None:
            raise _no_port(text, host)
        port_number = default_port
    else:
        port_number = parse_port(port, listening=listening)
    return Address(_check_host(host or LOOPBACK, text), port_number)


def parse_pair(
    words: list[str],
    *,
    default_port: int | None = None,
    listening: bool = False,
) -> tuple[Address, list[str]]:
    """The address at the start of ``words``, and the words after it.

    Commands that take ``HOST PORT`` as two words (as nc does) also take one ``HOST:PORT``,
    ``[V6]:PORT``, ``:PORT`` or ``PORT``. One word that holds a port is the whole address;
    otherwise the first word is the host and the second the port.
    """
    if not words:
        raise UsageError("give an address: HOST PORT or HOST:PORT")
    first, rest = words[0], words[1:]
    host, port = _split(first)
    if port is not None:
        return parse(first, listening=listening), rest
    if not rest:
        if default_port is not None:
            return parse(first, default_port=default_port, listening=listening), rest
        raise _no_port(first, host)
    return Address(_check_host(host, first), parse_port(rest[0], listening=listening)), rest[1:]


def _split(text: str) -> tuple[str, str | None]:
    """``(host, port or None)`` from the text, by its shape alone."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"bad address {text!r}: close the bracket, as in [::1]:8000")
        host, after = text[1:end], text[end + 1 :]
        if not after:
            return _ipv6(host, text), None
        if not after.startswith(":"):
            raise UsageError(f"bad address {text!r}: write IPv6 as [::1]:8000")
        return _ipv6(host, text), after[1:]
    colons = text.count(":")
    if colons == 0:
        if text.isascii() and text.isdigit():
            return "", text
        return text, None
    if colons == 1:
        host, _, port = text.partition(":")
        return host, port
    # Two colons or more without brackets can only be an IPv6 address with no port.
    return _ipv6(text, text), None


def _no_port(text: str, host: str) -> UsageError:
    if not host:
        return UsageError("an empty address: give HOST:PORT or PORT")
    if ":" in host:
        return UsageError(
            f"{text!r} has no port: an IPv6 address goes in brackets, as in [::1]:8000"
        )
    return UsageError(f"{text!r} has no port: give HOST:PORT or HOST PORT")


def _ipv6(host: str, text: str) -> str:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise UsageError(
            f"bad address {text!r}: an IPv6 address goes in brackets, as in [::1]:8000"
        ) from None
    return host


def _check_host(host: str, text: str) -> str:
    if not host:
        raise UsageError(f"bad address {text!r}: the host is empty")
    if _HOST_FORBIDDEN.intersection(host) and ":" not in host:
        raise UsageError(f"bad address {text!r}: a host name has no spaces, slashes or brackets")
    return host
