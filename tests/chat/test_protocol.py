"""The sans-IO chat protocol, with bytes alone: a network in memory that loses, duplicates and
reorders, a virtual clock, and hypothesis feeding it anything."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netassist.chat import protocol
from netassist.chat.protocol import (
    MAX_TEXT,
    ChatError,
    ChatProtocol,
    ChatSettings,
    Delivered,
    Dropped,
    Joined,
    JoinUnanswered,
    Left,
    Rejoined,
    Renamed,
    TooLong,
    Undelivered,
)
from tests.chat.simnet import SimNet, parse_address


def texts_by_sender(net: SimNet, i: int) -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for event in net.received(i):
        shown.setdefault(event.sender.name, []).append(event.text)
    return shown


def exchange(net: SimNet, per_peer: int) -> None:
    for n in range(per_peer):
        for peer in net.peers:
            peer.send_text(f"{peer.name} {n}", net.now)
        net.run(net.now + 0.01)
    net.run(net.now + 120, stop=lambda: all(p.pending == 0 for p in net.peers))


def test_three_peers_meet_through_one_and_exchange_in_order():
    net = SimNet(["ana", "bo", "cy"])
    net.meet()
    assert net.everyone_knows_everyone()
    exchange(net, 20)
    for i, peer in enumerate(net.peers):
        shown = texts_by_sender(net, i)
        others = [p.name for p in net.peers if p is not peer]
        assert sorted(shown) == sorted(others)
        for name in others:
            assert shown[name] == [f"{name} {n}" for n in range(20)]
        delivered = [e for e in net.events[i] if isinstance(e, Delivered)]
        assert len(delivered) == 20


@pytest.mark.parametrize("seed", range(4))
def test_loss_duplicates_and_reordering_show_each_message_once_in_order(seed):
    net = SimNet(["ana", "bo", "cy"], seed=seed, drop=0.2, duplicate=0.05, delay=0.05)
    net.meet()
    exchange(net, 100)
    for i, peer in enumerate(net.peers):
        shown = texts_by_sender(net, i)
        for other in net.peers:
            if other is not peer:
                assert shown[other.name] == [f"{other.name} {n}" for n in range(100)]
        assert not [e for e in net.events[i] if isinstance(e, Undelivered)]
        assert len([e for e in net.events[i] if isinstance(e, Delivered)]) == 100
    assert sum(p.duplicates for p in net.peers) > 0  # the network did duplicate
    assert sum(p.retransmits for p in net.peers) > 0


def test_a_later_acknowledgement_sends_a_lost_message_again_before_its_timer():
    net = SimNet(["ana", "bo"])
    net.meet()
    start = net.now
    net.peers[0].send_text("one", net.now)
    net.peers[0].take_datagrams()  # lost
    net.peers[0].send_text("two", net.now)
    net.run(start + 0.1)  # well before the first retransmission timer (0.25 s)
    assert [e.text for e in net.received(1)] == ["one", "two"]
    assert net.peers[0].retransmits == 1


def test_a_message_given_up_does_not_hold_back_the_next():
    net = SimNet(["ana", "bo"], settings=ChatSettings(max_tries=3, peer_timeout=60))
    net.meet()
    net.down.add(1)
    net.peers[0].send_text("lost", net.now)
    net.run(net.now + 10)
    undelivered = [e for e in net.events[0] if isinstance(e, Undelivered)]
    assert [why for _, why in undelivered[0].missing] == ["no acknowledgement after 3 tries"]
    net.down.discard(1)
    net.peers[0].send_text("after", net.now)
    net.run(net.now + 10, stop=lambda: net.peers[0].pending == 0)
    assert [e.text for e in net.received(1)] == ["after"]


def test_a_silent_member_leaves_and_its_messages_are_undelivered():
    net = SimNet(["ana", "bo"])
    net.meet()
    net.down.add(1)
    net.peers[0].send_text("anyone?", net.now)
    net.run(net.now + 15)
    events = net.events[0]
    assert [e.reason for e in events if isinstance(e, Left)] == ["silent"]
    (undelivered,) = [e for e in events if isinstance(e, Undelivered)]
    assert undelivered.missing[0][0].name == "bo"
    assert undelivered.missing[0][1] == "it went silent"


def test_a_member_dropped_on_one_side_only_still_gets_every_message_after():
    # ana stops hearing bo for longer than the timeout while bo still hears ana: ana drops
    # bo, bo keeps ana. When bo is heard again ana admits it anew, with a new stream of
    # sequence numbers; bo must not take them for old ones.
    net = SimNet(["ana", "bo"])
    net.meet()
    for n in range(3):
        net.peers[0].send_text(f"before {n}", net.now)
    net.run(net.now + 1)
    net.blocked.add((1, 0))
    net.run(net.now + 12)
    assert [e.reason for e in net.events[0] if isinstance(e, Left)] == ["silent"]
    assert len(net.peers[1].members) == 1  # bo still has ana
    net.blocked.clear()
    net.run(net.now + 3)  # bo pings; ana admits it again
    net.peers[0].send_text("after", net.now)
    net.run(net.now + 10, stop=lambda: net.peers[0].pending == 0)
    assert [e.text for e in net.received(1)] == [*(f"before {n}" for n in range(3)), "after"]
    # and the other way round, bo's stream to ana starts again too
    net.peers[1].send_text("back", net.now)
    net.run(net.now + 10, stop=lambda: net.peers[1].pending == 0)
    assert [e.text for e in net.received(0)] == ["back"]


def test_a_sender_readmitted_mid_stream_is_not_refused_as_too_far_ahead():
    # bo drops ana (silence seen from bo's side only) and admits it again when its next
    # message arrives: that message's seq is far past 1, where bo's new view of ana starts.
    net = SimNet(["ana", "bo"], settings=ChatSettings(hold_max=4))
    net.meet()
    for n in range(10):
        net.peers[0].send_text(f"before {n}", net.now)
        net.run(net.now + 0.1)
    net.blocked.add((0, 1))
    net.run(net.now + 12)
    assert [e.reason for e in net.events[1] if isinstance(e, Left)] == ["silent"]
    net.blocked.clear()
    net.peers[0].send_text("after", net.now)
    net.run(net.now + 0.3)  # at once, not when a ping's base happens to come by
    assert [e.text for e in net.received(1)][-1] == "after"
    assert not [e for e in net.events[0] if isinstance(e, Undelivered)]


def test_leave_is_announced():
    net = SimNet(["ana", "bo", "cy"])
    net.meet()
    net.peers[2].leave(net.now)
    net.run(net.now + 1)
    for i in (0, 1):
        assert [(e.peer.name, e.reason) for e in net.events[i] if isinstance(e, Left)] == [
            ("cy", "quit")
        ]


def test_a_restarted_peer_rejoins_and_gets_what_was_owed_to_it():
    net = SimNet(["ana", "bo", "cy"])
    net.meet()
    net.down.add(1)
    net.peers[0].send_text("while you were away", net.now)
    net.run(net.now + 1)
    # bo comes back: same address and name, a new id; it knows only cy.
    net.peers[1] = ChatProtocol("bo", peer_id="b" * 16, parse_address=parse_address)
    net.events[1] = []
    net.down.discard(1)
    net.peers[1].join(net.addresses[2], net.now)
    net.run(net.now + 10, stop=lambda: net.everyone_knows_everyone() and not net.peers[0].pending)
    for i in (0, 2):
        (rejoined,) = [e for e in net.events[i] if isinstance(e, Rejoined)]
        assert rejoined.peer.id == "b" * 16 and rejoined.old.name == "bo"
    assert [e.text for e in net.received(1)] == ["while you were away"]
    assert [e for e in net.events[0] if isinstance(e, Delivered)]


def test_private_messages_reach_only_their_recipient_and_keep_order():
    net = SimNet(["ana", "bo", "cy"], seed=3, drop=0.2, delay=0.05)
    net.meet()
    ana = net.peers[0]
    (bo,) = ana.find("bo")
    for n in range(30):
        if n % 3 == 0:
            ana.send_text(f"private {n}", net.now, to=[bo.id])
        else:
            ana.send_text(f"room {n}", net.now)
    net.run(net.now + 60, stop=lambda: ana.pending == 0)
    assert [e.text for e in net.received(1)] == [
        f"private {n}" if n % 3 == 0 else f"room {n}" for n in range(30)
    ]
    assert [e.text for e in net.received(2)] == [f"room {n}" for n in range(30) if n % 3]
    assert all(e.private == e.text.startswith("private") for e in net.received(1))


def test_rename_is_seen_by_the_others():
    net = SimNet(["ana", "bo"])
    net.meet()
    net.peers[0].rename("anna", net.now)
    net.run(net.now + 1)
    assert [(e.old_name, e.peer.name) for e in net.events[1] if isinstance(e, Renamed)] == [
        ("ana", "anna")
    ]


def test_unanswered_join_is_reported():
    net = SimNet(["ana", "bo"])
    net.down.add(1)
    net.peers[0].join(net.addresses[1], 0.0)
    net.run(60)
    assert [e for e in net.events[0] if isinstance(e, JoinUnanswered)]


def test_limits_and_names():
    peer = ChatProtocol("ana")
    with pytest.raises(ChatError, match="nobody is in the room"):
        peer.send_text("hi", 0.0)
    peer.add_plain_peer(("127.0.0.1", 9090))
    with pytest.raises(TooLong, match="at most 61,440"):
        peer.send_text("x" * (MAX_TEXT + 1), 0.0)
    peer.send_text("中" * (MAX_TEXT // 3), 0.0)  # 60 KiB exactly: fits one datagram
    ((_, data),) = peer.take_datagrams()
    assert len(data) == MAX_TEXT
    for bad in ("", "a b", "x" * 33, "a\x1bb", "a/b"):
        with pytest.raises(ChatError):
            ChatProtocol(bad)
    ChatProtocol("小明")


def test_the_largest_message_fits_one_datagram_with_a_key():
    net = SimNet(["ana", "bo"], key=b"k")
    net.meet()
    net.peers[0].send_text("中" * (MAX_TEXT // 3), net.now)
    datagrams = net.peers[0].take_datagrams()
    assert max(len(d) for _, d in datagrams) <= protocol.MAX_DATAGRAM
    for _, data in datagrams:
        net.peers[1].receive(data, net.addresses[0], net.now)
    assert [len(e.text) for e in net.peers[1].take_events() if hasattr(e, "text")] == [20480]


# --- what a hostile or broken peer sends ------------------------------------------------------


def drops(peer: ChatProtocol) -> list[str]:
    return [e.reason for e in peer.take_events() if isinstance(e, Dropped)]


def valid(header: dict, body: bytes = b"", key: bytes | None = None) -> bytes:
    return protocol.encode({"from": "a" * 16, "name": "eve", **header}, body, key)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello", "not a chat datagram"),
        (b"NACH\x02\x00\x00\x02{}", "protocol version 2, not 1"),
        (b"NACH\x01\x00\x00\x05{bad}", "bad JSON header"),
        (b"NACH\x01\x00\x00\x02[]", "bad JSON header"),
        (b"NACH\x01\x00\x00\x09{}", "header cut short"),
        (b"NACH\x01\x00" + b"\xff" * 65501, "header cut short"),
        (b"NACH" + b"x" * 65504, "too large"),
        (valid({"t": "nope"}), "unknown type 'nope'"),
        (valid({"t": "join", "from": "A" * 16}), "bad field 'from'"),
        (valid({"t": "join", "name": ""}), "bad field 'name'"),
        (valid({"t": "msg", "seq": True, "n": 1, "base": 1, "dst": "b" * 16}), "bad field"),
        (
            valid(
                {"t": "msg", "seq": 1, "n": 1, "base": 1, "dst": "b" * 16, "sid": "0" * 8}, b"\xff"
            ),
            "not UTF-8",
        ),
        (valid({"t": "join"}, key=b"other"), "signed with a key"),
    ],
)
def test_malformed_datagrams_are_dropped_and_counted(data, reason):
    peer = ChatProtocol("bo", peer_id="b" * 16)
    peer.receive(data, ("127.0.0.1", 1), 0.0)
    peer.receive(data, ("127.0.0.1", 1), 0.0)
    reasons = drops(peer)
    assert len(reasons) == 2 and reason in reasons[0]
    assert sum(peer.dropped.values()) == 2
    assert not peer.members


def test_wrong_key_and_no_key_are_dropped_with_a_key():
    peer = ChatProtocol("bo", key=b"secret")
    peer.receive(valid({"t": "join"}, key=b"guess"), ("127.0.0.1", 1), 0.0)
    peer.receive(valid({"t": "join"}), ("127.0.0.1", 1), 0.0)
    assert drops(peer) == ["wrong key", "not signed (the sender has no --key)"]
    peer.receive(valid({"t": "join"}, key=b"secret"), ("127.0.0.1", 1), 0.0)
    assert [type(e) for e in peer.take_events()] == [Joined]


def test_a_members_id_from_another_address_is_forged():
    net = SimNet(["ana", "bo"])
    net.meet()
    ana = net.peers[0]
    forged = protocol.encode(
        {
            "t": "msg",
            "from": net.peers[1].id,
            "name": "bo",
            "dst": ana.id,
            "n": 9,
            "seq": 1,
            "sid": "0" * 8,
            "base": 1,
        },
        b"give me your password",
    )
    ana.receive(forged, ("10.9.9.9", 9000), net.now)
    assert drops(ana) == ["forged sender (a member's id from another address)"]


def test_the_wire_format_is_the_documented_one():
    data = protocol.encode({"t": "join", "from": "0" * 16, "name": "小明"})
    assert data[:8] == b"NACH\x01\x00" + len(data[8:]).to_bytes(2, "big")
    assert json.loads(data[8:]) == {"t": "join", "from": "0" * 16, "name": "小明"}
    signed = protocol.encode({"t": "join"}, key=b"k")
    assert signed[5] == 1 and len(signed) == 8 + 32 + len(b'{"t":"join"}')


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_taken_without_raising(data):
    peer = ChatProtocol("bo", peer_id="b" * 16)
    peer.receive(data, ("127.0.0.1", 1), 0.0)
    peer.receive(b"NACH\x01\x00" + data, ("127.0.0.1", 1), 0.0)
    peer.tick(1.0)


SAMPLES = [
    valid({"t": "join"}),
    valid({"t": "peers", "peers": [{"id": "c" * 16, "name": "c", "addr": "127.0.0.1:5"}]}),
    valid({"t": "ping", "dst": "b" * 16, "sid": "0" * 8, "base": 1}),
    valid(
        {"t": "msg", "dst": "b" * 16, "sid": "0" * 8, "n": 1, "seq": 1, "base": 1}, "你好".encode()
    ),
    valid({"t": "ack", "dst": "b" * 16, "sid": "0" * 8, "seq": 1, "upto": 2}),
    valid({"t": "leave"}),
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SAMPLES), st.integers(0, 80), st.binary(max_size=4))))
def test_mutated_datagrams_never_raise_and_keep_the_state_sound(mutations):
    peer = ChatProtocol("bo", peer_id="b" * 16)
    for sample, position, insert in mutations:
        data = sample[:position] + insert + sample[position + len(insert) :]
        peer.receive(data, ("127.0.0.1", 1), 0.0)
    peer.tick(100.0)
    assert len(peer.members) <= protocol.MAX_MEMBERS
    shown = [e.id for e in peer.take_events() if hasattr(e, "text")]
    assert len(shown) == len(set(shown))  # nothing shown twice


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32))
def test_any_loss_pattern_still_delivers_once_in_order(seed):
    net = SimNet(["ana", "bo"], seed=seed, drop=0.3, duplicate=0.1, delay=0.2)
    net.meet()
    exchange(net, 15)
    for i, other in ((0, "bo"), (1, "ana")):
        assert texts_by_sender(net, i)[other] == [f"{other} {n}" for n in range(15)]
