"""One alert's delivery story per operator: what we owed, each try, how it ended,
and what the operator reported back, in time order, with totals.

Read-only and assembled from three tables the worker and the receipts endpoint
write (deliveries, delivery_attempts, operator_receipts), so it shows exactly
what the database knows, including deliveries still being retried.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from schemas.alerts import DeliveryStatus
from schemas.delivery_timeline import (
    DeliveryTimeline,
    DeliveryTotals,
    MessageOutcome,
    OperatorTimeline,
    TimelineEntry,
)
from schemas.receipts import ReceiptStatus
from services.db.engine import Database
from services.db.models import Alert, Delivery, DeliveryAttempt, OperatorReceipt
from services.errors import NotFound

#: Ties on time keep cause before effect: owed, tried, ended, reported.
_ORDER = {"queued": 0, "attempt": 1, "delivered": 2, "failed": 2, "dead_lettered": 2, "receipt": 3}
_BROADCASTS = ("dispatch", "update")


async def delivery_timeline(db: Database, alert_id: str) -> DeliveryTimeline:
    """Raises NotFound for an unknown alert."""
    key = _parse_id(alert_id)
    async with db.read() as session:
        if await session.scalar(select(Alert.id).where(Alert.id == key)) is None:
            raise NotFound(f"no alert with id {alert_id}")
        deliveries = list(
            await session.scalars(
                select(Delivery).where(Delivery.alert_id == key).order_by(Delivery.id)
            )
        )
        attempts = list(
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.alert_id == key)
                .order_by(DeliveryAttempt.id)
            )
        )
        receipts = list(
            await session.scalars(
                select(OperatorReceipt)
                .where(OperatorReceipt.alert_id == key)
                .order_by(OperatorReceipt.id)
            )
        )
    by_operator: defaultdict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_operator[delivery.operator].append(delivery)
    operators = [
        _operator_timeline(operator, by_operator[operator], attempts, receipts)
        for operator in sorted(by_operator)
    ]
    return DeliveryTimeline(
        alert_id=uuid.UUID(key),
        operators=operators,
        totals=_sum_totals([o.totals for o in operators]),
    )


def _operator_timeline(
    operator: str,
    deliveries: Sequence[Delivery],
    all_attempts: Iterable[DeliveryAttempt],
    all_receipts: Iterable[OperatorReceipt],
) -> OperatorTimeline:
    by_webhook = {d.webhook_id: d for d in deliveries}
    attempts = [a for a in all_attempts if a.webhook_id in by_webhook]
    receipts = [r for r in all_receipts if r.webhook_id in by_webhook and r.operator == operator]
    tries = Counter(a.webhook_id for a in attempts)
    entries: list[TimelineEntry] = []
    for d in deliveries:
        entries += _outcome_entries(d, [a for a in attempts if a.webhook_id == d.webhook_id])
    for a in attempts:
        entries.append(
            _entry(
                by_webhook[a.webhook_id],
                "attempt",
                a.finished_at,
                attempt=a.attempt,
                outcome=a.outcome,
                status_code=a.status_code,
                reason=a.reason,
            )
        )
    for r in receipts:
        entries.append(
            _entry(
                by_webhook[r.webhook_id],
                "receipt",
                r.received_at,
                receipt_status=ReceiptStatus(r.status),
                recipients=r.recipients,
                reason=r.reason,
                reported_at=r.reported_at,
            )
        )
    entries.sort(key=lambda e: (e.at, _ORDER[e.event]))
    statuses = Counter(d.status for d in deliveries)
    reached = [
        d.recipients for d in deliveries if d.kind in _BROADCASTS and d.recipients is not None
    ]
    totals = DeliveryTotals(
        messages=len(deliveries),
        delivered=statuses[DeliveryStatus.delivered.value],
        failed=statuses[DeliveryStatus.failed.value],
        pending=statuses[DeliveryStatus.pending.value] + statuses[DeliveryStatus.retrying.value],
        suppressed=statuses[DeliveryStatus.suppressed.value],
        # The worker counts tries on the delivery and logs each one; during a retry
        # either may be ahead, so the larger is the truth.
        attempts=sum(max(d.attempts, tries[d.webhook_id]) for d in deliveries),
        receipts=len(receipts),
        recipients=max(reached) if reached else None,
    )
    return OperatorTimeline(
        operator=operator,
        messages=[MessageOutcome.model_validate(d) for d in deliveries],
        timeline=entries,
        totals=totals,
    )


def _outcome_entries(d: Delivery, attempts: Sequence[DeliveryAttempt]) -> list[TimelineEntry]:
    entries = [_entry(d, "queued", d.accepted_at)]
    if d.delivered_at is not None:
        entries.append(_entry(d, "delivered", d.delivered_at, status_code=d.last_status_code))
    if d.status == DeliveryStatus.failed.value:
        ended = d.updated_at or max((a.finished_at for a in attempts), default=None)
        if ended is not None:
            entries.append(
                _entry(d, "failed", ended, status_code=d.last_status_code, reason=d.last_error)
            )
    if d.dead_lettered_at is not None:
        entries.append(_entry(d, "dead_lettered", d.dead_lettered_at, reason=d.last_error))
    return entries


def _entry(d: Delivery, event: str, at: datetime, **fields: object) -> TimelineEntry:
    return TimelineEntry.model_validate(
        {
            "at": at,
            "event": event,
            "webhook_id": d.webhook_id,
            "kind": d.kind,
            "alert_version": d.alert_version,
            **fields,
        }
    )


def _sum_totals(parts: Sequence[DeliveryTotals]) -> DeliveryTotals:
    reached = [p.recipients for p in parts if p.recipients is not None]
    return DeliveryTotals(
        messages=sum(p.messages for p in parts),
        delivered=sum(p.delivered for p in parts),
        failed=sum(p.failed for p in parts),
        pending=sum(p.pending for p in parts),
        suppressed=sum(p.suppressed for p in parts),
        attempts=sum(p.attempts for p in parts),
        receipts=sum(p.receipts for p in parts),
        recipients=sum(reached) if reached else None,
    )


def _parse_id(alert_id: str) -> str:
    try:
        return str(uuid.UUID(alert_id))
    except ValueError:
        raise NotFound(f"no alert with id {alert_id}") from None
