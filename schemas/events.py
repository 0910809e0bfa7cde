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
    #: Set when the reconciler or a re-drive publishes the event again: the
    #: worker then checks the database before delivering (the webhook-id is unchanged).
    redelivery: bool = False


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
    expires_at: datetime | None = None


class AlertUpdated(EventBase):
    """New content or area for an alert an operator already has (CAP msgType Update).

    ``previous_version`` is the version this one replaces; an operator that never
    had the alert (a widened area) treats it as new.
    """

    type: Literal["alert.updated"] = "alert.updated"
    schema_version: Literal[1] = 1
    previous_version: int
    #: When ``previous_version`` was issued: CAP's ``references`` must name it.
    previous_occurred_at: datetime | None = None
    content: AlertContent
    area: AreaSummary
    targeting: OperatorTargeting | None = None
    operators: list[str]
    expires_at: datetime | None = None


class AlertRetracted(EventBase):
    """Withdraws the alert from ``operators``.

    ``partial`` is True when the alert stays active and only these operators' part of
    the area went away (a narrowed update): then no other operator is affected. An end
    (resolve, consent withdrawal, expiry) is total: every operator's worker drops older
    messages of the alert, and one that sent the alert retracts it even if unlisted.
    """

    type: Literal["alert.retracted"] = "alert.retracted"
    schema_version: Literal[1] = 1
    partial: bool = False
    reason: str
    #: When the last version before this retraction was issued (CAP ``references``).
    previous_occurred_at: datetime | None = None
    operators: list[str]


class LinkTestRequested(BaseModel):
    """A periodic signed test message proving one operator's path works end to end.

    Carries no alert and no personal data; keyed by operator name.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["operator.link_test"] = "operator.link_test"
    schema_version: Literal[1] = 1
    event_id: UUID
    operator: str
    occurred_at: datetime
    redelivery: bool = False

    @property
    def operators(self) -> list[str]:
        return [self.operator]


AlertEvent = Annotated[
    DispatchRequested | AlertUpdated | AlertRetracted | LinkTestRequested,
    Field(discriminator="type"),
]
