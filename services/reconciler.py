"""The reconciler: the database, not the broker, is the record of what operators are owed.

The embedded broker keeps nothing across a restart and even Apache Kafka can lose
an unreplicated partition; a worker can die with deliveries in its retry loop.
Either way the delivery row stays ``pending`` or ``retrying`` and stops being
touched. Every few seconds the reconciler re-publishes the events of deliveries
untouched for ``reconcile_after_s`` (published, not suppressed), and stamps them
so the next round leaves them alone for another period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update

from schemas.alerts import DeliveryStatus
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Alert, Delivery, OutboxEvent
from services.metrics import RECONCILED
from services.outbox import PendingEvent
from services.outbox_listener import notify_in_transaction
from services.republish import redelivery_of

log = logging.getLogger(__name__)
OWED = (DeliveryStatus.pending.value, DeliveryStatus.retrying.value)


class Reconciler:
    def __init__(
        self,
        db: Database,
        on_commit: Callable[[Sequence[PendingEvent]], None],
        after_s: float,
        interval_s: float,
        batch_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._on_commit = on_commit
        self._after = timedelta(seconds=after_s)
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._clock = clock

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                count = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down: try next round
                log.warning("reconciler round failed", extra={"error": type(exc).__name__})
                continue
            if count:
                log.warning("re-published owed deliveries", extra={"events": count})

    async def run_once(self) -> int:
        """Re-publish one batch of stale owed deliveries; returns how many events."""
        now = self._clock()
        stale_before = now - self._after
        last_touch = func.coalesce(Delivery.updated_at, Delivery.accepted_at)
        async with self._db.write() as session:
            rows = (
                await session.execute(
                    select(Delivery.id, Delivery.kind, OutboxEvent)
                    .join(OutboxEvent, OutboxEvent.event_id == Delivery.event_id)
                    .join(Alert, Alert.id == Delivery.alert_id)
                    .where(
                        Delivery.status.in_(OWED),
                        # An erased alert's dispatch payload holds ids only: nothing to send.
                        or_(Delivery.kind == "retraction", Alert.erased_at.is_(None)),
                        last_touch < stale_before,
                        OutboxEvent.published_at.is_not(None),
                        OutboxEvent.suppressed_at.is_(None),
                    )
                    .order_by(Delivery.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            originals: dict[str, OutboxEvent] = {}
            for _, kind, original in rows:
                if original.event_id not in originals:
                    originals[original.event_id] = original
                    RECONCILED.labels(kind).inc()
            copies = [redelivery_of(o, now) for o in originals.values()]
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_([delivery_id for delivery_id, _, _ in rows]))
                .values(updated_at=now)
            )
            await insert_all(session, copies)
            await notify_in_transaction(session)
        self._on_commit([PendingEvent.of(c) for c in copies])
        return len(copies)
