"""API bodies for alerts: what a case system sends and what it gets back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

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
    """Why a case system ends an alert."""

    found_safe = "found_safe"
    found_deceased = "found_deceased"
    consent_withdrawn = "consent_withdrawn"
    cancelled = "cancelled"


class EndReason(StrEnum):
    """Why an alert ended: a case system's reason, or its expiry (never sent by a client)."""

    found_safe = "found_safe"
    found_deceased = "found_deceased"
    consent_withdrawn = "consent_withdrawn"
    cancelled = "cancelled"
    expired = "expired"


class DeliveryStatus(StrEnum):
    pending = "pending"
    retrying = "retrying"
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
        return _https_photo(value)


def _https_photo(value: AnyHttpUrl | None) -> AnyHttpUrl | None:
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


#: Most hours one renewal may add to an alert's expiry.
MAX_RENEW_HOURS = 720


class AlertPatch(StrictModel):
    """What an update may change. Omitted fields stay as they are; ``photo_url: null``
    removes the photo. The area takes the same forms as on create and is resolved again."""

    description: str | None = Field(default=None, min_length=3, max_length=500)
    photo_url: AnyHttpUrl | None = None
    target_area: TargetArea | None = None
    add_languages: list[Language] | None = Field(default=None, min_length=1, max_length=5)

    @field_validator("photo_url")
    @classmethod
    def _https_only(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        return _https_photo(value)

    @model_validator(mode="after")
    def _something_to_change(self) -> AlertPatch:
        if not self.model_fields_set:
            raise ValueError(
                "nothing to change: give description, photo_url, target_area or add_languages"
            )
        for name in ("description", "target_area", "add_languages"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self


class AlertRenew(StrictModel):
    hours: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RENEW_HOURS,
        allow_inf_nan=False,
        description="How much to extend the expiry by; the configured TTL when omitted.",
    )


class OperatorDeliveryRead(BaseModel):
    operator: str
    kind: Literal["dispatch", "update", "retraction"]
    status: DeliveryStatus
    attempts: int
    webhook_id: str
    last_status_code: int | None
    delivered_at: datetime | None
    alert_version: int | None = None
    confirmed_at: datetime | None = None


class AlertRead(BaseModel):
    id: UUID
    case_reference: str
    status: AlertStatus
    version: int
    category: SubjectCategory
    created_at: datetime
    resolved_at: datetime | None
    resolution_reason: EndReason | None
    target_area: TargetArea
    area: ResolvedArea
    sms_text: str
    languages: list[str]
    consent_channels: list[ConsentChannel]
    deliveries: list[OperatorDeliveryRead]
    expires_at: datetime | None = None
    updated_at: datetime | None = None
    #: Once ended: each operator owed the retraction -> confirmed (delivered and not
    #: contradicted by a failed receipt). Operators that never had the alert are absent.
    retraction_confirmed: dict[str, bool] = Field(default_factory=dict)
    fully_retracted: bool = False
    fully_retracted_at: datetime | None = None
    #: Personal data removed after the end (KVKK); the case reference then reads "[erased]".
    erased: bool = False
    erased_at: datetime | None = None


class AlertList(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None


class AlertStatistics(BaseModel):
    """Anonymous counts: what survives erasure of personal data."""

    total: int
    erased: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_age_band: dict[str, int]
    by_end_reason: dict[str, int]
    #: Alerts whose area touched each province (an alert may count in several).
    by_province: dict[str, int]
    #: Deliveries by kind, then status.
    deliveries: dict[str, dict[str, int]]
