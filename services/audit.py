"""Audit trail: who did what to which alert. Details hold ids and codes, never personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.db.models import AuditEvent


def entry(
    *,
    alert_id: str,
    actor: str,
    action: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        alert_id=alert_id, actor=actor, action=action, occurred_at=now, details=details or {}
    )


def record(
    session: AsyncSession,
    *,
    alert_id: str,
    actor: str,
    action: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(entry(alert_id=alert_id, actor=actor, action=action, now=now, details=details))
