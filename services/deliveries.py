"""Delivery records: the database's account of what each operator is owed and got."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from schemas.alerts import DeliveryStatus
from services import audit
from services.db.engine import Database
from services.db.models import Delivery

FINAL = (
    DeliveryStatus.delivered.value,
    DeliveryStatus.failed.value,
    DeliveryStatus.suppressed.value,
)


class DeliveryRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_finished(self, webhook_id: str) -> bool:
        """True when a redelivered message was already handled (at-least-once input)."""
        async with self._db.read() as session:
            status = await session.scalar(
                select(Delivery.status).where(Delivery.webhook_id == webhook_id)
            )
        return status in FINAL

    async def delivered(
        self, webhook_id: str, attempts: int, status_code: int, at: datetime
    ) -> None:
        async with self._db.write() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.webhook_id == webhook_id)
                .values(
                    status=DeliveryStatus.delivered.value,
                    attempts=attempts,
                    last_status_code=status_code,
                    last_error=None,
                    delivered_at=at,
                )
            )

    async def failed(
        self, webhook_id: str, attempts: int, status_code: int | None, reason: str, at: datetime
    ) -> None:
        async with self._db.write() as session:
            row = await session.scalar(select(Delivery).where(Delivery.webhook_id == webhook_id))
            if row is None:
                return
            row.status = DeliveryStatus.failed.value
            row.attempts = attempts
            row.last_status_code = status_code
            row.last_error = reason[:200]
            audit.record(
                session,
                alert_id=row.alert_id,
                actor=f"adapter:{row.operator}",
                action=f"{row.kind}.failed",
                now=at,
                details={
                    "operator": row.operator,
                    "webhook_id": webhook_id,
                    "attempts": attempts,
                    "status_code": status_code,
                },
            )
