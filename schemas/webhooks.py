"""Webhook payloads as operators receive them (Standard Webhooks JSON body)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

WEBHOOK_SCHEMA_VERSION = 1


class WebhookArea(BaseModel):
    polygon: dict[str, object]
    area_km2: float
    district_codes: list[str]
    cell_ids: list[str]


class AlertWebhookData(BaseModel):
    alert_id: UUID
    alert_version: int
    sms_text: str
    languages: list[str]
    photo_url: str | None
    area: WebhookArea


class RetractionWebhookData(BaseModel):
    alert_id: UUID
    alert_version: int
    references_event_id: UUID | None
    reason: str


class AlertWebhook(BaseModel):
    type: Literal["alert.dispatch"] = "alert.dispatch"
    schema_version: int = WEBHOOK_SCHEMA_VERSION
    timestamp: datetime
    data: AlertWebhookData


class RetractionWebhook(BaseModel):
    type: Literal["alert.retraction"] = "alert.retraction"
    schema_version: int = WEBHOOK_SCHEMA_VERSION
    timestamp: datetime
    data: RetractionWebhookData
