"""Outbox relay: publishes committed outbox events in id order, then marks them sent.

At least once: a crash between the broker's ack and the mark re-publishes the
event, and consumers deduplicate on the event id. The relay is woken on commit
(see :class:`services.outbox.OutboxSignal`) and sweeps periodically for events
written by other processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, update

from services.db.engine import Database
from services.db.models import OutboxEvent
from services.metrics import OUTBOX_PUBLISH_ERRORS, OUTBOX_PUBLISHED
from services.outbox import OutboxSignal

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Publish (topic, key, value) messages; return only when all are acknowledged."""


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        signal: OutboxSignal,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._signal = signal
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._clock = clock

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                while await self.relay_once():
                    pass
                backoff = 0.05
                await self._signal.wait(self._poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the events, retry
                OUTBOX_PUBLISH_ERRORS.inc()
                log.warning(
                    "outbox relay failed; will retry",
                    extra={"error": type(exc).__name__, "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were published."""
        async with self._db.read() as session:
            rows = (
                await session.execute(
                    select(
                        OutboxEvent.id, OutboxEvent.topic, OutboxEvent.alert_id, OutboxEvent.payload
                    )
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self._batch_size)
                )
            ).all()
        if not rows:
            return 0
        await self._publisher.publish(
            [(row.topic, row.alert_id.encode(), row.payload.encode()) for row in rows]
        )
        async with self._db.write() as session:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([row.id for row in rows]))
                .values(published_at=self._clock())
            )
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)
