"""The relay's rules: fast path in commit order, catch-up in id order, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from schemas.alerts import AlertCreate, AlertResolve, ResolutionReason
from services.context import ServiceContext
from services.db.models import OutboxEvent
from services.relay import OutboxRelay, PublishedEnds
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio


class FakePublisher:
    """Records what was published; raises while ``down`` is set."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, bytes]] = []
        self.down = False

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> PublishedEnds:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.published.extend(messages)
        return {}


async def _create(context: ServiceContext) -> str:
    created = await context.alerts.create("writer", AlertCreate.model_validate(alert_body()), None)
    return str(created.alert.id)


async def _resolve(context: ServiceContext, alert_id: str) -> None:
    await context.alerts.resolve(
        "writer", alert_id, AlertResolve(reason=ResolutionReason.found_safe)
    )


async def _create_and_resolve(context: ServiceContext) -> str:
    """Resolved before the relay ran: its dispatches are suppressed, never published."""
    alert_id = await _create(context)
    await _resolve(context, alert_id)
    return alert_id


def _types(publisher: FakePublisher, alert_id: str) -> list[str]:
    import json

    return [json.loads(v)["type"] for _, k, v in publisher.published if k == alert_id.encode()]


async def _unpublished(context: ServiceContext) -> int:
    async with context.db.read() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None), OutboxEvent.suppressed_at.is_(None))
            )
            or 0
        )


async def test_fast_path_publishes_in_commit_order_and_marks(context: ServiceContext) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(context.db, publisher, context.feed, sweep_grace_s=2.0)
    await relay.cycle()  # start-up catch-up: nothing there yet
    alert_id = await _create(context)
    assert len(context.feed) == 3
    await relay.cycle()
    await _resolve(context, alert_id)
    assert len(context.feed) == 1
    await relay.cycle()
    assert _types(publisher, alert_id) == ["alert.dispatch_requested"] * 3 + ["alert.retracted"]
    assert await _unpublished(context) == 0
    await relay.cycle()  # nothing new: nothing published twice
    assert len(publisher.published) == 4


async def test_broker_down_then_back_publishes_everything_once_in_order(
    context: ServiceContext,
) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(context.db, publisher, context.feed, sweep_grace_s=2.0)
    await relay.cycle()
    first = await _create(context)
    await relay.cycle()
    publisher.down = True
    await _resolve(context, first)
    with pytest.raises(ConnectionError):
        await relay.cycle()
    second = await _create(context)  # committed while the broker is down
    publisher.down = False
    await relay.cycle()  # catch-up reads the database in id order
    await relay.cycle()
    assert _types(publisher, first) == ["alert.dispatch_requested"] * 3 + ["alert.retracted"]
    assert _types(publisher, second) == ["alert.dispatch_requested"] * 3
    assert len(publisher.published) == 7
    assert await _unpublished(context) == 0


async def test_sweep_leaves_fresh_rows_to_the_fast_path(context: ServiceContext) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(context.db, publisher, context.feed, sweep_grace_s=60.0)
    await relay.cycle()
    await _create(context)
    assert await relay.sweep(grace=True) == 0  # fresh: the feed owns them
    assert publisher.published == []
    await relay.cycle()
    assert len(publisher.published) == 3


async def test_rows_left_by_a_crash_are_published_at_start_up(context: ServiceContext) -> None:
    alert_id = await _create_and_resolve(context)
    context.feed.clear()  # the process that wrote them died before relaying
    publisher = FakePublisher()
    relay = OutboxRelay(context.db, publisher, context.feed, sweep_grace_s=2.0)
    await relay.cycle()
    # The dispatches were suppressed by the resolve: the sweep skips them for good.
    assert _types(publisher, alert_id) == ["alert.retracted"]
    assert await _unpublished(context) == 0


class SlowPublisher(FakePublisher):
    """Takes a while to be acknowledged, like a broker round trip under load."""

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> PublishedEnds:
        await asyncio.sleep(0.02)
        return await super().publish(messages)


async def test_a_request_goes_on_only_once_the_relay_has_its_events_published(
    context: ServiceContext,
) -> None:
    publisher = SlowPublisher()
    relay = OutboxRelay(context.db, publisher, context.feed, sweep_grace_s=2.0)
    running = asyncio.create_task(relay.run())
    try:
        alert_id = await _create(context)
        assert _types(publisher, alert_id) == ["alert.dispatch_requested"] * 3
        await _resolve(context, alert_id)
        assert _types(publisher, alert_id)[-1] == "alert.retracted"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
