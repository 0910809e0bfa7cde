"""The hand-over wait: a writer waits for its events' publication, bounded, only with a relay."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.outbox import OutboxFeed, PendingEvent

pytestmark = pytest.mark.asyncio


def _events(*ids: str) -> list[PendingEvent]:
    return [PendingEvent(i, "kayip.alert-events.v1", b"alert", b"{}") for i in ids]


async def test_a_writer_waits_until_every_one_of_its_events_is_published() -> None:
    feed = OutboxFeed(handover_wait_s=5.0)
    feed.relayed()
    events = _events("a", "b")
    feed.committed(events)
    waiting = asyncio.create_task(feed.until_published(events))
    await asyncio.sleep(0.01)
    feed.published(["a"])
    await asyncio.sleep(0.01)
    assert not waiting.done()  # "b" is not on the broker yet
    feed.published(["b"])
    await asyncio.wait_for(waiting, 1.0)


async def test_the_wait_is_bounded_when_nothing_is_published() -> None:
    feed = OutboxFeed(handover_wait_s=0.05)
    feed.relayed()
    events = _events("a")
    feed.committed(events)
    started = time.monotonic()
    await feed.until_published(events)  # the broker is down: give up, keep the event
    assert 0.04 <= time.monotonic() - started < 1.0
    assert [e.event_id for e in feed.take(10)] == ["a"]
    feed.published(["a"])  # a late publication finds no waiter left behind


async def test_without_a_relay_in_the_process_nobody_waits() -> None:
    feed = OutboxFeed(handover_wait_s=5.0)
    events = _events("a")
    feed.committed(events)
    await asyncio.wait_for(feed.until_published(events), 0.5)


async def test_a_suppressed_event_releases_its_writer() -> None:
    feed = OutboxFeed(handover_wait_s=5.0)
    feed.relayed()
    events = _events("a")
    feed.committed(events)
    waiting = asyncio.create_task(feed.until_published(events))
    await asyncio.sleep(0.01)
    feed.suppress(["a"])  # a retraction cancelled it: it will never be published
    await asyncio.wait_for(waiting, 1.0)
