"""Housekeeping reads what is left to do, never the whole history; models match Alembic.

Housekeeping runs every second in the API's process, and on SQLite its queries run on
the event loop's thread: a query that reads every ended alert (or every outbox row,
payloads included) makes each round slower as the history grows, and every request
that arrives meanwhile waits (bench/housekeeping.py). SQLite's query plans show it
without timing anything: a full ``SCAN`` of a table that grows with the history, as
opposed to a ``SEARCH`` through an index.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, update
from sqlalchemy.engine import Connection

from schemas.alerts import AlertResolve, ResolutionReason
from services import erasure, housekeeping
from services.context import ServiceContext
from services.db.engine import Database
from services.db.models import Base, Delivery
from services.reconciler import Reconciler
from services.relay import OutboxRelay
from tests.fixtures.lifecycle import RecordingPublisher, create, lifecycle_context, publish_all

pytestmark = pytest.mark.asyncio
OPERATORS = ["turkcell", "turktelekom", "vodafone"]
#: Tables that grow with every alert ever sent.
HISTORY = ("alerts", "deliveries", "outbox", "audit_events", "delivery_attempts")
#: An index searched on nothing but one of these being NULL reads a part of the
#: history that only grows: nearly every outbox row is unsuppressed, every ended alert
#: stays unerased for 30 days, and every suppressed event stays unpublished for good.
MOSTLY_NULL = ("suppressed_at", "erased_at", "published_at")


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[ServiceContext]:
    async with lifecycle_context(database_url) as ctx:
        yield ctx


@pytest.fixture
async def sqlite_context(tmp_path: Path) -> AsyncIterator[ServiceContext]:
    """SQLite only: its plans are what the test reads (PostgreSQL's planner chooses by
    cost, and on a test's few rows a sequential scan is rightly the cheapest)."""
    async with lifecycle_context(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}") as ctx:
        yield ctx


async def _history(context: ServiceContext, ended: int, active: int = 1) -> None:
    """Alerts as the running service leaves them: delivered, resolved, the retraction
    confirmed, stamped, one of them ended by a consent withdrawal; and ``active``
    alerts whose dispatches are published but not delivered yet (a backlog)."""
    for n in range(ended):
        alert_id = await create(context)
        await publish_all(context, RecordingPublisher())
        reason = ResolutionReason.consent_withdrawn if n == 0 else ResolutionReason.found_safe
        await context.alerts.resolve("writer", alert_id, AlertResolve(reason=reason))
        await publish_all(context, RecordingPublisher())
        now = datetime.now(UTC)
        async with context.db.write() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.alert_id == alert_id)
                .values(status="delivered", attempts=1, delivered_at=now, confirmed_at=now)
            )
    for _ in range(active):
        await create(context)
    await publish_all(context, RecordingPublisher())
    report = await housekeeping.check_retractions(context.db, 60.0, datetime.now(UTC), OPERATORS)
    assert len(report.stamped) >= ended  # (and any a resolve job ended meanwhile)


async def _create_and_resolve(context: ServiceContext) -> None:
    """Not housekeeping, but the same rule: a resolve suppresses its own alert's
    unsent dispatches, whatever other alerts still have pending."""
    alert_id = await create(context)
    await context.alerts.resolve(
        "writer", alert_id, AlertResolve(reason=ResolutionReason.found_safe)
    )


def _jobs(context: ServiceContext) -> dict[str, Callable[[], Awaitable[Any]]]:
    now = datetime.now(UTC)
    return {
        "expire_due": lambda: housekeeping.expire_due(context.alerts, now),
        "retract_late_publishes": lambda: housekeeping.retract_late_publishes(
            context.db, context.alerts, now
        ),
        "check_retractions": lambda: housekeeping.check_retractions(
            context.db, 60.0, now, OPERATORS
        ),
        "erasure.due": lambda: erasure.due(context.db, 30.0, now),
        "reconciler": Reconciler(context.db, lambda _events: None, 30.0, 5.0).run_once,
        "a resolve": lambda: _create_and_resolve(context),
        "relay sweep": lambda: OutboxRelay(
            context.db, RecordingPublisher(), context.feed, sweep_grace_s=2.0
        ).sweep(grace=True),
    }


def _sqlite_file(db: Database) -> str:
    assert db.is_sqlite
    return db.url.split("///", 1)[1]


