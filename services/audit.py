"""Audit trail: who did what to which alert. Details hold ids and codes, never personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
