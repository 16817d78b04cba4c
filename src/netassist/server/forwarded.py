"""Which peers may say who the client is: ``--forwarded-allow-ips`` and the proxy headers.

A reverse proxy tells the app the client's address and scheme in ``X-Forwarded-For``,
``X-Forwarded-Proto`` or ``Forwarded`` (RFC 7239). Anyone can send those headers, so they are
believed only from the peers named in ``--forwarded-allow-ips``; from any other peer they are
removed from the environ, so an app that reads them cannot be fooled.

From a trusted peer, ``REMOTE_ADDR`` becomes the address the proxies saw, read from the right:
each proxy appends the address it got the request from, and everything left of the last
trusted hop was written by someone we do not trust (a client can send ``X-Forwarded-For:
1.2.3.4`` to nginx, which then forwards ``1.2.3.4, <the real client>``). ``wsgi.url_scheme``
follows ``X-Forwarded-Proto`` (``http`` or ``https``). ``X-Forwarded-*`` win over ``Forwarded``
when both come: they are what nginx and HAProxy set, and a proxy that sets one kind usually
passes the other through from the client untouched.

The environ builder (``wsgi.py``) applies these rules as it meets the headers: it keeps them
out of the environ for a connection that is not believed, and calls :func:`apply` for one
that is, so a request without proxy headers costs nothing more. Pure: no sockets, only
strings and the environ dict.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

FOR = "HTTP_X_FORWARDED_FOR"
PROTO = "HTTP_X_FORWARDED_PROTO"
FORWARDED = "HTTP_FORWARDED"
_SCHEMES = ("http", "https")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """The parsed ``--forwarded-allow-ips``: addresses and networks, ``unix`` for peers on
    a Unix socket, ``*`` for everyone. Raises ValueError naming an entry it cannot read."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self.networks: list[Network] = []
        for entry in entries:
            text = entry.strip()
            if text == "*":
                self.everyone = True
            elif text == "unix":
                self.unix = True
            else:
                try:
                    self.networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(
                        f"{text!r} is not an IP address, a network (10.0.0.0/8), unix or *"
                    ) from None
        self._cache: dict[str, bool] = {}

    def trusts(self, remote: tuple | None) -> bool:
        """Whether a peer (``(host, port)``, or None on a Unix socket) may set the headers."""
        if self.everyone:
            return True
        if remote is None:
            return self.unix
        return self.trusts_address(remote[0])

    def trusts_address(self, host: str) -> bool:
        """Whether an address (text) is one of ours."""
        known = self._cache.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        trusted = self.everyone or any(address in net for net in self.networks)
        if len(self._cache) < 1024:
            self._cache[host] = trusted
        return trusted


def apply(environ: dict, peers: TrustedPeers) -> None:
    """A trusted peer: ``REMOTE_ADDR`` (and ``REMOTE_PORT``) and ``wsgi.url_scheme`` from its
    headers. The headers stay in the environ for an app that wants the whole chain."""
    hops = _x_forwarded_for(environ.get(FOR)) if FOR in environ else None
    scheme = environ.get(PROTO)
    if scheme is not None:
        scheme = scheme.rsplit(",", 1)[-1].strip().lower()
    if hops is None and scheme is None and FORWARDED in environ:
        hops, scheme = _forwarded(environ[FORWARDED])
    if hops:
        client = _client(hops, peers)
        if client is not None:
            host, port = client
            environ["REMOTE_ADDR"] = host
            if port:
                environ["REMOTE_PORT"] = port
            else:
                environ.pop("REMOTE_PORT", None)  # the proxy's port says nothing of the client
    if scheme in _SCHEMES:
        environ["wsgi.url_scheme"] = scheme


def _client(hops: list[tuple[str, str]], peers: TrustedPeers) -> tuple[str, str] | None:
    """The rightmost hop that is not one of our proxies; the leftmost if all are."""
    for host, port in reversed(hops):
        if not peers.trusts_address(host):
            return host, port
    return hops[0] if hops else None


def _x_forwarded_for(value: str | None) -> list[tuple[str, str]]:
    hops = []
    for part in (value or "").split(","):
        host = part.strip()
        if host and _is_address(host):
            hops.append((host, ""))
        elif host:
            return []  # a chain with garbage in it proves nothing
    return hops


def _forwarded(value: str) -> tuple[list[tuple[str, str]], str | None]:
    """``for`` of each element (with its port, if any) and the last element's ``proto``."""
    hops: list[tuple[str, str]] = []
    scheme = None
    for element in value.split(","):
        for pair in element.split(";"):
            name, equals, raw = pair.partition("=")
            if not equals:
                continue
            name = name.strip().lower()
            raw = raw.strip().strip('"')
            if name == "for":
                hop = _forwarded_node(raw)
                if hop is None:
                    return [], None
                hops.append(hop)
            elif name == "proto":
                scheme = raw.lower()
    return hops, scheme


def _forwarded_node(node: str) -> tuple[str, str] | None:
    """RFC 7239 node: ``192.0.2.1``, ``192.0.2.1:4711``, ``[2001:db8::1]:4711``; obfuscated
    and ``unknown`` nodes name no address (None)."""
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket:
            return None
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = node.partition(":")
    if not _is_address(host):
        return None
    return host, port if port.isdigit() else ""


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
