"""Ending and updating alerts: the database says, per operator, what it has and is owed.

The relay runs here with a recording publisher (the suppression rules live between the
database and the relay); the real broker and operators are covered in tests/e2e.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from schemas.alerts import AlertPatch, AlertResolve, ResolutionReason
from services import housekeeping
from services.context import ServiceContext
from services.db.models import AuditEvent, Delivery, OutboxEvent
from services.errors import Conflict
from services.messaging.topics import Topics
from tests.fixtures.lifecycle import (
    ANKARA,
    ISTANBUL,
    RecordingPublisher,
    circle,
    create,
    deliveries,
    lifecycle_context,
    outbox_rows,
    publish_all,
    split_engine,
    statuses,
)

pytestmark = pytest.mark.asyncio
OPERATORS = ["turkcell", "turktelekom", "vodafone"]
FOUND = AlertResolve(reason=ResolutionReason.found_safe)


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[ServiceContext]:
    async with lifecycle_context(database_url, engine=split_engine()) as ctx:
        yield ctx


def _topics(context: ServiceContext) -> Topics:
    return Topics(context.settings.kafka_topic_prefix)


async def _mark_published(context: ServiceContext, event_ids: list[str]) -> None:
    """What the relay's (batched, later) mark does for events it already published."""
    async with context.db.write() as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.event_id.in_(event_ids))
            .values(published_at=OutboxEvent.created_at)
        )


async def test_resolve_before_publish_suppresses_every_dispatch_and_retracts_from_nobody(
    context: ServiceContext,
) -> None:
    alert_id = await create(context)
    resolved = await context.alerts.resolve("writer", alert_id, FOUND)

    rows = await outbox_rows(context, alert_id)
    dispatches = [r for r in rows if r.type == "alert.dispatch_requested"]
    assert len(dispatches) == 3
    assert all(r.suppressed_at is not None and r.published_at is None for r in dispatches)
    [retraction] = [r for r in rows if r.type == "alert.retracted"]
    assert retraction.topic == _topics(context).retractions
    assert retraction.payload["operators"] == []
    assert retraction.payload["alert_version"] == 2
    assert context.feed.pending_ids() == {retraction.event_id}  # dispatches dropped from the feed

    delivered = await deliveries(context, alert_id)
    assert statuses(delivered, "dispatch", 1) == dict.fromkeys(OPERATORS, "suppressed")
    assert statuses(delivered, "retraction", 2) == dict.fromkeys(OPERATORS, "suppressed")
    # Nobody ever had it, so nobody is owed a confirmation: fully retracted at once.
    assert resolved.alert.retraction_confirmed == {}
    assert resolved.alert.fully_retracted

    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    await publish_all(context, publisher)  # a later sweep does not pick them up either
    assert [e["type"] for e in publisher.events(alert_id)] == ["alert.retracted"]


async def test_resolve_after_publish_retracts_from_every_operator_on_the_retraction_lane(
    context: ServiceContext,
) -> None:
    alert_id = await create(context)
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    first = await context.alerts.resolve("writer", alert_id, FOUND)
    second = await context.alerts.resolve(
        "writer", alert_id, AlertResolve(reason=ResolutionReason.cancelled)
    )
    assert not first.already_resolved
    assert second.already_resolved
    assert second.alert == first.alert  # the same answer, nothing new

    rows = await outbox_rows(context, alert_id)
    assert len(rows) == 4
    [retraction] = [r for r in rows if r.type == "alert.retracted"]
    assert retraction.topic == _topics(context).retractions
    assert sorted(retraction.payload["operators"]) == OPERATORS
    assert retraction.payload["reason"] == "found_safe"
    delivered = await deliveries(context, alert_id)
    # Dispatches not yet delivered are left to the worker's version check.
    assert statuses(delivered, "dispatch", 1) == dict.fromkeys(OPERATORS, "pending")
    assert statuses(delivered, "retraction", 2) == dict.fromkeys(OPERATORS, "pending")
    assert first.alert.retraction_confirmed == dict.fromkeys(OPERATORS, False)
    assert not first.alert.fully_retracted
    await publish_all(context, publisher)
    assert [e["type"] for e in publisher.events(alert_id)] == [
        "alert.dispatch_requested",
        "alert.dispatch_requested",
        "alert.dispatch_requested",
        "alert.retracted",
    ]


