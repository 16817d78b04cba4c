"""Ports, name resolution, bound sockets and printable addresses, with clear errors."""

from __future__ import annotations

import os
import socket
from typing import Any

from netassist.errors import ExitCode, NetassistError, explain

DEFAULT_LISTEN_HOST = "127.0.0.1"
#: How much one read from a socket, a file or stdin takes at most.
CHUNK = 256 * 1024


def format_address(address: Any) -> str:
    """``host:port`` for IPv4 and names, ``[host]:port`` for IPv6, the path for Unix sockets."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def resolve(host: str, port: int, socktype: int, *, proto: str, family: int = 0) -> list[tuple]:
    """All ``(family, type, proto, canonname, sockaddr)`` for ``host``, IPv4/IPv6/names
    (only of ``family`` when it is given)."""
    try:
        return socket.getaddrinfo(host, port, family, socktype)
    except (OSError, UnicodeError) as exc:
        if isinstance(exc, UnicodeError):
            exc = socket.gaierror(str(exc))
        raise explain(exc, f"looking up {host!r} for {proto}") from None


def explain_denied(exc: BaseException, doing: str, hint: str | None) -> NetassistError:
    """:func:`explain`, with a permission-denied hint that fits what was being done."""
    if isinstance(exc, PermissionError):
        return NetassistError(
            f"{doing}: permission denied" + (f" ({hint})" if hint else ""),
            ExitCode.PERMISSION_DENIED,
        )
    return explain(exc, doing)


def _bound(host: str, port: int, socktype: int, proto: str, family: int = 0) -> socket.socket:
    family, _, _, _, sockaddr = resolve(host, port, socktype, proto=proto, family=family)[0]
    sock = socket.socket(family, socktype)
    try:
        if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            # "::" should take IPv4 clients too, as users of nc and socat expect.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if socktype == socket.SOCK_STREAM and os.name != "nt":
            # On Windows SO_REUSEADDR lets two listeners share a port; elsewhere it only
            # skips TIME_WAIT, so a restarted listener can bind at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        low = "ports below 1024 need root; try a port above 1024" if 0 < port < 1024 else None
        raise explain_denied(exc, f"binding {proto} {format_address(sockaddr)}", low) from None
    return sock


def bind_udp(host: str, port: int, family: int = 0) -> socket.socket:
    """A UDP socket bound to ``host:port`` (port 0: any free port), of ``family`` if given."""
    return _bound(host, port, socket.SOCK_DGRAM, "udp", family)


def listen_tcp(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: any free port)."""
    sock = _bound(host, port, socket.SOCK_STREAM, "tcp")
    sock.listen(backlog)
    return sock


def connect_tcp(host: str, port: int, timeout: float | None = None) -> socket.socket:
    """Connect to ``host:port``, trying each address the name resolves to in turn.

    ``timeout`` bounds the whole attempt; the returned socket is blocking, with no timeout.
    """
    last: OSError | None = None
    where = f"connecting to {format_address((host, port))}"
    for family, socktype, proto, _, sockaddr in resolve(
        host, port, socket.SOCK_STREAM, proto="tcp"
    ):
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert last is not None
    raise explain_denied(last, where, "a firewall may refuse it") from None
