"""How ``--threads N`` take turns on one poller.

Theory of operation
-------------------
A worker with N threads shares one poller between them. The obvious design, every thread
waiting in ``epoll_wait`` at once, is slow on a small machine: each time a thread releases the
GIL for a system call another one wakes, all N stay runnable, and they take turns on the core;
a request then waits behind the others' time slices (p99 13 ms at 50 connections against
2-3 ms, bench/README.md). So here only one thread at a time polls and serves: **the thread
whose turn it is**. The others sleep on a lock.

State
  ``_turn``       a counter, the number of the current turn;
  ``_poll_turn``  a lock held by the thread whose turn it is; the next turn begins when it
                  is released, and whichever sleeping thread acquires it holds that turn;
  ``_busy``       ``(since,)`` while the holder serves one event, else None; a new tuple per
                  event, so "the same event still runs" is an identity test;
  ``pending``     events polled but not yet served, shared by every thread;
  ``_guard``      a small lock over ``_turn`` and ``_busy``.

The holder (``_serve_turn``) polls a batch of up to 64 events into ``pending`` and serves
them one by one, marking ``_busy`` around each. While the apps it calls return quickly it
keeps the turn: one thread serves everything, with no thread switch per request.

The watcher (``watch``, a thread of its own) looks every ``HANDOFF_AFTER`` at ``_busy``. When
the same event has kept the holder busy that long (an app blocked on I/O, a slow
``100-continue`` body) it starts the next turn: it counts ``_turn`` up and releases
``_poll_turn``. A sleeping thread takes it and goes on with ``pending`` where the blocked
holder left off, so no event waits behind a blocked app. The blocked thread, once its event
is done, sees that ``_turn`` moved on, stops serving, and queues for ``_poll_turn`` again.

Why it is safe
  * Only the holder polls. The watcher moves the turn only while ``_busy`` is set, that is
    while the holder is inside an event and not in ``poll``; a holder waiting in ``poll``
    cannot lose its turn, so two threads never poll at once.
  * ``_turn`` is compared under ``_guard`` both when the watcher moves it and when a holder
    gives its turn up (``_pass_turn``), so a turn is released exactly once: by its holder
    when it leaves, or by the watcher, never both. A lock released twice would let two
    threads hold the turn.
  * A thread serves an event only while its turn is current; one whose turn was taken
    finishes the event in hand (it owns that connection: events are one-shot) and serves
    nothing else.
  * An event is popped from ``pending`` by exactly one thread (``deque.popleft`` is atomic).

Idling costs little: the watcher ticks every ``HANDOFF_AFTER`` only while events are being
served and every ``QUIET_TICK`` after ``QUIET_AFTER`` without one (an idle 4-thread worker
used 0.4% of a core against 2.2% with a 1 ms tick throughout).

This module knows nothing of sockets or HTTP: it is given a poll function, a function that
serves one event, and a tick to call now and then (the worker sweeps its deadlines);
``tests/server/test_turns.py`` drives it with a fake poller and a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: How long the holder may be busy with one event before the next thread takes the turn.
HANDOFF_AFTER = 0.001
#: After this long without a busy event, the watcher ticks every QUIET_TICK instead.
QUIET_AFTER, QUIET_TICK = 0.05, 0.02
#: Events taken per poll.
BATCH = 64


class Turns:
    """One poller shared by several threads, one of which polls and serves at a time."""

    def __init__(
        self,
        poll: Callable[[float, int], list[tuple[int, int]]],
        serve: Callable[[int], None],
        tick: Callable[[float], None],
        *,
        poll_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poll = poll
        self._serve = serve
        self._tick = tick  # called with the time after a poll, at most every poll_timeout
        self._next_tick = 0.0
        self._poll_timeout = poll_timeout
        self._clock = clock
        #: Polled events not yet served: (fd, mask).
        self.pending: deque[tuple[int, int]] = deque()
        self.stopping = False
        self._poll_turn = threading.Lock()
        self._guard = threading.Lock()
        self._turn = 0
        self._busy: tuple[float] | None = None

    def loop(self) -> None:
        """What each of the threads runs until :meth:`stop`: wait for a turn, serve in it."""
        while not self.stopping:
            if not self._poll_turn.acquire(timeout=self._poll_timeout):
                continue
            turn = self._turn
            self._serve_turn(turn)
            self._pass_turn(turn)

    def stop(self) -> None:
        """Make every thread leave :meth:`loop` (within a poll timeout)."""
        self.stopping = True

    def _serve_turn(self, turn: int) -> None:
        """Poll and serve until stopping or until ``turn`` is over."""
        poll = self._poll
        pending = self.pending
        serve = self._serve
        clock = self._clock
        guard = self._guard
        timeout = self._poll_timeout
        while not self.stopping and self._turn == turn:
            if not pending:
                try:
                    events = poll(timeout, BATCH)
                except InterruptedError:
                    continue
                now = clock()
                if now >= self._next_tick:
                    self._next_tick = now + timeout
                    self._tick(now)
                pending.extend(events)
            while self._turn == turn:
                try:
                    fd, _ = pending.popleft()
                except IndexError:
                    break
                # Marked busy while it is served, so the watcher can pass the turn on.
                busy = self._busy = (clock(),)  # a new tuple per event: compared by identity
                serve(fd)
                with guard:
                    if self._busy is busy:  # else the turn was passed on while this ran
                        self._busy = None

    def _pass_turn(self, turn: int) -> None:
        """Let the next thread poll, if ``turn`` is still the current one."""
        with self._guard:
            if self._turn == turn:
                self._next_turn()

    def _next_turn(self) -> None:
        # Called with _guard held.
        self._turn += 1
        self._busy = None
        self._poll_turn.release()

    def watch(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """The watcher thread: pass the turn on when its holder is stuck in one event."""
        last_busy = 0.0
        clock = self._clock
        while not self.stopping:
            quiet = clock() - last_busy > QUIET_AFTER
            sleep(QUIET_TICK if quiet else HANDOFF_AFTER)
            if self._busy is not None:
                last_busy = clock()
                self.check(last_busy)

    def check(self, now: float) -> bool:
        """Start the next turn if the same event has kept the holder busy since
        ``HANDOFF_AFTER`` before ``now``; True when it did."""
        busy = self._busy
        if busy is None or now - busy[0] < HANDOFF_AFTER:
            return False
        with self._guard:
            if self._busy is not busy:
                return False
            self._next_turn()
        return True
