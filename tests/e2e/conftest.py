"""The whole service running in-process as ``serve`` runs it: API, relay, adapters, simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.messaging.broker import EmbeddedBroker
from services.runtime import Runtime
from tests.conftest import make_settings


@pytest.fixture
async def service(database_url: str, broker: EmbeddedBroker) -> AsyncIterator[Runtime]:
    runtime = Runtime(make_settings(database_url, broker.bootstrap_servers))
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
async def http(service: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        yield client
