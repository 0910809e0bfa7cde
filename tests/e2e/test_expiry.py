"""Expiry end to end: the housekeeping loop retracts a lapsed alert from every operator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.housekeeping import run_housekeeping
from services.messaging.broker import EmbeddedBroker
from services.runtime import Runtime
from tests.conftest import auth, make_settings
from tests.e2e.test_alert_flow import OPERATORS, _verify, _wait_for
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio
TTL_S = 2.0


@pytest.fixture
async def short_lived(database_url: str, broker: EmbeddedBroker) -> AsyncIterator[Runtime]:
    settings = make_settings(database_url, broker.bootstrap_servers, alert_ttl_hours=TTL_S / 3600)
    runtime = Runtime(settings)
    await runtime.start()
    assert runtime.context is not None
    task = asyncio.create_task(run_housekeeping(runtime.context, tick_s=0.1))
    yield runtime
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await runtime.stop()


async def test_a_lapsed_alert_is_retracted_with_reason_expired(short_lived: Runtime) -> None:
    async with httpx.AsyncClient(base_url=short_lived.base_url, timeout=10) as http:
        created = await http.post("/v1/alerts", json=alert_body(), headers=auth())
        assert created.status_code == 201, created.text
        alert_id = created.json()["id"]
        dispatched = await _wait_for(http, alert_id, "alert.dispatch")
        assert sorted(dispatched) == list(OPERATORS)

        retracted = await _wait_for(http, alert_id, "alert.retraction", timeout_s=TTL_S + 10)
        assert sorted(retracted) == list(OPERATORS)
        for operator, message in retracted.items():
            payload = _verify(short_lived, operator, message)
            assert payload["reason"] == "expired"
            assert payload["alert_version"] == 2
        alert = (await http.get(f"/v1/alerts/{alert_id}", headers=auth())).json()
        assert alert["status"] == "resolved"
        assert alert["resolution_reason"] == "expired"
        assert alert["resolved_at"] >= alert["expires_at"]
