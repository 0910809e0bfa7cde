"""Kafka event envelopes. Each type carries its own ``schema_version``.

Messages are keyed by alert id and carry the alert's version so that adapters
can drop anything older than what they have already delivered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class DistrictSummary(BaseModel):
    code: str
    name: str
    province_code: str | None


class EventBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    alert_id: UUID
    alert_version: int
    occurred_at: datetime


class AlertContent(BaseModel):
    """What an operator needs to broadcast. Holds personal data: never log it."""

    model_config = ConfigDict(frozen=True)

    category: str
    age: int
    description: str
    photo_url: str | None
    last_seen_lat: float
    last_seen_lon: float
    last_seen_at: datetime
    last_seen_place: str | None
    sms_text: str
    languages: list[str]


class AreaSummary(BaseModel):
    """Where the alert applies: the broadcast polygon (never smaller than the target)."""

    model_config = ConfigDict(frozen=True)

    polygon: dict[str, object]
    area_km2: float
    districts: list[DistrictSummary]


class OperatorTargeting(BaseModel):
    """One operator's cells for this alert: dispatch events are per operator."""

    model_config = ConfigDict(frozen=True)

    operator: str
    mcc: int
    mnc: int
    cell_ids: list[str]


class DispatchRequested(EventBase):
    type: Literal["alert.dispatch_requested"] = "alert.dispatch_requested"
    schema_version: Literal[1] = 1
    content: AlertContent
    area: AreaSummary
    targeting: OperatorTargeting | None = None
    operators: list[str]


class AlertRetracted(EventBase):
    type: Literal["alert.retracted"] = "alert.retracted"
    schema_version: Literal[1] = 1
    reason: str
    operators: list[str]


AlertEvent = Annotated[DispatchRequested | AlertRetracted, Field(discriminator="type")]
