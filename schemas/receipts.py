"""Receipts: what an operator reports back about a delivery we made to it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ReceiptStatus(StrEnum):
    accepted = "accepted"
    broadcasting = "broadcasting"
    delivered = "delivered"
    failed = "failed"
    #: The operator stopped broadcasting after our retraction.
    retracted = "retracted"
    #: The operator answered a link test.
    acknowledged = "acknowledged"


class ReceiptReport(BaseModel):
    """One receipt, as every adapter's ``parse_receipt`` returns it (our normal form).

    ``webhook_id`` names the delivery (or link test) the receipt is about: the
    webhook-id we sent it with.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    webhook_id: str = Field(min_length=1, max_length=80)
    status: ReceiptStatus
    recipients: int | None = Field(default=None, ge=0, le=200_000_000)
    reason: str | None = Field(default=None, max_length=200)
    reported_at: AwareDatetime


class ReceiptAck(BaseModel):
    """Our answer to a receipt.

    ``duplicate``: this receipt (same webhook-id, same body) was already recorded;
    nothing happened again. ``applied``: it changed the delivery's reported
    status (an out-of-date receipt, e.g. ``accepted`` after ``delivered``, is
    recorded but does not move the status back).
    """

    receipt_id: str
    webhook_id: str
    status: ReceiptStatus
    duplicate: bool
    applied: bool
