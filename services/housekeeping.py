"""Housekeeping: the lifecycle work no request triggers.

Each job is a plain function of the database (or the alert service), settings values
and ``now``, returning what it did, so tests call it with the clock they need:
- ``expire_due``: ends alerts past ``expires_at`` with reason ``expired`` (the resolve path);
- ``retract_late_publishes``: retracts from operators a suppressed message reached after
  all (the relay had taken it a moment before the suppression);
- ``check_retractions``: stamps ``alerts.fully_retracted_at`` when every operator owed the
  final retraction confirmed it (and clears it if a failed receipt undid a confirmation),
  and flags each operator still unconfirmed after ``retraction_alarm_after_s`` with a
  metric and one audit event per alert and operator;
- ``erasure.erase_due``: KVKK erasure after retention, or on confirmed consent withdrawal.

``run_housekeeping`` loops them: every second, erasure every ``erasure_interval_s`` (and
at once when a retraction became fully confirmed, for consent withdrawals). It logs
counts and ids only. Running it in several processes is safe: every change re-checks
its condition under the alert's lock (the alarm's once-only audit may, rarely, be
written twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.alerts import AlertStatus, DeliveryStatus
from services import audit, erasure, lifecycle
from services.alerts import AlertService
from services.context import ServiceContext
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Alert, AuditEvent, Delivery, OutboxEvent, table_of
from services.metrics import RETRACTION_ALARMS, RETRACTIONS_OVERDUE

log = logging.getLogger(__name__)

TICK_S = 1.0
ALARM_ACTION = "retraction.unconfirmed"
#: How long after a suppression a late publish is looked for. The relay marks an event
#: published milliseconds after taking it; a day also covers a crash before the mark.
LATE_PUBLISH_WINDOW = timedelta(days=1)
#: Delivery states that are neither delivered nor suppressed (never sent on purpose).
_NOT_DELIVERED = [
    s.value
    for s in DeliveryStatus
    if s not in (DeliveryStatus.delivered, DeliveryStatus.suppressed)
]


async def expire_due(alerts: AlertService, now: datetime, limit: int = 100) -> list[str]:
    """End every due alert; returns the ids ended."""
    return [a for a in await alerts.expirable(now, limit) if await alerts.expire(a, now)]


async def retract_late_publishes(
    db: Database, alerts: AlertService, now: datetime
) -> dict[str, list[str]]:
    """Alert id -> operators retracted because a suppressed message went out anyway."""
    worker_touched = or_(
        Delivery.attempts > 0,
        Delivery.status.not_in([DeliveryStatus.pending.value, DeliveryStatus.suppressed.value]),
    )
    # No DISTINCT (deduplicated below): with it the planner read the outbox in alert
    # order, all of it, instead of the day's suppressions from their index.
    query = (
        select(OutboxEvent.alert_id)
        .outerjoin(
            Delivery,
            # By alert first: deliveries have an index on it, not on the event id.
            and_(
                Delivery.alert_id == OutboxEvent.alert_id, Delivery.event_id == OutboxEvent.event_id
            ),
        )
        .where(
            OutboxEvent.suppressed_at.is_not(None),  # the partial index's condition
            OutboxEvent.suppressed_at >= now - LATE_PUBLISH_WINDOW,
            OutboxEvent.event_type.in_(lifecycle.CONTENT_EVENT_TYPES),
            or_(OutboxEvent.published_at.is_not(None), worker_touched),
        )
    )
    async with db.read() as session:
        candidates = list(dict.fromkeys(await session.scalars(query)))
    done: dict[str, list[str]] = {}
    for alert_id in candidates:
        operators = await alerts.retract_late_publishes(alert_id, now)
        if operators:
            done[alert_id] = operators
    return done


@dataclass
class RetractionCheck:
    """What one confirmation check found and did."""

    #: Alerts now fully retracted (their stamp was written).
    stamped: list[str] = field(default_factory=list)
    #: Alerts whose stamp was cleared: a failed receipt undid a confirmation.
    unstamped: list[str] = field(default_factory=list)
    #: (alert id, operator) pairs flagged for the first time.
    alarmed: list[tuple[str, str]] = field(default_factory=list)
    #: Operator -> retractions unconfirmed past the alarm time, right now.
    overdue: dict[str, int] = field(default_factory=dict)


async def check_retractions(
    db: Database, alarm_after_s: float, now: datetime, operators: Sequence[str]
) -> RetractionCheck:
    report = RetractionCheck()
    # Unconfirmed: not delivered (nor suppressed), or delivered without confirmation;
    # only the final retraction (the alert's version) of an ended alert counts. Two
    # queries, each an index range of deliveries (status, kind, confirmed_at), not one
    # OR over every retraction ever sent; the alert's status and version are compared
    # here, not in SQL, where the planner then read every ended alert first.
    columns = (
        Delivery.alert_id,
        Delivery.operator,
        Delivery.accepted_at,
        Delivery.alert_version,
        Alert.version,
        Alert.status,
    )
    not_delivered = select(*columns).where(
        Delivery.status.in_(_NOT_DELIVERED), Delivery.kind == lifecycle.RETRACTION
    )
    unacknowledged = select(*columns).where(
        Delivery.status == DeliveryStatus.delivered.value,
        Delivery.kind == lifecycle.RETRACTION,
        Delivery.confirmed_at.is_(None),
    )
    async with db.read() as session:
        unconfirmed = [
            (alert_id, operator, accepted)
            for query in (not_delivered, unacknowledged)
            for alert_id, operator, accepted, of_version, version, status in (
                await session.execute(query.join(Alert, Alert.id == Delivery.alert_id))
            ).all()
            if of_version == version and status == AlertStatus.resolved.value
        ]
        pending_alerts = {alert_id for alert_id, _, _ in unconfirmed}
        unstamped = list(
            await session.scalars(
                select(Alert.id).where(
                    Alert.status == AlertStatus.resolved.value,
                    Alert.fully_retracted_at.is_(None),
                )
            )
        )
        to_stamp = [a for a in unstamped if a not in pending_alerts]
        stamps = await _stamps(session, to_stamp)
        stale = await _stamped_among(session, pending_alerts)
        cutoff = now - timedelta(seconds=alarm_after_s)
        overdue = [(a, o) for a, o, accepted in unconfirmed if accepted <= cutoff]
        already = await _alarmed(session, {a for a, _ in overdue})
    fresh = sorted({pair for pair in overdue if pair not in already})
    if stamps or stale or fresh:
        await _write_check(db, stamps, stale, fresh, alarm_after_s, now, report)
    report.alarmed = fresh
    counts = Counter(operator for _, operator in overdue)
    report.overdue = {operator: counts.get(operator, 0) for operator in operators}
    for operator, count in report.overdue.items():
        RETRACTIONS_OVERDUE.labels(operator).set(count)
    for _, operator in fresh:
        RETRACTION_ALARMS.labels(operator).inc()
    return report


_alerts = table_of(Alert)
#: Core, with bind parameters, so one executemany stamps every alert of a check.
_stamp = (
    update(_alerts)
    .where(_alerts.c.id == bindparam("b_id"), _alerts.c.fully_retracted_at.is_(None))
    .values(fully_retracted_at=bindparam("b_at"))
)


async def _write_check(
    db: Database,
    stamps: dict[str, datetime],
    stale: list[str],
    fresh: list[tuple[str, str]],
    alarm_after_s: float,
    now: datetime,
    report: RetractionCheck,
) -> None:
    async with db.write() as session:
        if stamps:
            # One statement for all of them, not one each: this unit of work holds the
            # write lock, and a resolve waits for it (a hundred alerts stamped one
            # statement at a time held it 17-23 ms, bench/RESULTS.md "Session 10").
            unstamped = set(
                await session.scalars(
                    select(Alert.id).where(
                        Alert.id.in_(list(stamps)), Alert.fully_retracted_at.is_(None)
                    )
                )
            )
            todo = [(alert_id, at) for alert_id, at in stamps.items() if alert_id in unstamped]
            if todo:
                await session.execute(
                    _stamp, [{"b_id": alert_id, "b_at": at} for alert_id, at in todo]
                )
            report.stamped.extend(alert_id for alert_id, _ in todo)
        if stale:
            await session.execute(
                update(Alert)
                .where(Alert.id.in_(stale))
                .values(fully_retracted_at=None)
                .execution_options(synchronize_session=False)
            )
            report.unstamped = stale
        await insert_all(
            session,
            [
                audit.entry(
                    alert_id=alert_id,
                    actor="housekeeping",
                    action=ALARM_ACTION,
                    now=now,
                    details={"operator": operator, "after_s": alarm_after_s},
                )
                for alert_id, operator in fresh
            ],
        )


async def _stamps(session: AsyncSession, alert_ids: list[str]) -> dict[str, datetime]:
    """When each of these (fully confirmed) alerts became fully retracted."""
    if not alert_ids:
        return {}
    rows = await session.execute(
        select(Alert.id, Alert.resolved_at, func.max(Delivery.confirmed_at))
        .outerjoin(
            Delivery,
            and_(
                Delivery.alert_id == Alert.id,
                Delivery.alert_version == Alert.version,
                Delivery.kind == lifecycle.RETRACTION,
                Delivery.status != DeliveryStatus.suppressed.value,
            ),
        )
        .where(Alert.id.in_(alert_ids))
        .group_by(Alert.id, Alert.resolved_at)
    )
    stamps: dict[str, datetime] = {}
    for alert_id, resolved_at, confirmed in rows:
        at = lifecycle.fully_retracted_time([_aware(confirmed)], resolved_at)
        if at is not None:
            stamps[alert_id] = at
    return stamps


def _aware(value: datetime | None) -> datetime | None:
    """An aggregate bypasses the column type: SQLite returns naive UTC (or a string)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _stamped_among(session: AsyncSession, alert_ids: set[str]) -> list[str]:
    if not alert_ids:
        return []
    rows = await session.scalars(
        select(Alert.id).where(Alert.fully_retracted_at.is_not(None), Alert.id.in_(alert_ids))
    )
    return list(rows)


