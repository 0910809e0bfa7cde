"""API bodies for alerts: what a case system sends and what it gets back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.areas import ResolvedArea, TargetArea


class StrictModel(BaseModel):
    """Unknown fields are a caller's bug; reject them instead of ignoring them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SubjectCategory(StrEnum):
    child = "child"
    adult = "adult"
    vulnerable_adult = "vulnerable_adult"


class ConsentChannel(StrEnum):
    sms = "sms"
    public_web = "public_web"
    social = "social"


class ConsentRelationship(StrEnum):
    parent = "parent"
    legal_guardian = "legal_guardian"
    spouse = "spouse"
    child = "child"
    sibling = "sibling"
    relative = "relative"
    self_ = "self"


class AlertStatus(StrEnum):
    active = "active"
    resolved = "resolved"


class ResolutionReason(StrEnum):
    found_safe = "found_safe"
    found_deceased = "found_deceased"
    consent_withdrawn = "consent_withdrawn"
    cancelled = "cancelled"


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    suppressed = "suppressed"


Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class Subject(StrictModel):
    category: SubjectCategory
    age: int = Field(ge=0, le=120)
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str = Field(min_length=3, max_length=500)
    photo_url: AnyHttpUrl | None = None

    @field_validator("photo_url")
    @classmethod
    def _https_only(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and value.scheme != "https":
            raise ValueError("photo_url must use https")
        return value


class LastSeen(StrictModel):
    lat: Latitude
    lon: Longitude
    at: AwareDatetime
    place: str | None = Field(default=None, min_length=1, max_length=200)


class ConsentGiver(StrictModel):
    relationship: ConsentRelationship
    name: str = Field(min_length=1, max_length=120)


class Consent(StrictModel):
    given_by: ConsentGiver
    given_at: AwareDatetime
    channels: list[ConsentChannel] = Field(min_length=1)
    evidence_reference: str = Field(min_length=1, max_length=200)


Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]


class AlertCreate(StrictModel):
    case_reference: str = Field(min_length=1, max_length=100)
    subject: Subject
    last_seen: LastSeen
    target_area: TargetArea
    languages: list[Language] = Field(default_factory=lambda: ["tr"], min_length=1, max_length=5)
    consent: Consent


class AlertResolve(StrictModel):
    reason: ResolutionReason
    note: str | None = Field(default=None, max_length=500)


class OperatorDeliveryRead(BaseModel):
    operator: str
    kind: Literal["dispatch", "retraction"]
    status: DeliveryStatus
    attempts: int
    webhook_id: str
    last_status_code: int | None
    delivered_at: datetime | None


class AlertRead(BaseModel):
    id: UUID
    case_reference: str
    status: AlertStatus
    version: int
    category: SubjectCategory
    created_at: datetime
    resolved_at: datetime | None
    resolution_reason: ResolutionReason | None
    target_area: TargetArea
    area: ResolvedArea
    sms_text: str
    languages: list[str]
    consent_channels: list[ConsentChannel]
    deliveries: list[OperatorDeliveryRead]


class AlertList(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None
