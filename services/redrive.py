"""Re-driving dead letters: give failed deliveries another full run once the cause is fixed.

Driven from the database (which keeps every event), not from the dead-letter
topic: the embedded broker forgets its topics on restart, and the topic carries
references only. A dispatch or update is re-driven only while its alert is still
active; a retraction always.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update

from schemas.alerts import AlertStatus, DeliveryStatus
from services import audit
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Alert, Base, Delivery, OutboxEvent
from services.metrics import REDRIVEN
from services.outbox import PendingEvent
from services.outbox_listener import notify_in_transaction
from services.republish import redelivery_of


@dataclass(frozen=True, slots=True)
class RedriveResult:
    deliveries: int
    events: int


async def redrive_dead_letters(
    db: Database,
    now: datetime,
    operator: str | None = None,
    alert_id: str | None = None,
    actor: str = "operations",
    on_commit: Callable[[Sequence[PendingEvent]], None] | None = None,
) -> RedriveResult:
    query = (
        select(Delivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.event_id == Delivery.event_id)
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(
            Delivery.status == DeliveryStatus.failed.value,
            Delivery.dead_lettered_at.is_not(None),
            or_(Delivery.kind == "retraction", Alert.status == AlertStatus.active.value),
        )
        .order_by(Delivery.id)
    )
    if operator is not None:
        query = query.where(Delivery.operator == operator)
    if alert_id is not None:
        query = query.where(Delivery.alert_id == alert_id)
    async with db.write() as session:
        rows = (await session.execute(query)).all()
        if not rows:
            return RedriveResult(0, 0)
        originals = {o.event_id: o for _, o in rows}
        copies = [redelivery_of(o, now) for o in originals.values()]
        audits: list[Base] = []
        for delivery, _ in rows:
            REDRIVEN.labels(delivery.operator).inc()
            audits.append(
                audit.entry(
                    alert_id=delivery.alert_id,
                    actor=actor,
                    action=f"{delivery.kind}.redriven",
                    now=now,
                    details={"operator": delivery.operator, "webhook_id": delivery.webhook_id},
                )
            )
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_([d.id for d, _ in rows]))
            .values(
                status=DeliveryStatus.pending.value,
                dead_lettered_at=None,
                updated_at=now,
                next_attempt_at=None,
            )
        )
        await insert_all(session, [*copies, *audits])
        await notify_in_transaction(session)
    if on_commit is not None:
        on_commit([PendingEvent.of(c) for c in copies])
    return RedriveResult(len(rows), len(copies))
