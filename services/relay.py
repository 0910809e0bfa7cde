"""Outbox relay: publishes committed outbox events to Kafka, in order, at least once.

Two sources, one task (so their order is never interleaved wrongly):
- the fast path: events this process just committed, handed over in memory in
  commit order (no polling, no re-read); their "published" marks are written
  afterwards in batches, off the hot path;
- the sweep: unpublished rows read from the database in id order. It runs at
  start-up and after any publish failure until nothing is left (meanwhile the
  fast path is off, since a newer event must not overtake an older one of the
  same alert), and periodically as a safety net for rows older than a grace
  period (rows committed by other processes, or left by a crash).

A crash between the broker's ack and the mark re-publishes events; consumers
deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, select, update

from services.db.engine import Database
from services.db.models import OutboxEvent, table_of
from services.metrics import OUTBOX_PUBLISH_ERRORS, OUTBOX_PUBLISHED
from services.outbox import OutboxFeed, PendingEvent

log = logging.getLogger(__name__)

_outbox = table_of(OutboxEvent)
#: Built once, on the table rather than the ORM class: the mark runs after every
#: publish, and the ORM's bulk-update path cost 0.92 ms a mark against 0.66 ms for
#: the same statement on the table (measured, bench/RESULTS.md "Session 13").
_MARK_PUBLISHED = (
    update(_outbox)
    .where(_outbox.c.event_id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("at"))
)


#: (topic, partition) -> the offset after the last record just published there.
PublishedEnds = dict[tuple[str, int], int]


class Publisher(Protocol):
    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> PublishedEnds:
        """Publish (topic, key, value) messages; return only when all are acknowledged,
        with where they landed."""


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        feed: OutboxFeed,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        sweep_grace_s: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_published: Callable[[PublishedEnds], None] | None = None,
    ) -> None:
        """``sweep_grace_s``: how old a row must be before the periodic sweep takes it;
        0 when no writer in this process feeds the relay, a few seconds when one does.
        ``on_published(ends)`` runs once the broker has acknowledged a batch: it wakes
        idle consumers (``operator_adapters/fetch_gate.py``)."""
        self._db = db
        self._publisher = publisher
        self._feed = feed
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._grace = timedelta(seconds=sweep_grace_s)
        self._clock = clock
        self._on_published = on_published
        self._catching_up = True
        self._unmarked: list[str] = []
        self._next_sweep = 0.0
        feed.relayed()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self.cycle()
                backoff = 0.05
                await self._feed.wait(self._poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the events, retry
                OUTBOX_PUBLISH_ERRORS.inc()
                self._catching_up = True
                log.warning(
                    "outbox relay failed; will retry",
                    extra={"error": type(exc).__name__, "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def cycle(self) -> None:
        """One round: catch up from the database if needed, then the fast path, then marks."""
        if self._catching_up:
            await self._mark()
            self._feed.clear()  # everything it held is committed, so the sweep reads it in order
            while await self.sweep(grace=False):
                pass
            self._catching_up = False
        while batch := self._feed.take(self._batch_size):
            try:
                await self._publish(batch)
            except Exception:
                self._catching_up = True
                raise
            self._unmarked += [e.event_id for e in batch]
            if len(self._unmarked) >= self._batch_size:
                await self._mark()
        await self._mark()
        if self._feed.take_external() or time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._poll_interval_s
            while await self.sweep(grace=True):
                pass

    async def sweep(self, grace: bool) -> int:
        """Publish one batch of unpublished rows in id order; returns how many."""
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None), OutboxEvent.suppressed_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(self._batch_size)
        )
        if grace and self._grace:
            query = query.where(OutboxEvent.created_at < self._clock() - self._grace)
        async with self._db.read() as session:
            rows = (await session.scalars(query)).all()
        in_memory = self._feed.pending_ids() if grace else set()
        events = [PendingEvent.of(row) for row in rows if row.event_id not in in_memory]
        if not events:
            return 0
        await self._publish(events)
        self._unmarked += [e.event_id for e in events]
        await self._mark()
        return len(events)

    async def _publish(self, events: Sequence[PendingEvent]) -> None:
        ends = await self._publisher.publish([(e.topic, e.key, e.value) for e in events])
        self._feed.published(e.event_id for e in events)
        if self._on_published is not None:
            self._on_published(ends)
        OUTBOX_PUBLISHED.inc(len(events))

    async def _mark(self) -> None:
        if not self._unmarked:
            return
        ids, self._unmarked = self._unmarked, []
        try:
            async with self._db.write() as session:
                await session.execute(_MARK_PUBLISHED, {"ids": ids, "at": self._clock()})
        except Exception:
            self._unmarked = ids + self._unmarked
            raise
