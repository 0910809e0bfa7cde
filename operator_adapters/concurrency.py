"""How many dispatches an adapter keeps in flight to its operator: as few as keep it busy.

Why: a retraction can overtake only what is still queued here (see ``priority.py``);
what is already on the wire to the operator stays ahead of it. With a fixed eight
dispatches in flight per operator, an operator that answers one request at a time
holds a queue of eight, and a retraction sent during a dispatch backlog waited for
all of them: with the backlog, resolve -> every operator's retraction measured 53 ms
at p50 and 167 ms at p99 with eight in flight, 35 and 85 ms with two
(bench/RESULTS.md, "Session 12"). Two is too few for an operator far away: one
answering in 200 ms needs eight in flight to take 40 dispatches a second.

So the number adapts, as TCP Vegas does with its window. The operator's own answer
time (``base_s``, nothing queued) is known; an answer that takes longer, with
``limit`` requests in flight, means about ``limit * (1 - base / rtt)`` of them were
queued at the operator. More than ``QUEUED_HIGH`` queued: the limit goes down, by
one over ``limit`` answers; fewer than ``QUEUED_LOW``, while the requests in flight
use the limit: up likewise. An operator that answers in parallel keeps its answer
time however many are in flight and goes up to the configured ``concurrency``; one
that queues settles at two or three.

The base time comes from probes, as BBR measures its round-trip time: during a
probe only ``minimum`` requests are let through, and the first answer to a request
sent with no more than that in flight sets the base time anew (between probes, any
faster answer lowers it). Probes run when the limit starts, every ``PROBE_EVERY_S``
(under a steady backlog no request is ever alone, and the queue would otherwise pass
for the operator's own time), when the limit has come down to ``minimum``, and when
an answer is far slower than the requests in flight could explain (``SLOWER_BY *
(in_flight + 1) * base``): the operator itself got slower, not its queue longer.
Without the last two, an operator that went from 2 ms to 200 ms an answer (fan-out
bench, "delay") was held at one request in flight, 11 dispatches a second instead of
25, until the old base time aged out. A probe ends with its unqueued answer or after
``PROBE_MAX_S``.

Only dispatches and updates are counted and limited here; retractions have slots of
their own. The answer time includes this process's own delays in reading the answer,
so a busy adapter process also keeps fewer in flight, which is what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

#: Estimated requests queued at the operator: above this the limit goes down...
QUEUED_HIGH = 2.0
#: ... below this (with the limit in use) it goes up.
QUEUED_LOW = 1.0
#: An answer this many times slower than ``in_flight + 1`` requests' worth means the
#: operator itself got slower. Not 1: the answer time includes this process's own
#: delays, which reached 5-15 ms a request under a backlog, several times an unqueued
#: answer; with 1 they started a probe every second or so, each taking an answer
#: slowed that way for the operator's own time (bench/RESULTS.md, "Session 12").
SLOWER_BY = 3.0
#: A steady backlog is probed this often for the operator's own answer time.
PROBE_EVERY_S = 10.0
#: A probe ends with its first unqueued answer, or after this long.
PROBE_MAX_S = 1.0


class AdaptiveLimit:
    """A semaphore whose size follows the operator's answer times (``observe``).

    ``async with limit:`` holds one of ``capacity`` slots; waiters get them in arrival
    order. ``adaptive=False`` keeps the size at ``maximum``.
    """

    def __init__(
        self,
        maximum: int,
        adaptive: bool = True,
        minimum: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.maximum = maximum
        self.minimum = minimum
        self.adaptive = adaptive
        self.limit = float(maximum)
        self.in_flight = 0
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: The operator's answer time with nothing queued (inf: not measured yet).
        self.base_s = float("inf")
        self._probe_started: float | None = None
        self._next_probe = 0.0
        #: Probes started, for tests and benches.
        self.probes = 0
        if adaptive:
            self._start_probe(clock())

    @property
    def capacity(self) -> int:
        """How many may be in flight now: the limit, or ``minimum`` during a probe (a
        probe past ``PROBE_MAX_S`` ends here, whoever asks first)."""
        if self._probe_started is not None:
            if self._clock() - self._probe_started < PROBE_MAX_S:
                return self.minimum
            self._probe_started = None
        return int(self.limit)

    async def __aenter__(self) -> None:
        if self.in_flight < self.capacity and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as it was cancelled: give it back
            else:
                with contextlib.suppress(ValueError):  # ``_wake`` may have dropped it
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def observe(self, rtt_s: float, in_flight: int) -> None:
        """One answer took ``rtt_s`` with ``in_flight`` requests in flight as it left."""
        if not self.adaptive or rtt_s <= 0.0:
            return
        now = self._clock()
        if now >= self._next_probe:
            self._start_probe(now)
        if self._probe_started is not None and in_flight <= self.minimum:
            self.base_s = rtt_s  # the operator's own time now, whatever it was before
            self._probe_started = None
        elif rtt_s > SLOWER_BY * (in_flight + 1) * self.base_s:
            self._start_probe(now)  # slower than any queue of ours explains
        else:
            self.base_s = min(self.base_s, rtt_s)
        if self._probe_started is None:
            queued = self.limit * (1.0 - self.base_s / rtt_s)
            if queued > QUEUED_HIGH:
                self.limit = max(float(self.minimum), self.limit - 1.0 / self.limit)
                if int(self.limit) <= self.minimum:
                    self._start_probe(now)
            elif queued < QUEUED_LOW and in_flight >= int(self.limit):
                self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        self._wake()

    def _start_probe(self, now: float) -> None:
        if self._probe_started is None:
            self.probes += 1
            self._probe_started = now
        self._next_probe = now + PROBE_EVERY_S

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.capacity:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.in_flight += 1
            waiter.set_result(None)
