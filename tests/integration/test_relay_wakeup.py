"""A relay in another process is woken by the API's commit, not by its poll interval."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from schemas.alerts import AlertCreate
from services.context import ServiceContext
from services.db.models import OutboxEvent
from services.messaging.broker import EmbeddedBroker
from services.runtime import Parts, Runtime
from tests.conftest import make_settings
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_notify_wakes_a_separate_relay(
    database_url: str, broker: EmbeddedBroker
) -> None:
    settings = make_settings(database_url, broker.bootstrap_servers, relay_poll_interval_s=30)
    relay = Runtime(settings, Parts(api=False, relay=True, operators=[]))
    await relay.start()
    api = ServiceContext.build(settings)  # its own signal: only NOTIFY can reach the relay
    try:
        await asyncio.sleep(0.3)  # let the relay's first sweep pass and its LISTEN begin
        started = time.monotonic()
        outcome = await api.alerts.create("writer", AlertCreate.model_validate(alert_body()), None)
        published = None
        while published is None and time.monotonic() - started < 5:
            async with api.db.read() as session:
                published = await session.scalar(
                    select(OutboxEvent.published_at).where(
                        OutboxEvent.alert_id == str(outcome.alert.id)
                    )
                )
            await asyncio.sleep(0.01)
        assert published is not None
        assert time.monotonic() - started < 2, "the relay waited for its poll interval"
    finally:
        await api.close()
        await relay.stop()
