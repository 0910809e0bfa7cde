"""Webhook payloads as operators receive them (Standard Webhooks JSON body)."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal
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


class UpdateWebhookData(AlertWebhookData):
    previous_version: int


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


class UpdateWebhook(BaseModel):
    type: Literal["alert.update"] = "alert.update"
    schema_version: int = WEBHOOK_SCHEMA_VERSION
    timestamp: datetime
    data: UpdateWebhookData


class LinkTestWebhookData(BaseModel):
    test_id: UUID
    operator: str


class LinkTestWebhook(BaseModel):
    """A test: never broadcast; acknowledge with a receipt of status ``acknowledged``."""

    type: Literal["link.test"] = "link.test"
    schema_version: int = WEBHOOK_SCHEMA_VERSION
    timestamp: datetime
    data: LinkTestWebhookData


# -- Turkcell: JSON for its cell broadcast centre, with the explicit cell list ---

TURKCELL_FORMAT: Final = "turkcell-cb/1"


class TurkcellPlmn(BaseModel):
    """The network the cells belong to (MCC 286 is Türkiye)."""

    mcc: int
    mnc: int


class TurkcellBroadcast(BaseModel):
    """A new alert (``ALERT``) or a new version of one (``UPDATE``) to broadcast.

    ``cells`` are cell global ids (``mcc-mnc-lac-ci``) of every cell whose
    coverage touches the target: Turkcell broadcasts on exactly these.
    """

    format: Literal["turkcell-cb/1"] = TURKCELL_FORMAT
    message_type: Literal["ALERT", "UPDATE"]
    alert_id: UUID
    alert_version: int
    #: The version this one replaces (UPDATE only).
    replaces_version: int | None
    sent_at: datetime
    expires_at: datetime | None
    sms_text: str
    languages: list[str]
    photo_url: str | None
    plmn: TurkcellPlmn | None
    cells: list[str]
    cell_count: int


class TurkcellCancel(BaseModel):
    """Stop broadcasting every version of the alert up to ``cancels_up_to_version``."""

    format: Literal["turkcell-cb/1"] = TURKCELL_FORMAT
    message_type: Literal["CANCEL"] = "CANCEL"
    alert_id: UUID
    alert_version: int
    cancels_up_to_version: int
    reason: str
    sent_at: datetime


class TurkcellTest(BaseModel):
    """A link test: acknowledge it, never broadcast it."""

    format: Literal["turkcell-cb/1"] = TURKCELL_FORMAT
    message_type: Literal["TEST"] = "TEST"
    test_id: UUID
    sent_at: datetime
    broadcast: Literal[False] = False


# -- Türk Telekom: compact JSON around the broadcast polygon ----------------------

TURKTELEKOM_FORMAT: Final = "ttcb1"


class TurkTelekomMessage(BaseModel):
    """One message in Türk Telekom's compact form; absent keys are simply left out.

    Keys: ``f`` format, ``k`` kind (``A`` alert, ``U`` update, ``C`` cancel,
    ``T`` test), ``id`` alert id (test id for ``T``), ``v`` version, ``pv`` the
    version replaced (``U``) or the last one cancelled (``C``), ``ts`` sent and
    ``exp`` expiry as Unix seconds, ``txt`` SMS text, ``lang`` languages, ``g``
    the broadcast area as closed rings of ``[lat, lon]`` pairs (rounded outward so
    they still cover the target), ``km2`` its area, ``img`` photo URL, ``why``
    the cancel reason.
    """

    f: Literal["ttcb1"] = TURKTELEKOM_FORMAT
    k: Literal["A", "U", "C", "T"]
    id: UUID
    v: int | None = None
    pv: int | None = None
    ts: int
    exp: int | None = None
    txt: str | None = None
    lang: list[str] | None = None
    g: list[list[tuple[float, float]]] | None = None
    km2: float | None = None
    img: str | None = None
    why: str | None = None
