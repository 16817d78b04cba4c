"""Admission: pending connections and sessions counted apart, per address and in total."""

from __future__ import annotations

import pytest

from netassist.transfer.admission import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_from_one_address_pushes_out_only_its_own_oldest():
    gate = Admission(max_sessions=4, per_address=2, max_pending=10, pending_per_address=3)
    flood = [gate.arrive("10.0.0.66")[0] for _ in range(3)]
    other, evicted = gate.arrive("10.0.0.1")
    assert evicted == []
    ticket, evicted = gate.arrive("10.0.0.66")
    assert evicted == [flood[0]] and flood[0].dropped == "too many unfinished handshakes"
    assert gate.admit(flood[0]) == "too many unfinished handshakes"  # too late for it
    assert gate.admit(ticket) is None and gate.admit(other) is None
    assert gate.pending == 2 and gate.sessions == 2


def test_a_full_pending_table_evicts_from_the_most_crowded_address():
    gate = Admission(max_sessions=4, per_address=4, max_pending=4, pending_per_address=4)
    crowd = [gate.arrive("10.0.0.66")[0] for _ in range(3)]
    lone = gate.arrive("10.0.0.2")[0]
    _, evicted = gate.arrive("10.0.0.3")
    assert evicted == [crowd[0]]
    assert lone.dropped is None
    assert gate.pending == 4


def test_sessions_are_bounded_per_address_and_in_total():
    gate = Admission(max_sessions=3, per_address=2, pending_per_address=3)
    first = [gate.arrive("10.0.0.1")[0] for _ in range(3)]
    assert gate.admit(first[0]) is None and gate.admit(first[1]) is None
    assert gate.admit(first[2]) == "too many connections from 10.0.0.1 (2)"
    second = gate.arrive("10.0.0.2")[0]
    assert gate.admit(second) is None
    third = gate.arrive("10.0.0.3")[0]
    assert gate.admit(third) == "too many clients (3)"
    gate.leave(first[0])
    assert gate.admit(third) is None
    for ticket in (first[1], first[2], second, third):
        gate.leave(ticket)
    assert gate.sessions == 0 and gate.pending == 0


def test_handshakes_past_their_deadline_are_overdue_once():
    clock = Clock()
    gate = Admission(handshake_timeout=5, clock=clock)
    slow = gate.arrive("10.0.0.1")[0]
    clock.now += 3
    quick = gate.arrive("10.0.0.1")[0]
    assert gate.overdue() == []
    clock.now += 2
    assert gate.overdue() == [slow] and slow.dropped == "no handshake within 5 s"
    assert gate.overdue() == []
    assert gate.admit(quick) is None
    clock.now += 60
    assert gate.overdue() == []  # a session has no handshake deadline


def test_leaving_before_the_handshake_frees_the_pending_place():
    gate = Admission(max_sessions=1, per_address=1)
    ticket = gate.arrive("10.0.0.1")[0]
    gate.leave(ticket)
    assert gate.pending == 0
    assert gate.arrive("10.0.0.1")[1] == []


def test_nonsense_limits_are_refused():
    with pytest.raises(ValueError):
        Admission(max_sessions=0)