async def _one_round(context: ServiceContext) -> list[tuple[str, str, Any]]:
    """Run every job once; return (job, SQL, parameters) of each query and update it
    ran (inserts add rows, they read none)."""
    statements: list[tuple[str, str, Any]] = []
    current = [""]

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((current[0], statement, parameters))

    event.listen(context.db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        for name, job in _jobs(context).items():
            current[0] = name
            await job()
    finally:
        event.remove(context.db.engine.sync_engine, "before_cursor_execute", capture)
    return [
        (job, statement, parameters)
        for job, statement, parameters in statements
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
    ]


async def test_every_housekeeping_query_searches_an_index(
    sqlite_context: ServiceContext,
) -> None:
    context = sqlite_context
    await _history(context, ended=4)
    statements = await _one_round(context)
    assert {job for job, _, _ in statements} == set(_jobs(context))
    raw = sqlite3.connect(_sqlite_file(context.db))
    full_scans = []
    try:
        for job, statement, parameters in statements:
            plan = raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            for step in (row[3] for row in plan):
                scan = re.match(r"SCAN (\w+)", step)
                null_only = re.search(r"USING INDEX \w+ \((\w+)=\?\)$", step)
                if (scan and scan.group(1) in HISTORY) or (
                    null_only and null_only.group(1) in MOSTLY_NULL
                ):
                    full_scans.append(f"{job}: {step} in {statement[:120]}")
    finally:
        raw.close()
    assert full_scans == []


async def _steps_per_job(context: ServiceContext) -> dict[str, int]:
    """SQLite virtual-machine steps each job's statements take (a measure of the rows
    read that no machine's speed changes): captured from one round, replayed on a
    connection of our own, writes rolled back."""
    statements = await _one_round(context)
    steps = dict.fromkeys(_jobs(context), 0)
    raw = sqlite3.connect(_sqlite_file(context.db), isolation_level=None)
    try:
        for job, statement, parameters in statements:
            ticks = [0]

            def tick(ticks: list[int] = ticks) -> int:
                ticks[0] += 1
                return 0

            raw.set_progress_handler(tick, 10)
            raw.execute("BEGIN")
            raw.execute(statement, parameters).fetchall()
            raw.execute("ROLLBACK")
            raw.set_progress_handler(None, 0)
            steps[job] += ticks[0] * 10
    finally:
        raw.close()
    return steps


async def test_a_housekeeping_round_does_not_grow_with_the_history(
    sqlite_context: ServiceContext,
) -> None:
    """Five times the ended alerts, about the same work: each job reads what is left
    to do. A job that reads the history grows with it (4-5 times here)."""
    context = sqlite_context
    await _history(context, ended=4)
    small = await _steps_per_job(context)
    await _history(context, ended=16)
    large = await _steps_per_job(context)
    grown = {job: (small[job], large[job]) for job in small if large[job] > 1.5 * small[job] + 300}
    assert grown == {}


async def test_a_resolve_reads_its_own_alert_not_every_pending_delivery(
    sqlite_context: ServiceContext,
) -> None:
    """A resolve suppresses its alert's unsent dispatches; with 40 times as many other
    alerts' dispatches pending (a backlog), its work stays the same. With an index on
    the alert id alone, SQLite took the (status, kind) index for it and read them all."""
    context = sqlite_context
    await _history(context, ended=2, active=1)
    small = (await _steps_per_job(context))["a resolve"]
    await _history(context, ended=0, active=40)
    large = (await _steps_per_job(context))["a resolve"]
    assert large <= 1.5 * small + 300, (small, large)


async def test_erasure_due_finds_retention_and_withdrawals_oldest_first(
    context: ServiceContext,
) -> None:
    """The rewritten search (two index reads instead of one OR) finds what it did."""
    await _history(context, ended=3)
    now = datetime.now(UTC)
    # Nothing past 30 days yet: only the withdrawal (fully retracted) is due.
    due = await erasure.due(context.db, 30.0, now)
    assert [cause for _, cause in due] == [ResolutionReason.consent_withdrawn.value]
    # With no retention everything ended is due, the withdrawal counted as retention
    # (its end is past the cut-off too), oldest end first; the active alert is not.
    later = now + timedelta(seconds=1)
    everything = await erasure.due(context.db, 0.0, later)
    assert len(everything) == 3
    assert {cause for _, cause in everything} == {"retention"}
    assert everything[0][0] == due[0][0]  # the withdrawal was the first to end
    assert len(await erasure.due(context.db, 0.0, later, limit=2)) == 2


async def test_the_models_and_the_migrations_describe_the_same_schema(
    context: ServiceContext,
) -> None:
    """An index (or column) added to a model without a migration, or the reverse, shows
    here: the service builds its schema only through Alembic."""

    def differences(connection: Connection) -> list[Any]:
        migration = MigrationContext.configure(connection)
        return list(compare_metadata(migration, Base.metadata))

    async with context.db.engine.connect() as connection:
        diff = await connection.run_sync(differences)
    assert [d for d in diff if d[0] in ("add_index", "remove_index")] == []
