"""Shared steps of the fan-out reliability tests: one operator on a loopback endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from services.db.engine import Database
from services.db.models import AuditEvent, Delivery, DeliveryAttempt
from services.messaging.broker import EmbeddedBroker
from services.runtime import Parts, Runtime
from services.settings import DEV_SIGNING_SECRETS, Settings
from tests.conftest import READER_KEY, auth, make_settings
from tests.fixtures.operator_endpoint import OperatorEndpoint
from tests.fixtures.payloads import alert_body

SECRET = DEV_SIGNING_SECRETS["turkcell"]


def one_operator_settings(
    database_url: str, bootstrap: str | None, endpoint: OperatorEndpoint, **operator: Any
) -> Settings:
    """turkcell on the loopback endpoint; the other two on the simulator (their latency
    is what "unaffected" is measured on)."""
    config = {"endpoint_url": endpoint.url, "signing_secret": SECRET, **operator}
    return make_settings(
        database_url,
        bootstrap,
        operators={"turkcell": config, "vodafone": {}, "turktelekom": {}},
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def create_alert(http: httpx.AsyncClient) -> str:
    response = await http.post("/v1/alerts", json=alert_body(), headers=auth())
    assert response.status_code == 201, response.text
    alert_id: str = response.json()["id"]
    return alert_id


async def delivery(db: Database, alert_id: str, operator: str, kind: str = "dispatch") -> Delivery:
    async with db.read() as session:
        row = (
            await session.scalars(
                select(Delivery).where(
                    Delivery.alert_id == alert_id,
                    Delivery.operator == operator,
                    Delivery.kind == kind,
                )
            )
        ).one()
    return row


async def deliveries(db: Database, operator: str) -> list[Delivery]:
    async with db.read() as session:
        return list(
            (await session.scalars(select(Delivery).where(Delivery.operator == operator))).all()
        )


async def attempts(db: Database, webhook_id: str) -> list[DeliveryAttempt]:
    async with db.read() as session:
        return list(
            (
                await session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.webhook_id == webhook_id)
                    .order_by(DeliveryAttempt.attempt)
                )
            ).all()
        )


async def audit_actions(db: Database, alert_id: str) -> list[str]:
    async with db.read() as session:
        return list(
            (
                await session.scalars(
                    select(AuditEvent.action).where(AuditEvent.alert_id == alert_id)
                )
            ).all()
        )


@dataclass
class Running:
    """A started service with its database and an HTTP client on its API."""

    service: Runtime
    db: Database
    http: httpx.AsyncClient


@asynccontextmanager
async def running(settings: Settings, parts: Parts | None = None) -> AsyncIterator[Running]:
    service = Runtime(settings, parts or Parts())
    await service.start()
    assert service.context is not None
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            yield Running(service, service.context.db, http)
    finally:
        await service.stop()


@asynccontextmanager
async def turkcell_on(
    endpoint: OperatorEndpoint, database_url: str, bootstrap: str, **operator: Any
) -> AsyncIterator[Running]:
    """The endpoint started, the service on it for turkcell; both stopped afterwards."""
    await endpoint.start()
    try:
        async with running(
            one_operator_settings(database_url, bootstrap, endpoint, **operator)
        ) as started:
            yield started
    finally:
        await endpoint.stop()


class RestartableBroker:
    """A broker of the test's own, on a fixed port, that can go away and come back empty."""

    def __init__(self) -> None:
        self.broker = EmbeddedBroker()

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def restart_empty(self) -> None:
        self.broker = EmbeddedBroker(port=self.broker.port)
        await self.broker.start()


@asynccontextmanager
async def own_broker() -> AsyncIterator[RestartableBroker]:
    broker = RestartableBroker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@asynccontextmanager
async def running_on_own_broker(
    database_url: str,
) -> AsyncIterator[tuple[RestartableBroker, Running]]:
    """The service on a broker of the test's own, which the test may stop and restart
    empty, with a quick reconciler (0.5 s sweeps, 3 s untouched) so recovery shows soon."""
    async with (
        own_broker() as broker,
        running(
            make_settings(
                database_url,
                broker.bootstrap_servers,
                reconcile_interval_s=0.5,
                reconcile_after_s=3,
            )
        ) as run,
    ):
        yield broker, run


async def delivered_everywhere(http: httpx.AsyncClient, alert_id: str) -> bool:
    state = (await http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))).json()
    return {d["status"] for d in state["deliveries"]} == {"delivered"}


async def wait_delivered_everywhere(
    http: httpx.AsyncClient, alert_id: str, timeout_s: float = 60.0
) -> None:
    await eventually(
        lambda: delivered_everywhere(http, alert_id),
        timeout_s=timeout_s,
        what=f"alert {alert_id} delivered everywhere",
    )
