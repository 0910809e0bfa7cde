"""An idle consumer stops fetching until something is published.

Why: the embedded broker (Tansu 0.6) answers a fetch at once when it holds records,
but when it holds none it waits the whole ``fetch_max_wait_ms`` and never wakes for
records that arrive meanwhile. To keep an alert's latency low, consumers therefore
fetch with a short wait (2 ms when this was written, 1 ms now): each of the three
operators' consumers polled every partition of both lanes about 400 times a
second. Idle, that cost half a core in the broker and a third of one in the adapter
process (bench/RESULTS.md, "Session 6") on a two-core machine where every alert
competes for those cores.

The relay knows what it has published: the broker acknowledged records up to some
offset of some partitions. It tells the consumers (``nudge``): in its own process
directly, in ``serve``'s adapter child through the child's stdin. A consumer that is
owed nothing and has fetched nothing for ``LINGER_S`` pauses every partition
(aiokafka then sends no fetch at all) until the next nudge, and looks once every
``recheck_s`` anyway, for records somebody published without a nudge (a ``relay``
process elsewhere, a restarted child).

Only an idle worker sleeps: while it has deliveries running or partitions held back
by flow control (a backlog), the gate stays out of the way. Pausing then would make
aiokafka drop records already fetched for the paused partitions, to be fetched again,
and would leave a released partition waiting for the next recheck.

A nudge names the offsets it promises, and the gate stays awake until it has received
them (or the partition went to another consumer, or ``OWED_FOR_S`` passed): a fetch
that was already on its way when the records were published comes back empty, and a
paused partition's fetched records are dropped by aiokafka, so "nothing for a while"
alone would lose the race under load and leave the records to the next recheck.

Apache Kafka holds a fetch and answers as soon as a record arrives, so with it the
gate is pointless and off by default. With the embedded broker it is on by default
(``KAYIP_KAFKA_IDLE_PAUSE``, ``Settings.idle_pause``). In session 6, before the lane
feeds, it made retractions 3-5 times slower under a 15,000-record dispatch backlog in
3 of 5 bench runs; in session 11, in five interleaved pairs, it did not, and with a
1 ms fetch wait it took 1.5-2.4 ms off a create and halved the broker's CPU
(bench/RESULTS.md). Flow control pauses partitions too
(``hold``/``release``); a partition paused for either reason stays paused, so the
two never undo each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from aiokafka import TopicPartition

#: Awake this long after the last record or nudge.
LINGER_S = 0.005
#: A promised offset stops keeping the gate awake after this long (a broker that lost
#: its log never reaches it); the next recheck still finds whatever is there.
OWED_FOR_S = 1.0
#: A recheck stays awake until one fetch sent after it has been answered, or this long.
RECHECK_MAX_S = 0.05
#: The longest a poll waits while awake (the worker's loop then commits offsets).
AWAKE_POLL_S = 0.2


class Received(Protocol):
    """What the gate reads of a fetched record (aiokafka's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class PausableConsumer(Protocol):
    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None: ...


class FetchGate:
    """Which of a consumer's partitions fetch, and when it sleeps. One per consumer."""

    def __init__(
        self,
        consumer: PausableConsumer,
        enabled: bool,
        recheck_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._consumer = consumer
        self.enabled = enabled
        self._recheck_s = recheck_s
        self._clock = clock
        self._wall_ms = wall_ms  # aiokafka stamps fetch responses with this clock
        self._held: set[TopicPartition] = set()  # paused by flow control
        self._elsewhere: set[TopicPartition] = set()  # fetched by another consumer
        self._owed: dict[TopicPartition, tuple[int, float]] = {}  # end offset, until when
        self.asleep = False
        self._busy = False
        self._awake_until = clock() + LINGER_S
        self._next_recheck = 0.0
        self._recheck: tuple[int, float] | None = None  # started at (wall ms), gives up at
        #: How often the gate fell asleep and was nudged (tests and benches read them).
        self.sleeps = 0
        self.nudges = 0

    # -- flow control -------------------------------------------------------------

    @property
    def held(self) -> frozenset[TopicPartition]:
        return frozenset(self._held)

    def hold(self, tp: TopicPartition) -> None:
        """Too much unfinished work on ``tp``: no fetching it until ``release``."""
        if tp not in self._held:
            self._held.add(tp)
            self._consumer.pause(tp)

    @property
    def elsewhere(self) -> frozenset[TopicPartition]:
        return frozenset(self._elsewhere)

    def fetched_elsewhere(self, partitions: Iterable[TopicPartition]) -> None:
        """Another consumer fetches these (a lane feed): paused for good here,
        and never owed."""
        new = set(partitions) - self._elsewhere
        if new:
            self._elsewhere |= new
            self._consumer.pause(*new)

    def release(self, tp: TopicPartition) -> None:
        """``tp`` may fetch again; it had a backlog, so the gate wakes for it."""
        if tp in self._held:
            self._held.discard(tp)
            if self.asleep:
                self._wake(LINGER_S)
            else:
                self._consumer.resume(tp)

    def assigned(self) -> None:
        """New partitions: stay awake until their first fetch is answered (whatever
        was published before this consumer owned them, nudged or not, is there)."""
        if self.enabled:
            self._recheck = (self._wall_ms(), self._clock() + OWED_FOR_S)
            self._wake(0.0)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked partitions: the consumer has dropped their state already."""
        self._held.difference_update(partitions)
        self._elsewhere.difference_update(partitions)

    # -- idling -------------------------------------------------------------------

    def nudge(self, ends: Mapping[TopicPartition, int]) -> None:
        """Records were just published, up to (not including) ``ends``: fetch them."""
        self.nudges += 1
        if not self.enabled:
            return
        mine = {tp: end for tp, end in ends.items() if tp not in self._elsewhere}
        if not mine:
            return
        until = self._clock() + OWED_FOR_S
        for tp, end in mine.items():
            owed = self._owed.get(tp)
            if owed is None or owed[0] < end:
                self._owed[tp] = (end, until)
        self._wake(LINGER_S)

    def poll_timeout_ms(self) -> int:
        """How long the worker's next poll may wait for records."""
        longest = int(AWAKE_POLL_S * 1000)
        if not self.enabled or self._busy:
            return longest
        until = self._next_recheck if self.asleep else self._awake_until
        return max(1, min(longest, int((until - self._clock()) * 1000) + 1))

    def polled(self, records: Sequence[Received], busy: bool = False) -> None:
        """After each poll, with the records it returned and whether the worker still
        has work running: stay awake while records flow, are owed or are being worked
        on; sleep once none; look again every ``recheck_s`` while asleep. Disabled, it
        does nothing (the worker's loop calls it on every poll)."""
        if not self.enabled:
            return
        now = self._clock()
        received = _next_offsets(records)
        for tp, next_offset in received.items():
            owed = self._owed.get(tp)
            if owed is not None and next_offset >= owed[0]:
                del self._owed[tp]
        self._busy = busy or bool(self._held)
        if self._busy:
            self._wake(LINGER_S)
        elif received:
            self._recheck = None
            self._wake(LINGER_S)
        elif self.asleep:
            if now >= self._next_recheck:
                self._recheck = (self._wall_ms(), now + RECHECK_MAX_S)
                self._wake(0.0)
            else:
                self._pause_all()  # partitions assigned since it fell asleep
        elif now >= self._awake_until and not self._owes(now) and not self._rechecking(now):
            self.asleep = True
            self.sleeps += 1
            self._next_recheck = now + self._recheck_s
            self._pause_all()

    def _owes(self, now: float) -> bool:
        assigned = self._consumer.assignment()
        for tp, (_, until) in list(self._owed.items()):
            if tp not in assigned or now >= until:
                del self._owed[tp]
        return bool(self._owed)

    def _rechecking(self, now: float) -> bool:
        """Whether a recheck is still waiting for its fetch to be answered."""
        if self._recheck is None:
            return False
        started_ms, gives_up = self._recheck
        answered = any(
            (self._consumer.last_poll_timestamp(tp) or 0) > started_ms for tp in self._fetchable()
        )
        if answered or now >= gives_up:
            self._recheck = None
            return False
        return True

    def _wake(self, linger_s: float) -> None:
        self._awake_until = max(self._awake_until, self._clock() + linger_s)
        if self.asleep:
            self.asleep = False
            fetchable = self._fetchable()
            if fetchable:
                self._consumer.resume(*fetchable)

    def _pause_all(self) -> None:
        fetchable = self._fetchable()
        if fetchable:
            self._consumer.pause(*fetchable)

    def _fetchable(self) -> set[TopicPartition]:
        return self._consumer.assignment() - self._held - self._elsewhere


def _next_offsets(records: Sequence[Received]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last record received."""
    ends: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        ends[tp] = max(ends.get(tp, 0), r.offset + 1)
    return ends