async def _alarmed(session: AsyncSession, alert_ids: set[str]) -> set[tuple[str, str]]:
    if not alert_ids:
        return set()
    rows = await session.execute(
        select(AuditEvent.alert_id, AuditEvent.details).where(
            AuditEvent.action == ALARM_ACTION, AuditEvent.alert_id.in_(alert_ids)
        )
    )
    return {(alert_id, str(details.get("operator"))) for alert_id, details in rows}


async def run_housekeeping(context: ServiceContext, tick_s: float = TICK_S) -> None:
    """Run the jobs until cancelled; a failed round is logged and retried next tick."""
    settings = context.settings
    operators = sorted(settings.enabled_operators)
    next_erasure = 0.0
    while True:
        now = datetime.now(UTC)
        try:
            expired = await expire_due(context.alerts, now)
            late = await retract_late_publishes(context.db, context.alerts, now)
            check = await check_retractions(
                context.db, settings.retraction_alarm_after_s, now, operators
            )
            erased: list[erasure.Erased] = []
            if check.stamped or time.monotonic() >= next_erasure:
                next_erasure = time.monotonic() + settings.erasure_interval_s
                erased = await erasure.erase_due(context.db, settings.erasure_retention_days, now)
            if expired or late or check.stamped or check.unstamped or check.alarmed or erased:
                log.info(
                    "housekeeping",
                    extra={
                        "expired": len(expired),
                        "late_publish_retractions": sum(len(o) for o in late.values()),
                        "fully_retracted": len(check.stamped),
                        "unstamped": len(check.unstamped),
                        "alarms": [f"{a}:{o}" for a, o in check.alarmed],
                        "erased": len(erased),
                    },
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: try again next tick
            log.warning("housekeeping round failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(tick_s)
