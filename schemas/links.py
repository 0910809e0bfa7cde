"""Operator link health, as the operations endpoint reports it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class LinkStatus(BaseModel):
    """The latest link test of one operator; ``healthy`` is False as soon as one fails."""

    operator: str
    healthy: bool
    last_outcome: str | None
    last_requested_at: datetime | None
    last_finished_at: datetime | None
    last_latency_ms: float | None
    acknowledged: bool
    last_success_at: datetime | None
