"""Nothing is lost when a worker is killed, the broker goes away, or the group scales out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from services.db.models import OutboxEvent
from services.messaging.broker import EmbeddedBroker
from services.runtime import Parts, Runtime
from services.settings import Settings
from tests.conftest import READER_KEY, auth, make_settings
from tests.e2e.fanout_helpers import (
    SECRET,
    create_alert,
    deliveries,
    delivery,
    eventually,
    running_on_own_broker,
    wait_delivered_everywhere,
)
from tests.fixtures.operator_endpoint import OperatorEndpoint

pytestmark = pytest.mark.asyncio
OPERATORS = ("turkcell", "turktelekom", "vodafone")


def _only_turkcell(
    database_url: str, bootstrap: str, endpoint: OperatorEndpoint, **overrides: object
) -> Settings:
    operator = {"endpoint_url": endpoint.url, "signing_secret": SECRET, "concurrency": 4}
    return make_settings(database_url, bootstrap, operators={"turkcell": operator}, **overrides)


def _adapter_process(settings: Settings) -> subprocess.Popen[bytes]:
    """``kayip-alarm adapter --operator turkcell`` as its own OS process."""
    env = {
        **os.environ,
        "KAYIP_DATABASE_URL": settings.database_url,
        "KAYIP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "KAYIP_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "KAYIP_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAYIP_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAYIP_SIMULATOR_ENABLED": "false",
        "KAYIP_LINK_TEST_INTERVAL_S": "0",
        "KAYIP_LOG_LEVEL": "WARNING",
        "KAYIP_OPERATORS": json.dumps(
            {
                name: {
                    "endpoint_url": op.endpoint_url,
                    "signing_secret": SECRET,
                    "concurrency": op.concurrency,
                }
                for name, op in settings.operators.items()
            }
        ),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "adapter", "--operator", "turkcell"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _interrupted_mid_batch(
    database_url: str,
    broker: EmbeddedBroker,
    interrupt: signal.Signals,
) -> tuple[int, set[str], Counter[str]]:
    """40 alerts through a separate turkcell adapter process, ``interrupt`` sent to it
    mid-way, a fresh process until all are delivered. Returns the interrupted process's
    exit code, the webhook ids owed and how often the endpoint accepted each."""
    endpoint = OperatorEndpoint(SECRET, delay_s=0.2)
    await endpoint.start()
    settings = _only_turkcell(database_url, broker.bootstrap_servers, endpoint)
    service = Runtime(settings, Parts(operators=[]))
    await service.start()
    assert service.context is not None
    db = service.context.db
    worker = _adapter_process(settings)
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alerts = [await create_alert(http) for _ in range(40)]

            async def some_accepted() -> bool:
                return len(endpoint.accepted()) >= 8

            await eventually(some_accepted, timeout_s=60, what="the worker to start delivering")
            worker.send_signal(interrupt)
            code = await asyncio.to_thread(worker.wait, 20)  # the endpoint keeps answering
            assert len(set(endpoint.accepted())) < len(alerts), "it must land mid-way"
            worker = _adapter_process(settings)

            async def all_delivered() -> bool:
                rows = await deliveries(db, "turkcell")
                return len(rows) == len(alerts) and all(r.status == "delivered" for r in rows)

            await eventually(all_delivered, timeout_s=90, what="every delivery after restart")
        expected = {(await delivery(db, a, "turkcell")).webhook_id for a in alerts}
        assert all(h.verified for h in endpoint.hits)
        return code, expected, Counter(endpoint.accepted())
    finally:
        worker.kill()
        worker.wait(10)
        await service.stop()
        await endpoint.stop()


async def test_a_worker_killed_mid_batch_loses_nothing(
    database_url: str, broker: EmbeddedBroker
) -> None:
    _, expected, sent = await _interrupted_mid_batch(database_url, broker, signal.SIGKILL)
    assert set(sent) == expected


async def test_sigterm_stops_a_worker_in_order_and_nothing_is_sent_twice(
    database_url: str, broker: EmbeddedBroker
) -> None:
    """An orchestrator's stop is SIGTERM: webhooks on the wire are answered and recorded,
    offsets committed, the process exits 0, and its successor sends none of them again:
    every webhook reaches the operator exactly once."""
    code, expected, sent = await _interrupted_mid_batch(database_url, broker, signal.SIGTERM)
    assert code == 0
    assert set(sent) == expected
    assert max(sent.values()) == 1, "a webhook went out twice"


async def _dispatches_received(http: httpx.AsyncClient, alert_id: str) -> dict[str, int]:
    counts = {}
    for operator in OPERATORS:
        messages = (
            await http.get(
                f"/simulator/operators/{operator}/messages", params={"alert_id": alert_id}
            )
        ).json()
        counts[operator] = sum(1 for m in messages if m["type"] == "alert.dispatch")
    return counts


async def test_alerts_accepted_while_the_broker_is_down_are_delivered_once_it_is_back(
    database_url: str,
) -> None:
    async with running_on_own_broker(database_url) as (broker, run):
        http = run.http
        before = await create_alert(http)
        await wait_delivered_everywhere(http, before)
        await broker.stop()
        during = [await create_alert(http) for _ in range(3)]  # 201 with the broker down
        await asyncio.sleep(1.0)
        await broker.restart_empty()
        for alert_id in during:
            await wait_delivered_everywhere(http, alert_id)
        await asyncio.sleep(1.0)  # time for any duplicate to show up
        for alert_id in during:
            assert await _dispatches_received(http, alert_id) == dict.fromkeys(OPERATORS, 1)


async def test_messages_lost_with_an_emptied_broker_are_republished_by_the_reconciler(
    database_url: str,
) -> None:
    broker = EmbeddedBroker()
    await broker.start()
    settings = make_settings(
        database_url, broker.bootstrap_servers, reconcile_interval_s=0.5, reconcile_after_s=2
    )
    service = Runtime(settings, Parts(operators=[]))  # API and relay; no worker consumes yet
    await service.start()
    assert service.context is not None
    db = service.context.db
    workers = Runtime(settings, Parts(api=False, relay=False, migrate=False))
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alerts = [await create_alert(http) for _ in range(3)]

            async def published() -> bool:
                async with db.read() as session:
                    rows = (await session.scalars(select(OutboxEvent.published_at))).all()
                return len(rows) == 3 * len(OPERATORS) and all(rows)

            await eventually(published, what="the relay to publish")
            await broker.stop()  # published, never consumed, and now gone
            broker = EmbeddedBroker(port=broker.port)
            await broker.start()
            await workers.start()
            for alert_id in alerts:
                await wait_delivered_everywhere(http, alert_id)
            await asyncio.sleep(1.0)
            for alert_id in alerts:
                assert await _dispatches_received(http, alert_id) == dict.fromkeys(OPERATORS, 1)
            metrics = (await http.get("/metrics")).text
            assert 'kayip_reconciled_total{kind="dispatch"}' in metrics
    finally:
        await workers.stop()
        await service.stop()
        await broker.stop()


async def test_two_workers_in_one_group_share_the_partitions_and_deliver_each_alert_once(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET)
    await endpoint.start()
    settings = _only_turkcell(database_url, broker.bootstrap_servers, endpoint)
    service = Runtime(settings, Parts(operators=[]))
    first = Runtime(settings, Parts(api=False, relay=False, migrate=False))
    second = Runtime(settings, Parts(api=False, relay=False, migrate=False))
    await service.start()
    assert service.context is not None
    db = service.context.db
    await first.start()
    await second.start()
    try:
        (one,), (two,) = first.workers, second.workers

        async def balanced() -> bool:
            a, b = one.assignment(), two.assignment()
            return bool(a) and bool(b) and not (a & b) and len(a | b) == 2 * 6

        await eventually(balanced, timeout_s=60, what="the group to split the partitions")
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            alerts = [await create_alert(http) for _ in range(30)]

            async def all_delivered() -> bool:
                rows = await deliveries(db, "turkcell")
                return len(rows) == len(alerts) and all(r.status == "delivered" for r in rows)

            await eventually(all_delivered, timeout_s=60, what="every delivery")
        assert Counter(endpoint.accepted()).most_common(1)[0][1] == 1  # each exactly once
        assert len(set(endpoint.accepted())) == len(alerts)
        assert one.finished["delivered"] > 0
        assert two.finished["delivered"] > 0
        assert one.finished["delivered"] + two.finished["delivered"] == len(alerts)
    finally:
        await second.stop()
        await first.stop()
        await service.stop()
        await endpoint.stop()


async def test_a_failing_link_test_shows_at_once_and_recovers(
    database_url: str, broker: EmbeddedBroker
) -> None:
    endpoint = OperatorEndpoint(SECRET, down=True)
    await endpoint.start()
    operator = {
        "endpoint_url": endpoint.url,
        "signing_secret": SECRET,
        "link_test_interval_s": 0.3,
        "retry_deadline_s": 0.5,
        "breaker_open_s": 0.1,
    }
    settings = make_settings(
        database_url, broker.bootstrap_servers, operators={"turkcell": operator}
    )
    service = Runtime(settings)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:

            async def link(healthy: bool) -> bool:
                response = await http.get("/v1/operators/links", headers=auth(READER_KEY))
                assert response.status_code == 200
                (status,) = response.json()
                finished = status["last_outcome"] in ("ok", "failed")
                return finished and status["healthy"] is healthy

            await eventually(lambda: link(False), what="the failing link to show")
            metrics = (await http.get("/metrics")).text
            assert 'kayip_operator_link_up{operator="turkcell"} 0.0' in metrics
            endpoint.down = False
            await eventually(lambda: link(True), what="the link to recover")
            (status,) = (await http.get("/v1/operators/links", headers=auth(READER_KEY))).json()
            assert status["last_outcome"] == "ok"
            assert status["last_latency_ms"] is not None
            metrics = (await http.get("/metrics")).text
            assert 'kayip_operator_link_up{operator="turkcell"} 1.0' in metrics
        assert any(h.status == 200 and h.verified for h in endpoint.hits)
    finally:
        await service.stop()
        await endpoint.stop()


async def test_the_service_keeps_running_with_link_tests_turned_off(
    database_url: str, broker: EmbeddedBroker
) -> None:
    """A part that has nothing to do must idle: any finished part stops the process."""
    settings = make_settings(database_url, broker.bootstrap_servers, link_test_interval_s=0)
    service = Runtime(settings)
    await service.start()
    try:
        stopped = asyncio.create_task(service.wait())
        done, _ = await asyncio.wait([stopped], timeout=2.0)
        assert not done, "a service part finished on its own"
        stopped.cancel()
    finally:
        await service.stop()
