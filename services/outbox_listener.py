"""Cross-process relay wake-up on PostgreSQL: LISTEN on the channel the API NOTIFYs.

PostgreSQL delivers a NOTIFY only when its transaction commits, which is exactly
when the relay may publish. A relay in the API's own process is fed in memory
instead (see services.outbox); the periodic sweep remains the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from services.outbox import OutboxFeed

CHANNEL = "kayip_outbox"
log = logging.getLogger(__name__)


async def notify_in_transaction(session: AsyncSession) -> None:
    """Queue a wake-up that PostgreSQL sends on commit (and drops on rollback)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def listen(database_url: str, signal: OutboxFeed) -> None:
    """Keep a LISTEN connection open; reconnect after failures. Runs until cancelled."""
    backoff = 0.1
    while True:
        try:
            connection = await asyncpg.connect(asyncpg_dsn(database_url))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox listener cannot connect", extra={"error": type(exc).__name__})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.1
        lost = asyncio.Event()

        def _wake(*_args: Any) -> None:
            signal.notify()

        def _lost(_connection: Any, lost: asyncio.Event = lost) -> None:
            lost.set()

        try:
            await connection.add_listener(CHANNEL, _wake)
            connection.add_termination_listener(_lost)
            signal.notify()  # catch up with anything committed while we were away
            await lost.wait()
        finally:
            if not connection.is_closed():
                await connection.close()