async def test_only_operators_whose_message_was_unsent_are_left_out(
    context: ServiceContext,
) -> None:
    """turkcell's dispatch was published, vodafone's is in a worker's retry backoff (the
    relay's mark not yet written), turktelekom's still waits in the outbox."""
    alert_id = await create(context)
    context.feed.clear()  # the relay is not running in this test
    rows = {d.operator: d for d in await deliveries(context, alert_id)}
    await _mark_published(context, [rows["turkcell"].event_id])
    async with context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.webhook_id == rows["vodafone"].webhook_id)
            .values(status="retrying", attempts=2)
        )
    await context.alerts.resolve("writer", alert_id, FOUND)

    [retraction] = [r for r in await outbox_rows(context, alert_id) if r.type == "alert.retracted"]
    assert retraction.payload["operators"] == ["turkcell", "vodafone"]
    delivered = await deliveries(context, alert_id)
    assert statuses(delivered, "dispatch", 1) == {
        "turkcell": "pending",
        "vodafone": "retrying",
        "turktelekom": "suppressed",
    }
    assert statuses(delivered, "retraction", 2) == {
        "turkcell": "pending",
        "vodafone": "pending",
        "turktelekom": "suppressed",
    }
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    published = publisher.events(alert_id)
    assert [e["type"] for e in published] == ["alert.dispatch_requested", "alert.retracted"]
    assert published[0]["operators"] == ["vodafone"]  # unmarked yet in flight: re-published


async def test_a_suppressed_dispatch_the_relay_had_already_taken_is_retracted_after_all(
    context: ServiceContext,
) -> None:
    alert_id = await create(context)
    taken = context.feed.take(100)  # the relay took them a moment before the resolve
    await context.alerts.resolve("writer", alert_id, FOUND)
    [retraction] = [r for r in await outbox_rows(context, alert_id) if r.type == "alert.retracted"]
    assert retraction.payload["operators"] == []
    now = datetime.fromisoformat(retraction.payload["occurred_at"])

    # Nothing shows they went out...
    assert await housekeeping.retract_late_publishes(context.db, context.alerts, now) == {}
    # ...and the relay's mark alone does not either: a worker that gets them after the
    # retraction drops them (it learnt the newer version) and records them suppressed...
    await _mark_published(context, [e.event_id for e in taken])
    assert await housekeeping.retract_late_publishes(context.db, context.alerts, now) == {}
    # ...until a worker records that it delivered them (it lost its memory, say, in a restart).
    async with context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == alert_id, Delivery.kind == "dispatch")
            .values(status="delivered", attempts=1)
        )
    done = await housekeeping.retract_late_publishes(context.db, context.alerts, now)
    assert done == {alert_id: OPERATORS}
    assert await housekeeping.retract_late_publishes(context.db, context.alerts, now) == {}

    retractions = [r for r in await outbox_rows(context, alert_id) if r.type == "alert.retracted"]
    assert len(retractions) == 2
    late = retractions[1]
    assert late.topic == _topics(context).retractions
    assert late.payload["operators"] == OPERATORS
    assert late.payload["alert_version"] == 2
    assert late.payload["reason"] == "found_safe"
    delivered = await deliveries(context, alert_id)
    assert statuses(delivered, "retraction", 2) == dict.fromkeys(OPERATORS, "pending")
    assert {d.event_id for d in delivered if d.kind == "retraction"} == {late.event_id}
    read = await context.alerts.get(alert_id)
    assert read.retraction_confirmed == dict.fromkeys(OPERATORS, False)
    assert not read.fully_retracted


