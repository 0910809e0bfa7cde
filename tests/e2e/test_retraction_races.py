"""Retraction always wins, whatever the timing: real broker, real loopback endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.db.models import OutboxEvent
from services.messaging.broker import EmbeddedBroker
from services.runtime import Parts, Runtime
from tests.conftest import READER_KEY, auth, make_settings
from tests.e2e.fanout_helpers import (
    SECRET,
    create_alert,
    delivery,
    eventually,
    running_on_own_broker,
    turkcell_on,
    wait_delivered_everywhere,
)
from tests.fixtures.operator_endpoint import OperatorEndpoint

pytestmark = pytest.mark.asyncio
OPERATORS = ("turkcell", "turktelekom", "vodafone")


async def _messages(http: httpx.AsyncClient, operator: str, alert_id: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"/simulator/operators/{operator}/messages", params={"alert_id": alert_id}
    )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


async def _state(http: httpx.AsyncClient, alert_id: str) -> dict[str, Any]:
    state: dict[str, Any] = (
        await http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))
    ).json()
    return state


async def _resolve(http: httpx.AsyncClient, alert_id: str) -> httpx.Response:
    return await http.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
    )


async def _all_final(http: httpx.AsyncClient, alert_id: str) -> bool:
    state = await _state(http, alert_id)
    return all(d["status"] in ("delivered", "suppressed", "failed") for d in state["deliveries"])


async def test_resolved_while_still_in_the_outbox_the_operators_get_neither_alert_nor_retraction(
    database_url: str, broker: EmbeddedBroker
) -> None:
    """Rule: a dispatch still in the outbox when the retraction is decided is suppressed,
    and that operator gets no retraction either (it never had the alert)."""
    settings = make_settings(database_url, broker.bootstrap_servers)
    service = Runtime(settings, Parts(relay=False))  # nothing leaves the outbox yet
    await service.start()
    relay = Runtime(settings, Parts(api=False, operators=[], migrate=False))
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alert_id = await create_alert(http)
            assert (await _resolve(http, alert_id)).status_code == 202
            await relay.start()  # now the relay runs: it must publish nothing of the dispatch
            control = await create_alert(http)

            async def control_delivered() -> bool:
                state = await _state(http, control)
                return {d["status"] for d in state["deliveries"]} == {"delivered"}

            await eventually(control_delivered, what="a later alert to reach everyone")

            async def retraction_seen_by_all_workers() -> bool:
                return all(w.finished["suppressed"] >= 1 for w in service.workers)

            await eventually(retraction_seen_by_all_workers, what="workers to drop the retraction")
            for operator in OPERATORS:
                assert await _messages(http, operator, alert_id) == []
            state = await _state(http, alert_id)
            assert {d["status"] for d in state["deliveries"]} == {"suppressed"}
    finally:
        await relay.stop()
        await service.stop()


async def test_resolved_during_retry_backoff_the_pending_alert_is_cancelled_and_retracted(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, fail_next=1, fail_status=503, retry_after="30")
    async with turkcell_on(endpoint, database_url, broker.bootstrap_servers) as run:
        alert_id = await create_alert(run.http)

        async def in_backoff() -> bool:
            return (await delivery(run.db, alert_id, "turkcell")).status == "retrying"

        await eventually(in_backoff, what="turkcell in a 30 s backoff")
        assert (await _resolve(run.http, alert_id)).status_code == 202

        async def retracted() -> bool:
            row = await delivery(run.db, alert_id, "turkcell", "retraction")
            return row.status == "delivered"

        await eventually(retracted, what="the retraction to turkcell")
        await eventually(lambda: _all_final(run.http, alert_id), what="every delivery final")
        dispatch = await delivery(run.db, alert_id, "turkcell")
        retraction = await delivery(run.db, alert_id, "turkcell", "retraction")
        assert dispatch.status == "suppressed"  # cancelled: it can never go out later
        assert [h.status for h in endpoint.requests_for(dispatch.webhook_id)] == [503]
        assert endpoint.accepted() == [retraction.webhook_id]
        assert retraction.confirmed_at is not None


async def test_a_retraction_overtakes_a_dispatch_backlog(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, delay_s=0.5)  # drains 2 dispatches a second
    async with turkcell_on(endpoint, database_url, broker.bootstrap_servers, concurrency=1) as run:
        db, http = run.db, run.http
        backlog = [await create_alert(http) for _ in range(40)]
        target = backlog[-1]  # its dispatch is at the back of turkcell's queue

        async def published() -> bool:  # out of the outbox: queued in Kafka or later
            async with db.read() as session:
                marks = (
                    await session.scalars(
                        select(OutboxEvent.published_at).where(OutboxEvent.alert_id == target)
                    )
                ).all()
            return bool(marks) and all(marks)

        await eventually(published, what="the target's dispatches to leave the outbox")
        before = len(endpoint.accepted())
        assert before < len(backlog) - 15, "precondition: a backlog is queued"
        resolving_at = time.monotonic()
        assert (await _resolve(http, target)).status_code == 202

        async def retracted() -> bool:
            row = await delivery(db, target, "turkcell", "retraction")
            return row.status == "delivered"

        await eventually(retracted, timeout_s=30, what="the retraction to turkcell")
        retraction = await delivery(db, target, "turkcell", "retraction")
        (arrived,) = [h.at for h in endpoint.requests_for(retraction.webhook_id)]
        overtaken = [h for h in endpoint.hits if resolving_at < h.at < arrived]
        # The slot was busy with one dispatch; when it freed, the next may have started
        # before the retraction arrived. The rest of the queue did not go first.
        assert len(overtaken) <= 2, len(overtaken)
        assert len(endpoint.accepted()) < len(backlog), "the backlog was not drained first"
        await eventually(lambda: _all_final(http, target), what="target's deliveries final")
        dispatch = await delivery(db, target, "turkcell")
        assert dispatch.status == "suppressed"
        assert dispatch.webhook_id not in endpoint.accepted()


async def test_resolved_while_the_broker_is_down_the_retraction_goes_out_once_it_is_back(
    database_url: str,
) -> None:
    async with running_on_own_broker(database_url) as (broker, run):
        http = run.http
        alert_id = await create_alert(http)
        await wait_delivered_everywhere(http, alert_id, timeout_s=20)
        await broker.stop()
        assert (await _resolve(http, alert_id)).status_code == 202
        await asyncio.sleep(1.0)
        await broker.restart_empty()

        async def retracted_everywhere() -> bool:
            for operator in OPERATORS:
                kinds = [m["type"] for m in await _messages(http, operator, alert_id)]
                if "alert.retraction" not in kinds:
                    return False
            return True

        await eventually(retracted_everywhere, timeout_s=60, what="retractions after")

        async def recorded() -> bool:
            state = await _state(http, alert_id)
            retractions = [d for d in state["deliveries"] if d["kind"] == "retraction"]
            return {d["status"] for d in retractions} == {"delivered"}

        await eventually(recorded, what="the retractions recorded as delivered")


async def test_an_update_racing_a_resolve_leaves_every_operator_retracted(
    database_url: str, broker: EmbeddedBroker
) -> None:
    settings = make_settings(database_url, broker.bootstrap_servers)
    service = Runtime(settings)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alerts = [await create_alert(http) for _ in range(4)]
            for round_, alert_id in enumerate(alerts):
                if round_ % 2:  # half the races start before the dispatch is even delivered

                    async def delivered(alert_id: str = alert_id) -> bool:
                        state = await _state(http, alert_id)
                        return {d["status"] for d in state["deliveries"]} == {"delivered"}

                    await eventually(delivered, what="the first version everywhere")
                patch = http.patch(
                    f"/v1/alerts/{alert_id}",
                    json={"description": "Kırmızı montlu, mavi pantolonlu."},
                    headers=auth(),
                )
                patched, resolved = await asyncio.gather(patch, _resolve(http, alert_id))
                assert patched.status_code in (200, 409), patched.text
                assert resolved.status_code == 202, resolved.text
            for alert_id in alerts:
                await eventually(
                    lambda alert_id=alert_id: _all_final(http, alert_id),
                    what="every delivery final",
                )
            await asyncio.sleep(0.5)  # anything late would arrive now
            for alert_id in alerts:
                final = (await _state(http, alert_id))["version"]
                for operator in OPERATORS:
                    messages = await _messages(http, operator, alert_id)
                    if not messages:
                        continue  # never had it (suppressed in the outbox): nothing to withdraw
                    last = messages[-1]
                    assert last["type"] == "alert.retraction", (operator, messages)
                    assert last["alert_version"] == final
                    assert all(m["alert_version"] <= final for m in messages)
    finally:
        await service.stop()
