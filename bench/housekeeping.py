"""What one housekeeping round costs as the alert history grows (issues 2 and 5).

What is measured, and why
-------------------------
``services/housekeeping.py`` runs every second in the API's process: expiry, the
late-publish repair, the retraction confirmation check and, when something was
stamped or every ``erasure_interval_s``, the search for alerts due for erasure; the
reconciler (``services/reconciler.py``) looks for stale owed deliveries every 5 s. On
SQLite its queries run on the event loop's own thread (``engine._LoopThreadConnection``),
so while a round runs no request is served, and a create or a resolve that arrives
then waits for it. A round must therefore cost what there is to do, not what there
has been: ended alerts stay in the database (erased ones as anonymous rows) for
statistics and the audit trail, so a query that reads them all grows without bound.

For each engine the script builds a history through the real service layer (no HTTP,
no broker): every alert is created, its dispatch events marked published, its
dispatches delivered, resolved, its retraction events published and its retractions
delivered and confirmed, and stamped fully retracted, as the running service leaves
them. After each history size it times each of the four jobs (best of ``--repeat``
runs, wall clock, one at a time: nothing else runs) and prints them with their ratio
to the smallest size: a job whose cost follows the history grows with it, one whose
cost follows the work stays flat. On PostgreSQL the tables are ANALYZEd after each
growth step (as autovacuum would by then): its planner chooses by statistics.

Usage::

    .venv/bin/python bench/housekeeping.py [--db sqlite|postgres|both]
        [--sizes 500,2000,5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

# The project's packages before this directory: bench/geofence.py is a script, and
# would shadow the geofence package that services import.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from e2e_latency import alert_body, machine_info, postgres_database  # noqa: E402

from schemas.alerts import (  # noqa: E402
    AlertCreate,
    AlertResolve,
    DeliveryStatus,
    ResolutionReason,
)
from services import erasure, housekeeping  # noqa: E402
from services.context import ServiceContext  # noqa: E402
from services.db.engine import Database  # noqa: E402
from services.db.migrate import upgrade_to_head  # noqa: E402
from services.db.models import Delivery, OutboxEvent  # noqa: E402
from services.reconciler import Reconciler  # noqa: E402
from services.settings import Settings  # noqa: E402

OPERATORS = ["turkcell", "vodafone", "turktelekom"]


@contextlib.asynccontextmanager
async def database_url(engine: str) -> AsyncIterator[str]:
    if engine == "postgres":
        async with postgres_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'history.db'}"


async def _publish_all(context: ServiceContext) -> None:
    """What the relay does: mark what the service just committed as published."""
    ids = [event.event_id for event in context.feed.take(100)]
    async with context.db.write() as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.event_id.in_(ids))
            .values(published_at=datetime.now(UTC))
        )


async def _deliver_all(context: ServiceContext, alert_id: str) -> None:
    """What the adapter workers record: every message delivered, retractions confirmed."""
    now = datetime.now(UTC)
    async with context.db.write() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == alert_id)
            .values(
                status=DeliveryStatus.delivered.value,
                attempts=1,
                delivered_at=now,
                confirmed_at=now,
            )
        )


async def grow(context: ServiceContext, rng: random.Random, start: int, stop: int) -> None:
    for seq in range(start, stop):
        body = AlertCreate.model_validate(alert_body(rng, seq))
        created = await context.alerts.create("bench", body, None)
        alert_id = str(created.alert.id)
        await _publish_all(context)
        await context.alerts.resolve(
            "bench", alert_id, AlertResolve(reason=ResolutionReason.found_safe)
        )
        await _publish_all(context)
        await _deliver_all(context, alert_id)
    await housekeeping.check_retractions(context.db, 30.0, datetime.now(UTC), OPERATORS)


def jobs(context: ServiceContext) -> dict[str, Callable[[], Awaitable[Any]]]:
    settings = context.settings
    return {
        "expire_due": lambda: housekeeping.expire_due(context.alerts, datetime.now(UTC)),
        "retract_late_publishes": lambda: housekeeping.retract_late_publishes(
            context.db, context.alerts, datetime.now(UTC)
        ),
        "check_retractions": lambda: housekeeping.check_retractions(
            context.db, settings.retraction_alarm_after_s, datetime.now(UTC), OPERATORS
        ),
        "erasure.due": lambda: erasure.due(
            context.db, settings.erasure_retention_days, datetime.now(UTC)
        ),
        # Every reconcile_interval_s (5 s), not every second, and inside a write
        # transaction: on SQLite it holds the write lock while it reads.
        "reconciler": Reconciler(
            context.db,
            lambda _events: None,
            settings.reconcile_after_s,
            settings.reconcile_interval_s,
        ).run_once,
    }


async def best_of(job: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await job()
        times.append(time.perf_counter() - started)
    return min(times)


async def run_engine(engine: str, sizes: list[int], repeat: int) -> dict[int, dict[str, float]]:
    figures: dict[int, dict[str, float]] = {}
    async with database_url(engine) as url:
        settings = Settings.model_validate(
            {"database_url": url, "simulator_enabled": False, "link_test_interval_s": 0}
        )
        db = Database(url)
        await upgrade_to_head(db)
        context = ServiceContext.build(settings, db=db)
        rng = random.Random(13)
        try:
            done = 0
            for size in sizes:
                started = time.perf_counter()
                await grow(context, rng, done, size)
                done = size
                if not db.is_sqlite:
                    # What autovacuum does to a database this size within a minute or
                    # so; the bench grows it faster than that, and PostgreSQL plans
                    # from statistics. SQLite plans without (the service runs no
                    # ANALYZE), so it is measured as it runs.
                    async with db.engine.connect() as connection:
                        await connection.exec_driver_sql("ANALYZE")
                print(
                    f"  {engine}: history of {size} ended alerts built "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
                figures[size] = {
                    name: await best_of(job, repeat) for name, job in jobs(context).items()
                }
        finally:
            await context.close()
    return figures


def report(engine: str, figures: dict[int, dict[str, float]]) -> None:
    sizes = sorted(figures)
    base = figures[sizes[0]]
    print(f"\n{engine}: ms per call (best of the repeats); x = ratio to {sizes[0]} alerts")
    header = "job".ljust(24) + "".join(f"{size:>18}" for size in sizes)
    print(header)
    for name in base:
        cells = []
        for size in sizes:
            value = figures[size][name] * 1000
            ratio = figures[size][name] / base[name] if base[name] else float("nan")
            cells.append(f"{value:9.2f} ({ratio:4.1f}x)")
        print(name.ljust(24) + "".join(f"{cell:>18}" for cell in cells))
    total = {size: sum(figures[size].values()) * 1000 for size in sizes}
    print(
        "round".ljust(24)
        + "".join(
            f"{total[size]:9.2f} ({total[size] / total[sizes[0]]:4.1f}x)".rjust(18)
            for size in sizes
        )
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="500,2000,5000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"machine: {machine_info()}; {platform.platform()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    results = {engine: await run_engine(engine, sizes, args.repeat) for engine in engines}
    for engine, figures in results.items():
        report(engine, figures)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