async def test_update_sends_each_operator_what_it_needs_as_the_area_moves(
    context: ServiceContext,
) -> None:
    """v1 İstanbul (turkcell, turktelekom; vodafone gets a cell-less copy), v2 Ankara, v3
    back to İstanbul."""
    alert_id = await create(context, target_area=circle(ISTANBUL))
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    topics = _topics(context)

    moved = await context.alerts.update(
        "writer", alert_id, AlertPatch.model_validate({"target_area": circle(ANKARA)})
    )
    assert moved.changed == ["target_area"]
    assert moved.alert.status == "active"
    assert moved.alert.version == 2
    v2 = [r for r in await outbox_rows(context, alert_id) if r.payload["alert_version"] == 2]
    by_operator = {op: r for r in v2 for op in r.payload["operators"]}
    assert by_operator["turkcell"].type == "alert.retracted"
    assert by_operator["turkcell"].payload["reason"] == "area_narrowed"
    assert by_operator["turkcell"].topic == topics.retractions
    for operator in ("vodafone", "turktelekom"):
        assert by_operator[operator].type == "alert.updated"
        assert by_operator[operator].topic == topics.alert_events
        assert by_operator[operator].payload["previous_version"] == 1
        assert by_operator[operator].payload["targeting"]["cell_ids"]
    assert "TUR006" in {p.code for p in moved.alert.area.provinces}

    await publish_all(context, publisher)
    back = await context.alerts.update(
        "writer", alert_id, AlertPatch.model_validate({"target_area": circle(ISTANBUL)})
    )
    assert back.alert.version == 3
    v3 = [r for r in await outbox_rows(context, alert_id) if r.payload["alert_version"] == 3]
    by_operator = {op: r for r in v3 for op in r.payload["operators"]}
    # turkcell was retracted at v2: it gets the alert anew, never an update.
    assert by_operator["turkcell"].type == "alert.dispatch_requested"
    assert by_operator["turkcell"].payload["targeting"]["cell_ids"]
    assert by_operator["vodafone"].type == "alert.retracted"
    assert by_operator["turktelekom"].type == "alert.updated"
    assert by_operator["turktelekom"].payload["previous_version"] == 2
    kinds = {
        (d.operator, d.kind) for d in await deliveries(context, alert_id) if d.alert_version == 3
    }
    assert kinds == {
        ("turkcell", "dispatch"),
        ("vodafone", "retraction"),
        ("turktelekom", "update"),
    }
    assert {d.kind for d in back.alert.deliveries} == {"dispatch", "update", "retraction"}

    # The final retraction goes to everyone the alert may have reached.
    await context.alerts.resolve("writer", alert_id, FOUND)
    [end] = [r for r in await outbox_rows(context, alert_id) if r.payload["alert_version"] == 4]
    assert sorted(end.payload["operators"]) == OPERATORS


async def test_update_before_publish_suppresses_the_old_version_and_dispatches_afresh(
    context: ServiceContext,
) -> None:
    alert_id = await create(context, target_area=circle(ISTANBUL))
    outcome = await context.alerts.update(
        "writer",
        alert_id,
        AlertPatch.model_validate(
            {"description": "Sarı montlu, kot pantolonlu kız çocuğu", "add_languages": ["en"]}
        ),
    )
    assert outcome.changed == ["description", "languages"]
    rows = await outbox_rows(context, alert_id)
    v1 = [r for r in rows if r.payload["alert_version"] == 1]
    assert all(r.suppressed_at is not None for r in v1)
    v2 = [r for r in rows if r.payload["alert_version"] == 2]
    # Nobody got v1: whoever has cells gets a full dispatch, vodafone (no cells) nothing.
    assert sorted((r.payload["operators"][0], r.type) for r in v2) == [
        ("turkcell", "alert.dispatch_requested"),
        ("turktelekom", "alert.dispatch_requested"),
    ]
    content = v2[0].payload["content"]
    assert content["description"] == "Sarı montlu, kot pantolonlu kız çocuğu"
    assert "Sarı montlu" in content["sms_text"]
    assert content["languages"] == ["tr", "en"]
    assert outcome.alert.sms_text == content["sms_text"]
    assert datetime.fromisoformat(v2[0].payload["expires_at"]) == outcome.alert.expires_at
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    assert sorted(e["alert_version"] for e in publisher.events(alert_id)) == [2, 2]

    async with context.db.read() as session:
        details = (
            await session.scalars(
                select(AuditEvent.details).where(
                    AuditEvent.alert_id == alert_id, AuditEvent.action == "alert.updated"
                )
            )
        ).one()
    assert details["fields"] == ["description", "languages"]
    assert "Sarı" not in str(details)

    # The same patch again changes nothing and sends nothing.
    again = await context.alerts.update(
        "writer",
        alert_id,
        AlertPatch.model_validate({"description": "Sarı montlu, kot pantolonlu kız çocuğu"}),
    )
    assert again.changed == []
    assert again.alert.version == 2
    assert len(await outbox_rows(context, alert_id)) == len(rows)


