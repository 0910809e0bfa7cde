"""Delivery records: the database's account of what each operator is owed and got.

Adapter workers read and write these once per Kafka batch rather than once per
message, which keeps SQLite's single writer from becoming the bottleneck.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, select, update

from schemas.alerts import DeliveryStatus
from services import audit
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Delivery

FINAL = (
    DeliveryStatus.delivered.value,
    DeliveryStatus.failed.value,
    DeliveryStatus.suppressed.value,
)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery ended, as the worker saw it."""

    webhook_id: str
    alert_id: str
    operator: str
    kind: str
    delivered: bool
    attempts: int
    status_code: int | None
    reason: str | None
    at: datetime


_table = Delivery.__table__
assert isinstance(_table, Table)
_finish = (
    update(_table)
    .where(_table.c.webhook_id == bindparam("b_webhook_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered_at"),
    )
)


class DeliveryRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def finished_among(self, webhook_ids: Collection[str]) -> set[str]:
        """Which of these were already handled (Kafka input is at least once)."""
        if not webhook_ids:
            return set()
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Delivery.webhook_id).where(
                    Delivery.webhook_id.in_(list(webhook_ids)), Delivery.status.in_(FINAL)
                )
            )
            return set(rows)

    async def record(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Write every outcome of a batch in one transaction; failures also get an audit row."""
        if not outcomes:
            return
        params = [
            {
                "b_webhook_id": o.webhook_id,
                "b_status": (
                    DeliveryStatus.delivered if o.delivered else DeliveryStatus.failed
                ).value,
                "b_attempts": o.attempts,
                "b_status_code": o.status_code,
                "b_error": None if o.reason is None else o.reason[:200],
                "b_delivered_at": o.at if o.delivered else None,
            }
            for o in outcomes
        ]
        failures = [
            audit.entry(
                alert_id=o.alert_id,
                actor=f"adapter:{o.operator}",
                action=f"{o.kind}.failed",
                now=o.at,
                details={
                    "operator": o.operator,
                    "webhook_id": o.webhook_id,
                    "attempts": o.attempts,
                    "status_code": o.status_code,
                },
            )
            for o in outcomes
            if not o.delivered
        ]
        async with self._db.write() as session:
            await session.execute(_finish, params)
            await insert_all(session, failures)
