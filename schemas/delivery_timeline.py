"""What happened to an alert at each operator: ``GET /v1/alerts/{id}/delivery``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.alerts import DeliveryStatus
from schemas.receipts import ReceiptStatus

TimelineEvent = Literal["queued", "attempt", "delivered", "failed", "dead_lettered", "receipt"]


class TimelineEntry(BaseModel):
    """One thing that happened to one message, at ``at`` (our clock).

    ``queued``: we owed the operator this message. ``attempt``: one try
    (``outcome``, ``status_code``, ``reason``). ``delivered`` / ``failed`` /
    ``dead_lettered``: how the delivery ended. ``receipt``: the operator's report
    (``receipt_status``, ``recipients``, ``reported_at`` on the operator's clock).
    """

    at: datetime
    event: TimelineEvent
    webhook_id: str
    kind: str
    alert_version: int
    attempt: int | None = None
    outcome: str | None = None
    status_code: int | None = None
    reason: str | None = None
    receipt_status: ReceiptStatus | None = None
    recipients: int | None = None
    reported_at: datetime | None = None


class MessageOutcome(BaseModel):
    """Where one message to one operator stands now (read straight off its delivery row)."""

    model_config = ConfigDict(from_attributes=True)

    webhook_id: str
    kind: str
    alert_version: int
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    accepted_at: datetime
    delivered_at: datetime | None
    dead_lettered_at: datetime | None
    #: A retraction the operator confirmed (2xx, or its ``retracted`` receipt).
    confirmed_at: datetime | None
    receipt_status: ReceiptStatus | None
    recipients: int | None


class DeliveryTotals(BaseModel):
    """Counts over messages. ``pending`` includes ``retrying``.

    ``recipients``: people the operators reported reaching; per operator the
    largest count of the alert's broadcasts (an update reaches mostly the same
    people again), summed across operators; null when no operator reported one.
    """

    messages: int
    delivered: int
    failed: int
    pending: int
    suppressed: int
    attempts: int
    receipts: int
    recipients: int | None


class OperatorTimeline(BaseModel):
    operator: str
    messages: list[MessageOutcome]
    timeline: list[TimelineEntry]
    totals: DeliveryTotals


class DeliveryTimeline(BaseModel):
    alert_id: UUID
    operators: list[OperatorTimeline]
    totals: DeliveryTotals