async def test_update_racing_a_resolve_leaves_everyone_retracted(
    context: ServiceContext,
) -> None:
    alert_id = await create(context, target_area=circle(ISTANBUL))
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    await context.alerts.update(
        "writer", alert_id, AlertPatch.model_validate({"target_area": circle(ANKARA)})
    )
    # The resolve lands before the update was published: its messages are suppressed,
    # and each operator is retracted (all held v1).
    await context.alerts.resolve("writer", alert_id, FOUND)
    rows = await outbox_rows(context, alert_id)
    assert all(r.suppressed_at is not None for r in rows if r.type == "alert.updated")
    [end] = [r for r in rows if r.payload["alert_version"] == 3]
    assert sorted(end.payload["operators"]) == OPERATORS
    with pytest.raises(Conflict):
        await context.alerts.update(
            "writer", alert_id, AlertPatch.model_validate({"description": "Başka bir tarif"})
        )
    await publish_all(context, publisher)
    last = {}
    for event in publisher.events(alert_id):
        for operator in event["operators"]:
            last[operator] = event["type"]
    assert last == dict.fromkeys(OPERATORS, "alert.retracted")


async def test_expiry_and_renewal(context: ServiceContext) -> None:
    alert_id = await create(context)
    publisher = RecordingPublisher()
    await publish_all(context, publisher)
    alert = await context.alerts.get(alert_id)
    assert alert.expires_at == alert.created_at + timedelta(hours=72)
    [dispatch, *_] = publisher.events(alert_id)
    assert dispatch["expires_at"] is not None

    just_before = alert.created_at + timedelta(hours=72) - timedelta(seconds=1)
    assert await housekeeping.expire_due(context.alerts, just_before) == []

    renewed = await context.alerts.renew("writer", alert_id, 2)
    assert renewed.expires_at == alert.created_at + timedelta(hours=74)
    assert renewed.version == 2
    assert renewed.status == "active"
    await publish_all(context, publisher)
    updates = [e for e in publisher.events(alert_id) if e["alert_version"] == 2]
    assert sorted(e["operators"][0] for e in updates) == ["turkcell", "turktelekom", "vodafone"]
    assert all(e["type"] == "alert.updated" and e["previous_version"] == 1 for e in updates)

    after_old_expiry = alert.created_at + timedelta(hours=73)
    assert await housekeeping.expire_due(context.alerts, after_old_expiry) == []
    due = alert.created_at + timedelta(hours=74)
    assert await housekeeping.expire_due(context.alerts, due) == [alert_id]
    assert await housekeeping.expire_due(context.alerts, due) == []

    expired = await context.alerts.get(alert_id)
    assert expired.status == "resolved"
    assert expired.resolution_reason == "expired"
    assert expired.version == 3
    assert expired.resolved_at == due
    [end] = [r for r in await outbox_rows(context, alert_id) if r.payload["alert_version"] == 3]
    assert end.type == "alert.retracted"
    assert end.payload["reason"] == "expired"
    assert end.topic == _topics(context).retractions
    assert sorted(end.payload["operators"]) == OPERATORS
    with pytest.raises(Conflict):
        await context.alerts.renew("writer", alert_id, None)
    async with context.db.read() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.alert_id == alert_id)
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["alert.created", "alert.renewed", "alert.expired"]
