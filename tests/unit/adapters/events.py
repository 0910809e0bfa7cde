"""Events the adapter tests render: one alert's dispatch, update, retraction and a link test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import (
    AlertContent,
    AlertRetracted,
    AlertUpdated,
    AreaSummary,
    DispatchRequested,
    DistrictSummary,
    LinkTestRequested,
    OperatorTargeting,
)

ALERT_ID = uuid.UUID("0b6f4a8e-2f0b-4f5e-9a57-1d2c3b4a5e6f")
ISSUED = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
UPDATED = ISSUED + timedelta(minutes=30)
RETRACTED = ISSUED + timedelta(hours=2)
EXPIRES = ISSUED + timedelta(hours=72)
SMS = (
    "KAYIP ALARMI: 7 yaşında çocuk. Kırmızı montlu & mavi pantolonlu kız çocuğu. "
    "Son görülme: Şişli, 14.03.2026 12:06. Görenler 155 Polis İmdat'ı arasın."
)
# An irregular ring around Şişli, in GeoJSON lon/lat order, closed.
RING = [
    [28.95123, 41.04567],
    [29.01987, 41.04012],
    [29.03456, 41.07891],
    [28.99012, 41.09876],
    [28.94321, 41.07654],
    [28.95123, 41.04567],
]


def content(photo_url: str | None = "https://example.org/photos/123.jpg") -> AlertContent:
    return AlertContent(
        category="child",
        age=7,
        description="Kırmızı montlu & mavi pantolonlu kız çocuğu",
        photo_url=photo_url,
        last_seen_lat=41.0605,
        last_seen_lon=28.9872,
        last_seen_at=ISSUED - timedelta(minutes=20),
        last_seen_place="Şişli",
        sms_text=SMS,
        languages=["tr", "en"],
    )


def area(polygon: dict[str, object] | None = None) -> AreaSummary:
    return AreaSummary(
        polygon=polygon or {"type": "Polygon", "coordinates": [RING]},
        area_km2=28.37,
        districts=[
            DistrictSummary(code="TUR034035", name="Şişli", province_code="TUR034"),
            DistrictSummary(code="TUR034010", name="Beşiktaş", province_code="TUR034"),
        ],
    )


def targeting(operator: str = "turkcell", mnc: int = 1) -> OperatorTargeting:
    return OperatorTargeting(
        operator=operator,
        mcc=286,
        mnc=mnc,
        cell_ids=[f"286-{mnc:02d}-3401-{i}" for i in range(100, 105)],
    )


def _broadcast(operator: str, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "alert_id": ALERT_ID,
        "alert_version": 1,
        "occurred_at": ISSUED,
        "content": content(),
        "area": area(),
        "targeting": targeting(operator),
        "operators": [operator],
        "expires_at": EXPIRES,
    }
    values.update(changes)
    return values


def dispatch(operator: str = "turkcell", **changes: object) -> DispatchRequested:
    return DispatchRequested.model_validate(_broadcast(operator, **changes))


def update(operator: str = "turkcell", **changes: object) -> AlertUpdated:
    values = {
        "alert_version": 2,
        "previous_version": 1,
        "previous_occurred_at": ISSUED,
        "occurred_at": UPDATED,
        **changes,
    }
    return AlertUpdated.model_validate(_broadcast(operator, **values))


def retraction(operator: str = "turkcell", **changes: object) -> AlertRetracted:
    values: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "alert_id": ALERT_ID,
        "alert_version": 3,
        "previous_occurred_at": UPDATED,
        "occurred_at": RETRACTED,
        "reason": "found_safe",
        "operators": [operator],
    }
    values.update(changes)
    return AlertRetracted.model_validate(values)


def link_test(operator: str = "turkcell") -> LinkTestRequested:
    return LinkTestRequested(event_id=uuid.uuid4(), operator=operator, occurred_at=ISSUED)
