"""Retries, timeouts, dead letters and re-drive, against a real loopback operator endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from services.messaging.broker import EmbeddedBroker
from services.messaging.kafka import make_consumer
from services.messaging.topics import Topics
from services.redrive import redrive_dead_letters
from services.runtime import Runtime
from tests.e2e.fanout_helpers import (
    SECRET,
    attempts,
    audit_actions,
    create_alert,
    delivery,
    eventually,
    one_operator_settings,
    turkcell_on,
)
from tests.fixtures.operator_endpoint import OperatorEndpoint

pytestmark = pytest.mark.asyncio


async def test_an_endpoint_failing_three_times_gets_the_alert_once_under_one_webhook_id(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, fail_next=3, fail_status=503, retry_after="0")
    async with turkcell_on(endpoint, database_url, broker.bootstrap_servers) as run:
        alert_id = await create_alert(run.http)

        async def delivered() -> bool:
            return (await delivery(run.db, alert_id, "turkcell")).status == "delivered"

        await eventually(delivered, what="turkcell delivered")
        row = await delivery(run.db, alert_id, "turkcell")
        tries = endpoint.requests_for(row.webhook_id)
        assert [h.status for h in tries] == [503, 503, 503, 200]
        assert all(h.verified for h in tries)
        assert endpoint.accepted() == [row.webhook_id]  # once, under one webhook-id
        assert row.attempts == 4
        timeline = await attempts(run.db, row.webhook_id)
        assert [a.outcome for a in timeline] == ["retriable_error"] * 3 + ["ok"]
        assert [a.attempt for a in timeline] == [1, 2, 3, 4]


async def test_a_hanging_endpoint_times_out_and_retries_while_the_others_are_not_held_up(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, hang_next=1, hang_s=30)
    async with turkcell_on(endpoint, database_url, broker.bootstrap_servers, timeout_s=3.0) as run:
        db, http = run.db, run.http
        alerts = [await create_alert(http) for _ in range(6)]
        operators = run.service.settings.operators

        async def all_delivered() -> bool:
            rows = [await delivery(db, a, op) for a in alerts for op in operators]
            return all(r.status == "delivered" for r in rows)

        await eventually(all_delivered, what="every operator delivered")
        simulated = {
            op: (await http.get(f"/simulator/operators/{op}/messages")).json()
            for op in ("vodafone", "turktelekom")
        }
        # The endpoint hangs whichever request reaches it first: usually the first
        # alert's, but the worker sends several at once, so find it by its hit.
        (hung_hit,) = [h for h in endpoint.hits if h.status == 0]
        turkcell = {a: await delivery(db, a, "turkcell") for a in alerts}
        (hung_alert,) = [a for a, row in turkcell.items() if row.webhook_id == hung_hit.webhook_id]
        tries = endpoint.requests_for(hung_hit.webhook_id)
        assert len(tries) == 2
        assert tries[0].status == 0
        assert tries[1].status == 200
        timeline = await attempts(db, hung_hit.webhook_id)
        assert timeline[0].outcome == "retriable_error"
        assert timeline[0].reason is not None
        assert "timeout" in timeline[0].reason
        # The hung request held up neither the other operators nor turkcell's next alerts:
        # everything else was accepted before the hung request's retry went out.
        retry_sent = tries[1].at
        for alert_id in alerts:
            if alert_id != hung_alert:
                assert endpoint.requests_for(turkcell[alert_id].webhook_id)[0].at < retry_sent
        for messages in simulated.values():
            assert {m["alert_id"] for m in messages} >= set(alerts)
        others = [await delivery(db, a, op) for a in alerts for op in ("vodafone", "turktelekom")]
        delivered_at = [r.delivered_at for r in others if r.delivered_at is not None]
        assert len(delivered_at) == len(others)
        assert max(delivered_at) < timeline[0].finished_at


async def test_an_endpoint_down_past_the_deadline_is_dead_lettered_then_redriven(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, down=True, fail_status=503)
    await endpoint.start()
    settings = one_operator_settings(
        database_url, broker.bootstrap_servers, endpoint, retry_deadline_s=1.0, breaker_open_s=0.2
    )
    service = Runtime(settings)
    await service.start()
    assert service.context is not None
    db = service.context.db
    topics = Topics(settings.kafka_topic_prefix)
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alert_id = await create_alert(http)

            async def failed() -> bool:
                return (await delivery(db, alert_id, "turkcell")).status == "failed"

            await eventually(failed, what="turkcell dead-lettered")
            row = await delivery(db, alert_id, "turkcell")
            assert row.dead_lettered_at is not None
            assert row.attempts >= 2
            assert "dispatch.dead_lettered" in await audit_actions(db, alert_id)
            state = (await http.get(f"/v1/alerts/{alert_id}", headers=_reader())).json()
            statuses = {(d["operator"], d["kind"]): d["status"] for d in state["deliveries"]}
            assert statuses[("turkcell", "dispatch")] == "failed"
            metrics = (await http.get("/metrics")).text
            assert 'kayip_dead_letters_total{kind="dispatch",operator="turkcell"}' in metrics
            letter = await _first_dead_letter(settings, service.bootstrap, topics.dead_letters)
            assert letter["webhook_id"] == row.webhook_id
            assert letter["alert_id"] == alert_id
            assert "sms_text" not in letter
            assert "description" not in letter

            endpoint.down = False
            result = await redrive_dead_letters(
                db,
                datetime.now(UTC),
                operator="turkcell",
                on_commit=service.context.feed.committed,
            )
            assert result.deliveries == 1

            async def delivered() -> bool:
                return (await delivery(db, alert_id, "turkcell")).status == "delivered"

            await eventually(delivered, what="re-driven delivery")
        assert endpoint.accepted() == [row.webhook_id]
        assert "dispatch.redriven" in await audit_actions(db, alert_id)
        again = await redrive_dead_letters(db, datetime.now(UTC), operator="turkcell")
        assert again.deliveries == 0  # nothing left to re-drive
    finally:
        await service.stop()
        await endpoint.stop()


def _reader() -> dict[str, str]:
    from tests.conftest import READER_KEY, auth

    return auth(READER_KEY)


async def _first_dead_letter(settings: object, bootstrap: str, topic: str) -> dict[str, object]:
    from services.settings import Settings

    assert isinstance(settings, Settings)
    consumer = make_consumer(settings, bootstrap, f"{topic}.test-reader")
    consumer.subscribe([topic])
    await consumer.start()
    try:
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    assert record.value is not None
                    letter: dict[str, object] = json.loads(record.value)
                    return letter
        raise AssertionError("no dead letter on the topic")
    finally:
        await consumer.stop()
