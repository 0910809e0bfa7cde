"""Shared fixtures: one real broker per session, a fresh database per test on each engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.messaging.broker import EmbeddedBroker, free_port
from services.settings import ApiKeyConfig, Settings, hash_api_key

PG_ADMIN_DSN = os.environ.get("KAYIP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ENGINES = ["sqlite", "postgresql"]

WRITER_KEY = "test-writer-key"
READER_KEY = "test-reader-key"
WRITE_ONLY_KEY = "test-write-only-key"


@pytest.fixture(scope="session")
async def broker() -> AsyncIterator[EmbeddedBroker]:
    embedded = EmbeddedBroker()
    await embedded.start()
    yield embedded
    await embedded.stop()


@pytest.fixture(params=ENGINES)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/kayip.db"
        return
    name = f"kayip_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def make_settings(database_url: str, bootstrap: str | None = None, **overrides: object) -> Settings:
    """Settings for one test: its own topics, port and keys; simulator on."""
    values: dict[str, object] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_enable_idempotence": False,
        "kafka_session_timeout_ms": 2000,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:10]}",
        "port": free_port(),
        "simulator_enabled": True,
        "link_test_interval_s": 0,  # tests that want link tests turn them on
        "api_keys": [
            ApiKeyConfig(
                client_id="writer",
                key_sha256=hash_api_key(WRITER_KEY),
                scopes=["alerts:write", "alerts:read"],
            ),
            ApiKeyConfig(
                client_id="reader", key_sha256=hash_api_key(READER_KEY), scopes=["alerts:read"]
            ),
            ApiKeyConfig(
                client_id="write-only",
                key_sha256=hash_api_key(WRITE_ONLY_KEY),
                scopes=["alerts:write"],
            ),
        ],
    }
    values.update(overrides)
    return Settings.model_validate(values)


def auth(key: str = WRITER_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
