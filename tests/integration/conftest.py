"""API-level fixtures: the real app and database, no broker (nothing is published)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from alert_api.app import create_app
from services.context import ServiceContext
from services.db.engine import Database
from services.db.migrate import upgrade_to_head
from tests.conftest import make_settings


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[ServiceContext]:
    settings = make_settings(database_url)
    db = Database(settings.database_url)
    await upgrade_to_head(db)
    ctx = ServiceContext.build(settings, db=db)
    yield ctx
    await ctx.close()


@pytest.fixture
async def client(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(context.settings, context)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
