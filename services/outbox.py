"""Transactional outbox: a state change and its event are written in one transaction.

After the commit, the writer hands the committed events to :class:`OutboxFeed`,
so an in-process relay publishes them without polling or re-reading them; the
relay's database sweep remains the safety net for other processes and crashes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from services.db.models import OutboxEvent

SUPPRESSED_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A committed outbox event, ready to publish."""

    event_id: str
    topic: str
    key: bytes
    value: bytes

    @classmethod
    def of(cls, row: OutboxEvent) -> PendingEvent:
        return cls(row.event_id, row.topic, row.alert_id.encode(), row.payload.encode())


class OutboxFeed:
    """Committed events in commit order, plus a wake-up for the relay.

    ``handover_wait_s``: how long a writer waits, after its commit, for the relay to
    have its events acknowledged by the broker (see :meth:`until_published`).
    """

    def __init__(self, handover_wait_s: float = 0.0) -> None:
        self._handover_wait_s = handover_wait_s
        self._relayed = False
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._queue: deque[PendingEvent] = deque()
        # Suppressed ids, remembered for a while: a create's hand-over can land after a
        # near-simultaneous resolve's suppression, and must not bring the event back.
        self._suppressed: OrderedDict[str, None] = OrderedDict()
        self._event = asyncio.Event()
        self._external = False
        self._watchers: list[Callable[[PendingEvent], None]] = []

    def watch(self, watcher: Callable[[PendingEvent], None]) -> None:
        """Also tell ``watcher`` of each committed event (the runtime uses it to give a
        retraction decided in this process priority before the relay has published it)."""
        self._watchers.append(watcher)

    def committed(self, events: Iterable[PendingEvent]) -> None:
        if self._suppressed:
            events = [e for e in events if e.event_id not in self._suppressed]
        events = list(events)
        for watcher in self._watchers:
            for event in events:
                watcher(event)
        self._queue.extend(events)
        self._event.set()

    def relayed(self) -> None:
        """A relay in this process publishes this feed, so waiting for it makes sense."""
        self._relayed = True

    async def until_published(self, events: Sequence[PendingEvent]) -> None:
        """Wait until the broker has acknowledged ``events``, at most ``handover_wait_s``.

        Why: the relay runs on the writer's event loop. A request that went on after its
        commit (reading its answer back, serialising it: milliseconds of CPU) kept the
        relay and the producer's sender task from putting the records on the wire until
        it was done; traced, the produce request left 2-4 ms after the commit. Waiting
        here gives the loop to the relay at once, and the answer is built while the
        broker and the adapters already work on the other core. The bound keeps a
        broker outage from holding requests: the events stay in the outbox and the relay
        publishes them when the broker is back.
        """
        if not self._relayed or self._handover_wait_s <= 0:
            return
        loop = asyncio.get_running_loop()
        mine: dict[str, asyncio.Future[None]] = {}
        for event in events:
            if event.event_id not in self._suppressed:
                mine[event.event_id] = self._waiters[event.event_id] = loop.create_future()
        try:
            async with asyncio.timeout(self._handover_wait_s):
                for waiter in mine.values():
                    await waiter
        except TimeoutError:
            pass
        finally:
            for event_id, waiter in mine.items():
                if self._waiters.get(event_id) is waiter:
                    del self._waiters[event_id]

    def published(self, event_ids: Iterable[str]) -> None:
        """The broker acknowledged these events (or they will never be published):
        release the writers waiting for them."""
        if not self._waiters:
            return
        for event_id in event_ids:
            waiter = self._waiters.pop(event_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def notify(self) -> None:
        """Wake the relay without events: another process committed some, so sweep."""
        self._external = True
        self._event.set()

    def take_external(self) -> bool:
        external, self._external = self._external, False
        return external

    def take(self, limit: int) -> list[PendingEvent]:
        return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def clear(self) -> None:
        self._queue.clear()

    def suppress(self, event_ids: Iterable[str]) -> None:
        """Drop events a retraction has cancelled before the relay takes them.

        The database row is already marked ``suppressed_at`` (so the sweep skips it);
        an event the relay took a moment earlier is caught by the adapters' version check.
        """
        dropped = set(event_ids)
        if dropped:
            self._queue = deque(e for e in self._queue if e.event_id not in dropped)
            for event_id in dropped:
                self._suppressed[event_id] = None
            self.published(dropped)
            while len(self._suppressed) > SUPPRESSED_REMEMBERED:
                self._suppressed.popitem(last=False)

    def pending_ids(self) -> set[str]:
        return {e.event_id for e in self._queue}

    def __len__(self) -> int:
        return len(self._queue)

    async def wait(self, timeout: float) -> None:
        if not self._queue:
            try:
                # asyncio.timeout, not wait_for: no extra task, so a commit wakes the
                # relay in one turn of the event loop instead of three.
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                pass
        self._event.clear()


def event_row(
    *,
    event_id: str,
    alert_id: str,
    event_type: str,
    topic: str,
    event: BaseModel,
    now: datetime,
) -> OutboxEvent:
    return OutboxEvent(
        event_id=event_id,
        alert_id=alert_id,
        event_type=event_type,
        topic=topic,
        payload=event.model_dump_json(),
        created_at=now,
        published_at=None,
    )
