"""After the end: retraction confirmation, the unconfirmed alarm, and KVKK erasure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text, update

from schemas.alerts import AlertResolve, ResolutionReason
from services import erasure, housekeeping
from services.context import ServiceContext
from services.db.models import Alert, AuditEvent, ConsentRecord, Delivery
from tests.fixtures.lifecycle import (
    RecordingPublisher,
    create,
    lifecycle_context,
    outbox_rows,
    publish_all,
)

pytestmark = pytest.mark.asyncio
OPERATORS = ["turkcell", "turktelekom", "vodafone"]
#: Every piece of personal data in tests.fixtures.payloads.alert_body().
PERSONAL = (
    "Test Child",
    "Kırmızı montlu",
    "photos/123.jpg",
    "Şişli",
    "EGM-2026-000123",
    "Test Parent",
    "EGM-FORM-77",
    "41.0605",
    "28.9872",
)


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[ServiceContext]:
    async with lifecycle_context(database_url) as ctx:
        yield ctx


async def _published_and_resolved(
    context: ServiceContext, reason: ResolutionReason = ResolutionReason.found_safe
) -> tuple[str, datetime]:
    alert_id = await create(context)
    await publish_all(context, RecordingPublisher())
    resolved = await context.alerts.resolve("writer", alert_id, AlertResolve(reason=reason))
    assert resolved.alert.resolved_at is not None
    return alert_id, resolved.alert.resolved_at


async def _confirm(
    context: ServiceContext, alert_id: str, operators: list[str], at: datetime
) -> None:
    """What the worker writes on a retraction's 2xx."""
    async with context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(
                Delivery.alert_id == alert_id,
                Delivery.kind == "retraction",
                Delivery.operator.in_(operators),
            )
            .values(status="delivered", delivered_at=at, confirmed_at=at)
        )


async def _audit(context: ServiceContext, alert_id: str, action: str) -> list[dict[str, object]]:
    async with context.db.read() as session:
        rows = await session.scalars(
            select(AuditEvent.details).where(
                AuditEvent.alert_id == alert_id, AuditEvent.action == action
            )
        )
        return list(rows)


def _gauge(operator: str) -> float | None:
    return REGISTRY.get_sample_value(
        "kayip_retractions_unconfirmed_overdue", {"operator": operator}
    )


def _alarms(operator: str) -> float:
    return REGISTRY.get_sample_value("kayip_retraction_alarms_total", {"operator": operator}) or 0


async def test_confirmation_read_model_and_a_single_alarm_per_unconfirmed_operator(
    context: ServiceContext,
) -> None:
    alert_id, resolved_at = await _published_and_resolved(context)
    alarm_after = context.settings.retraction_alarm_after_s
    check = await housekeeping.check_retractions(context.db, alarm_after, resolved_at, OPERATORS)
    assert check.stamped == [] and check.alarmed == []  # noqa: PT018 - one state

    confirmed_at = resolved_at + timedelta(seconds=1)
    await _confirm(context, alert_id, ["turkcell", "vodafone"], confirmed_at)
    read = await context.alerts.get(alert_id)
    assert read.retraction_confirmed == {
        "turkcell": True,
        "turktelekom": False,
        "vodafone": True,
    }
    assert not read.fully_retracted
    assert read.fully_retracted_at is None

    alarms_before = _alarms("turktelekom")
    late = resolved_at + timedelta(seconds=alarm_after + 1)
    check = await housekeeping.check_retractions(context.db, alarm_after, late, OPERATORS)
    assert check.alarmed == [(alert_id, "turktelekom")]
    assert check.overdue == {"turkcell": 0, "turktelekom": 1, "vodafone": 0}
    assert _gauge("turktelekom") == 1
    assert _alarms("turktelekom") == alarms_before + 1
    later = late + timedelta(minutes=5)
    check = await housekeeping.check_retractions(context.db, alarm_after, later, OPERATORS)
    assert check.alarmed == []  # flagged once, not every run
    assert _gauge("turktelekom") == 1
    assert _alarms("turktelekom") == alarms_before + 1
    assert await _audit(context, alert_id, "retraction.unconfirmed") == [
        {"operator": "turktelekom", "after_s": alarm_after}
    ]

    last = resolved_at + timedelta(seconds=90)
    await _confirm(context, alert_id, ["turktelekom"], last)
    check = await housekeeping.check_retractions(context.db, alarm_after, later, OPERATORS)
    assert check.stamped == [alert_id]
    assert _gauge("turktelekom") == 0
    read = await context.alerts.get(alert_id)
    assert read.fully_retracted
    assert read.fully_retracted_at == last
    assert read.retraction_confirmed == dict.fromkeys(OPERATORS, True)

    # A failed receipt withdraws turkcell's confirmation: no longer fully retracted.
    async with context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == alert_id, Delivery.operator == "turkcell")
            .where(Delivery.kind == "retraction")
            .values(confirmed_at=None, receipt_status="failed")
        )
    read = await context.alerts.get(alert_id)
    assert not read.fully_retracted
    assert read.fully_retracted_at is None
    check = await housekeeping.check_retractions(context.db, alarm_after, later, OPERATORS)
    assert check.unstamped == [alert_id]
    async with context.db.read() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert alert.fully_retracted_at is None


