"""How --threads N take turns (server/turns.py), driven by a fake poller and a fake clock.

Real threads, but every event, every wait and every handoff is decided by the test: no
sleeping, and nothing here depends on how loaded the machine is.
"""

from __future__ import annotations

import queue
import threading

import pytest

from netassist.server.turns import HANDOFF_AFTER, Turns


class FakePoller:
    """Hands out the batches the test queues; an empty poll after a short wait."""

    def __init__(self) -> None:
        self.batches: queue.Queue[list[tuple[int, int]]] = queue.Queue()
        self.pollers: set[str] = set()  # the threads that ever polled

    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        self.pollers.add(threading.current_thread().name)
        try:
            return self.batches.get(timeout=timeout)
        except queue.Empty:
            return []

    def send(self, *fds: int) -> None:
        self.batches.put([(fd, 1) for fd in fds])


class Rig:
    """A Turns on a fake poller with N threads in its loop; records who served what."""

    def __init__(self, threads: int = 4) -> None:
        self.poller = FakePoller()
        self.now = 100.0
        self.served: dict[int, str] = {}
        self.done = threading.Condition()
        self.blocking: dict[int, threading.Event] = {}
        self.entered: dict[int, threading.Event] = {}
        self.started_by: dict[int, str] = {}
        self.turns = Turns(
            self.poller.poll, self.serve, lambda now: None, poll_timeout=0.05, clock=self.clock
        )
        self.threads = [
            threading.Thread(target=self.turns.loop, name=f"t{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def clock(self) -> float:
        return self.now

    def serve(self, fd: int) -> None:
        if fd in self.entered:
            self.started_by[fd] = threading.current_thread().name
            self.entered[fd].set()
        if fd in self.blocking:
            assert self.blocking[fd].wait(10), "never released"
        with self.done:
            self.served[fd] = threading.current_thread().name
            self.done.notify_all()

    def block(self, fd: int) -> tuple[threading.Event, threading.Event]:
        """Make serving ``fd`` wait for the returned release event; and an event set when
        its serving has begun."""
        self.blocking[fd], self.entered[fd] = threading.Event(), threading.Event()
        return self.blocking[fd], self.entered[fd]

    def wait_served(self, *fds: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: all(fd in self.served for fd in fds), 10)

    def stop(self) -> None:
        for event in self.blocking.values():
            event.set()
        self.turns.stop()
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


@pytest.fixture
def rig():
    made = Rig()
    yield made
    made.stop()


def test_quick_events_are_all_served_by_the_thread_whose_turn_it_is(rig):
    # With every thread waiting in the poller they would take the events in turn (910 thread
    # changes in 1,000 requests, bench/README.md); here one thread keeps the turn.
    rig.poller.send(*range(100))
    rig.poller.send(*range(100, 300))
    rig.wait_served(*range(300))
    assert len(set(rig.served.values())) == 1
    assert rig.poller.pollers == set(rig.served.values())  # the others never polled


def test_an_event_that_blocks_passes_the_turn_and_its_batch_goes_on_elsewhere(rig):
    release, entered = rig.block(0)
    rig.poller.send(0, 1, 2, 3)
    assert entered.wait(10)
    assert not rig.turns.check(rig.now + HANDOFF_AFTER / 2)  # not busy long enough yet
    assert rig.turns.check(rig.now + HANDOFF_AFTER)  # the watcher's verdict: pass it on
    rig.wait_served(1, 2, 3)  # while 0 still blocks its thread
    assert 0 not in rig.served
    blocked = rig.started_by[0]
    others = {rig.served[fd] for fd in (1, 2, 3)}
    assert len(others) == 1 and blocked not in others
    release.set()
    rig.wait_served(0)
    assert rig.served[0] not in others
    # The turn was released once, by the watcher: the blocked thread, done, does not release
    # it again, so still only one thread serves (two holders would share these).
    rig.poller.send(*range(10, 110))
    rig.wait_served(*range(10, 110))
    assert len({rig.served[fd] for fd in range(10, 110)}) == 1


def test_the_watcher_never_moves_a_turn_whose_holder_is_polling(rig):
    # Idle: the holder waits in poll, nothing is busy, however late it is.
    assert not rig.turns.check(rig.now + 3600)
    release, entered = rig.block(7)
    rig.poller.send(7)
    assert entered.wait(10)
    assert rig.turns.check(rig.now + 1)
    assert not rig.turns.check(rig.now + 2)  # that event's turn has already been passed on
    release.set()
    rig.wait_served(7)


def test_the_watcher_idles_slowly_and_ticks_fast_while_events_run():
    # watch() with a fake sleep: it records each tick, and stops the loop after a few.
    now = [1000.0]
    ticks: list[float] = []
    turns = Turns(lambda t, n: [], lambda fd: None, lambda now: None, clock=lambda: now[0])

    def sleep(seconds: float) -> None:
        ticks.append(seconds)
        now[0] += seconds
        if len(ticks) == 3:
            turns._busy = (now[0],)  # an event starts being served
        if len(ticks) == 6:
            turns.stop()

    assert turns._poll_turn.acquire(timeout=1)  # a holder has the turn
    turns.watch(sleep)
    quiet, busy = ticks[0], ticks[-1]
    assert quiet > busy == HANDOFF_AFTER
