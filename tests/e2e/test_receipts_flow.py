"""The full loop on real parts: alert → broker → adapters → simulator, and the
simulator's signed receipts back → the API → the delivery timeline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from operator_adapters.registry import build_adapter, discover
from schemas.events import LinkTestRequested
from services.alerts import webhook_id_for
from services.db.models import LinkTest
from services.runtime import Runtime
from tests.conftest import READER_KEY, auth
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio
OPERATORS = ["turkcell", "turktelekom", "vodafone"]


async def _timeline_until(
    http: httpx.AsyncClient,
    alert_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Poll the timeline until ``done`` holds; the deadline only bounds a failure."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await http.get(f"/v1/alerts/{alert_id}/delivery", headers=auth(READER_KEY))
        assert response.status_code == 200, response.text
        timeline: dict[str, Any] = response.json()
        if done(timeline) or time.monotonic() > deadline:
            return timeline
        await asyncio.sleep(0.05)


def _messages(timeline: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        o["operator"]: m for o in timeline["operators"] for m in o["messages"] if m["kind"] == kind
    }


async def test_simulator_receipts_reach_the_timeline(
    service: Runtime, http: httpx.AsyncClient
) -> None:
    created = await http.post("/v1/alerts", json=alert_body(), headers=auth())
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]

    def reported_delivered(timeline: dict[str, Any]) -> bool:
        dispatches = _messages(timeline, "dispatch")
        return len(dispatches) == 3 and all(
            m["status"] == "delivered" and m["receipt_status"] == "delivered"
            for m in dispatches.values()
        )

    timeline = await _timeline_until(http, alert_id, reported_delivered)
    dispatches = _messages(timeline, "dispatch")
    assert {op: m["receipt_status"] for op, m in dispatches.items()} == dict.fromkeys(
        OPERATORS, "delivered"
    )
    assert all(m["recipients"] and m["recipients"] >= 5000 for m in dispatches.values())
    for operator in timeline["operators"]:
        receipts = [e["receipt_status"] for e in operator["timeline"] if e["event"] == "receipt"]
        assert receipts == ["accepted", "delivered"], operator["operator"]
        assert operator["totals"]["recipients"] == dispatches[operator["operator"]]["recipients"]
    assert timeline["totals"]["recipients"] == sum(m["recipients"] for m in dispatches.values())
    assert timeline["totals"]["delivered"] == 3

    resolved = await http.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    assert resolved.status_code == 202

    def retracted(timeline: dict[str, Any]) -> bool:
        retractions = _messages(timeline, "retraction")
        return len(retractions) == 3 and all(
            m["receipt_status"] == "retracted" for m in retractions.values()
        )

    timeline = await _timeline_until(http, alert_id, retracted)
    retractions = _messages(timeline, "retraction")
    assert {op: m["receipt_status"] for op, m in retractions.items()} == dict.fromkeys(
        OPERATORS, "retracted"
    )
    assert all(m["confirmed_at"] for m in retractions.values())
    assert timeline["totals"]["messages"] == 6
    assert timeline["totals"]["receipts"] == 9


async def test_simulator_acknowledges_a_link_test_in_every_format(service: Runtime) -> None:
    """Each adapter's own test message goes to the simulator, which acknowledges it."""
    assert service.context is not None
    db = service.context.db
    available = discover()
    webhooks: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        for operator in OPERATORS:
            event = LinkTestRequested(
                event_id=uuid.uuid4(), operator=operator, occurred_at=datetime.now(UTC)
            )
            webhook = webhook_id_for(str(event.event_id), operator)
            webhooks[operator] = webhook
            async with db.write() as session:
                session.add(
                    LinkTest(
                        operator=operator,
                        event_id=str(event.event_id),
                        webhook_id=webhook,
                        requested_at=event.occurred_at,
                        outcome="pending",
                    )
                )
            config = service.settings.operators[operator].model_copy(
                update={
                    "endpoint_url": f"{service.base_url}/simulator/operators/{operator}/webhooks"
                }
            )
            adapter = build_adapter(operator, config, client, available)
            await adapter.deliver(webhook, adapter.render_link_test(event))

    deadline = time.monotonic() + 10
    while True:
        async with db.read() as session:
            rows = list(
                await session.scalars(
                    select(LinkTest).where(LinkTest.webhook_id.in_(list(webhooks.values())))
                )
            )
        acknowledged = {r.operator for r in rows if r.acknowledged_at is not None}
        if acknowledged == set(OPERATORS) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert acknowledged == set(OPERATORS)