async def _scan_for_personal_data(context: ServiceContext, alert_id: str) -> list[str]:
    """Every text a row of this alert holds anywhere, searched for the personal values."""
    found: list[str] = []
    queries = {
        "alerts": "SELECT * FROM alerts WHERE id = :id",
        "consents": "SELECT * FROM consents WHERE alert_id = :id",
        "outbox": "SELECT * FROM outbox WHERE alert_id = :id",
        "audit_events": "SELECT * FROM audit_events WHERE alert_id = :id",
        "deliveries": "SELECT * FROM deliveries WHERE alert_id = :id",
    }
    async with context.db.read() as session:
        for table, sql in queries.items():
            for row in await session.execute(text(sql), {"id": alert_id}):
                blob = " ".join(str(value) for value in row)
                found += [f"{table}: {p}" for p in PERSONAL if p in blob]
    return found


async def test_erasure_after_retention_keeps_statistics(context: ServiceContext) -> None:
    alert_id, resolved_at = await _published_and_resolved(context)
    assert await _scan_for_personal_data(context, alert_id)  # the scan does find them
    before = await context.alerts.get(alert_id)

    retention = context.settings.erasure_retention_days
    not_yet = resolved_at + timedelta(days=retention) - timedelta(seconds=1)
    assert await erasure.erase_due(context.db, retention, not_yet) == []
    due = resolved_at + timedelta(days=retention)
    [done] = await erasure.erase_due(context.db, retention, due)
    assert done.alert_id == alert_id
    assert done.cause == "retention"
    assert done.outbox_events == 3
    assert await erasure.erase_due(context.db, retention, due) == []

    assert await _scan_for_personal_data(context, alert_id) == []
    async with context.db.read() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        consent = (
            await session.scalars(select(ConsentRecord).where(ConsentRecord.alert_id == alert_id))
        ).one()
    assert (alert.subject_name, alert.description, alert.photo_url) == (None, None, None)
    assert (alert.last_seen_place, alert.sms_text) == (None, None)
    assert alert.case_reference == "[erased]"
    assert (alert.last_seen_lat, alert.last_seen_lon) == (41.06, 28.99)
    assert alert.erased_at == due
    assert (consent.giver_name, consent.evidence_reference) == (None, "[erased]")
    # Statistics survive.
    assert (alert.category, alert.subject_age, alert.resolution_reason) == (
        "child",
        7,
        "found_safe",
    )
    assert alert.created_at == before.created_at
    assert alert.resolved_at == resolved_at

    rows = await outbox_rows(context, alert_id)
    for row in rows:
        if row.type == "alert.retracted":
            assert sorted(row.payload["operators"]) == OPERATORS  # still publishable
        else:
            assert row.payload == {
                "type": "alert.dispatch_requested",
                "event_id": row.event_id,
                "alert_id": alert_id,
                "erased": True,
            }
    [audit] = await _audit(context, alert_id, "alert.erased")
    assert audit["cause"] == "retention"
    assert "description" in audit["alert_fields"]  # type: ignore[operator]

    read = await context.alerts.get(alert_id)
    assert read.erased
    assert read.erased_at == due
    assert read.case_reference == "[erased]"
    assert read.sms_text == ""
    assert read.category == "child"
    assert [d.code for d in read.area.districts] == [d.code for d in before.area.districts]
    assert read.target_area.type == "admin_area"  # type: ignore[union-attr]
    assert read.deliveries == before.deliveries
    area = await context.alerts.area_geojson(alert_id)
    assert "41.06" not in str(area["features"][:2])

    stats = await context.alerts.statistics()
    assert stats.total == 1
    assert stats.erased == 1
    assert stats.by_status == {"resolved": 1}
    assert stats.by_category == {"child": 1}
    assert stats.by_age_band == {"6-11": 1}
    assert stats.by_end_reason == {"found_safe": 1}
    assert stats.by_province == {"TUR034": 1}
    assert stats.deliveries == {
        "dispatch": {"pending": 3},
        "retraction": {"pending": 3},
    }


async def test_zero_retention_erases_at_the_next_run(database_url: str) -> None:
    async with lifecycle_context(database_url, erasure_retention_days=0) as context:
        alert_id, resolved_at = await _published_and_resolved(context)
        active = await create(context)
        erased = await erasure.erase_due(
            context.db, context.settings.erasure_retention_days, resolved_at
        )
        assert [e.alert_id for e in erased] == [alert_id]
        assert await _scan_for_personal_data(context, alert_id) == []
        assert await _scan_for_personal_data(context, active)  # an active alert is untouched


@pytest.mark.parametrize("late", [False, True], ids=["at-the-end", "after-the-end"])
async def test_consent_withdrawal_erases_once_the_retraction_is_confirmed(
    context: ServiceContext, late: bool
) -> None:
    first = ResolutionReason.found_safe if late else ResolutionReason.consent_withdrawn
    alert_id, resolved_at = await _published_and_resolved(context, first)
    if late:
        again = await context.alerts.resolve(
            "writer", alert_id, AlertResolve(reason=ResolutionReason.consent_withdrawn)
        )
        assert again.already_resolved
        assert again.alert.resolution_reason == "found_safe"
        assert len(await outbox_rows(context, alert_id)) == 4  # nothing sent again
    retention = context.settings.erasure_retention_days
    soon = resolved_at + timedelta(seconds=5)
    assert await erasure.erase_due(context.db, retention, soon) == []  # not yet confirmed

    await _confirm(context, alert_id, OPERATORS, soon)
    check = await housekeeping.check_retractions(context.db, 60, soon, OPERATORS)
    assert check.stamped == [alert_id]
    [done] = await erasure.erase_due(context.db, retention, soon)
    assert (done.alert_id, done.cause) == (alert_id, "consent_withdrawn")
    assert await _scan_for_personal_data(context, alert_id) == []
