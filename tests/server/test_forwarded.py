"""The proxy-header rules (``server/forwarded.py``), without a server: who is believed, and
what a believed proxy may set."""

from __future__ import annotations

import pytest

from netassist.server import forwarded
from netassist.server.forwarded import TrustedPeers


def environ(**http: str) -> dict:
    base = {"REMOTE_ADDR": "10.0.0.2", "REMOTE_PORT": "5555", "wsgi.url_scheme": "http"}
    base.update({"HTTP_" + k.upper(): v for k, v in http.items()})
    return base


@pytest.mark.parametrize(
    ("entries", "remote", "trusted"),
    [
        (["127.0.0.1"], ("127.0.0.1", 1), True),
        (["127.0.0.1"], ("127.0.0.2", 1), False),
        (["127.0.0.1"], ("::ffff:127.0.0.1", 1, 0, 0), True),  # a dual-stack socket's view
        (["127.0.0.1"], None, False),  # a unix: socket's peer is not 127.0.0.1
        (["unix"], None, True),
        (["unix"], ("127.0.0.1", 1), False),
        (["10.0.0.0/8"], ("10.200.3.4", 1), True),
        (["10.0.0.0/8"], ("11.0.0.1", 1), False),
        (["::1"], ("::1", 1, 0, 0), True),
        (["*"], ("203.0.113.9", 1), True),
        (["*"], None, True),
        ([], ("127.0.0.1", 1), False),
    ],
)
def test_who_is_believed(entries, remote, trusted):
    assert TrustedPeers(entries).trusts(remote) is trusted


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "unix:", "1.2.3"])
def test_an_entry_that_is_no_address_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        TrustedPeers([bad])


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # A client's own (spoofed) entry is left of what our proxy appended: not believed.
        ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # Hops that are ours are skipped from the right.
        ("203.0.113.7, 10.0.0.9, 10.0.0.8", "203.0.113.7"),
        ("10.0.0.9, 10.0.0.8", "10.0.0.9"),  # all ours: the leftmost
        ("2001:db8::7", "2001:db8::7"),
    ],
)
def test_x_forwarded_for_is_read_from_the_right(chain, client):
    seen = environ(x_forwarded_for=chain)
    forwarded.apply(seen, TrustedPeers(["10.0.0.0/8"]))
    assert seen["REMOTE_ADDR"] == client
    assert "REMOTE_PORT" not in seen  # the proxy's port says nothing of the client
    assert seen["HTTP_X_FORWARDED_FOR"] == chain  # kept for the app


@pytest.mark.parametrize("garbage", ["unknown", "1.2.3.4, <script>", "1.2.3.4,, x"])
def test_a_chain_with_garbage_changes_nothing(garbage):
    seen = environ(x_forwarded_for=garbage)
    forwarded.apply(seen, TrustedPeers(["10.0.0.0/8"]))
    assert seen["REMOTE_ADDR"] == "10.0.0.2" and seen["REMOTE_PORT"] == "5555"


@pytest.mark.parametrize(
    ("proto", "scheme"), [("https", "https"), ("HTTPS", "https"), ("http, https", "https")]
)
def test_x_forwarded_proto_sets_the_scheme(proto, scheme):
    seen = environ(x_forwarded_proto=proto)
    forwarded.apply(seen, TrustedPeers([]))
    assert seen["wsgi.url_scheme"] == scheme
    assert seen["REMOTE_ADDR"] == "10.0.0.2"


def test_an_unknown_scheme_is_ignored():
    seen = environ(x_forwarded_proto="gopher")
    forwarded.apply(seen, TrustedPeers([]))
    assert seen["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize(
    ("header", "addr", "port", "scheme"),
    [
        ("for=192.0.2.60;proto=https", "192.0.2.60", None, "https"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17", "4711", "http"),
        ("for=6.6.6.6, for=192.0.2.43:8080;proto=https", "192.0.2.43", "8080", "https"),
        ("For=192.0.2.1;Proto=HTTPS;by=10.0.0.1", "192.0.2.1", None, "https"),
    ],
)
def test_forwarded_rfc_7239(header, addr, port, scheme):
    seen = environ(forwarded=header)
    forwarded.apply(seen, TrustedPeers([]))
    assert seen["REMOTE_ADDR"] == addr
    assert seen.get("REMOTE_PORT") == port
    assert seen["wsgi.url_scheme"] == scheme


@pytest.mark.parametrize("header", ["for=unknown", "for=_hidden", 'for="[::1'])
def test_forwarded_without_an_address_changes_nothing(header):
    seen = environ(forwarded=header)
    forwarded.apply(seen, TrustedPeers([]))
    assert seen["REMOTE_ADDR"] == "10.0.0.2"


def test_x_forwarded_wins_over_forwarded():
    # nginx sets X-Forwarded-For and passes a client's Forwarded through untouched.
    seen = environ(x_forwarded_for="203.0.113.7", forwarded="for=6.6.6.6;proto=https")
    forwarded.apply(seen, TrustedPeers([]))
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("203.0.113.7", "http")
