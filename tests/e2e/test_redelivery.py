"""Records read again after a restart are checked against the delivery records."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import update

from services.db.models import Delivery
from services.messaging.broker import EmbeddedBroker
from services.messaging.kafka import make_consumer
from services.messaging.topics import Topics, consumer_group
from services.runtime import Runtime
from services.settings import Settings
from tests.conftest import auth, make_settings
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio
OPERATORS = ("turkcell", "turktelekom", "vodafone")


async def _rewind_groups(settings: Settings, bootstrap: str) -> None:
    """Commit offset 0 for every operator group, as if nothing had been committed."""
    topics = Topics(settings.kafka_topic_prefix)
    for operator in OPERATORS:
        consumer = make_consumer(
            settings, bootstrap, consumer_group(settings.kafka_topic_prefix, operator)
        )
        consumer.subscribe([topics.alert_events, topics.retractions])
        await consumer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            await consumer.commit(dict.fromkeys(consumer.assignment(), 0))
        finally:
            await consumer.stop()


async def _received(http: httpx.AsyncClient, operator: str, alert_id: str) -> int:
    response = await http.get(
        f"/simulator/operators/{operator}/messages", params={"alert_id": alert_id}
    )
    return len(response.json())


async def test_restart_redelivers_only_what_is_still_owed(
    database_url: str, broker: EmbeddedBroker
) -> None:
    settings = make_settings(database_url, broker.bootstrap_servers)
    first = Runtime(settings)
    await first.start()
    async with httpx.AsyncClient(base_url=first.base_url) as http:
        alert_id = (await http.post("/v1/alerts", json=alert_body(), headers=auth())).json()["id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = (await http.get(f"/v1/alerts/{alert_id}", headers=auth())).json()
            if {d["status"] for d in state["deliveries"]} == {"delivered"}:
                break
            await asyncio.sleep(0.05)
    assert context_ok(state)
    assert first.context is not None
    async with first.context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == alert_id, Delivery.operator == "turkcell")
            .values(status="pending", delivered_at=None)
        )
    await first.stop()
    await _rewind_groups(settings, broker.bootstrap_servers)

    second = Runtime(settings)  # a fresh simulator: it has received nothing yet
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=second.base_url) as http:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and await _received(http, "turkcell", alert_id) == 0:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # time for any wrong re-sends to show up
            counts = {op: await _received(http, op, alert_id) for op in OPERATORS}
    finally:
        await second.stop()
    assert counts == {"turkcell": 1, "turktelekom": 0, "vodafone": 0}


def context_ok(state: dict[str, object]) -> bool:
    deliveries = state["deliveries"]
    assert isinstance(deliveries, list)
    return {d["status"] for d in deliveries} == {"delivered"}
