"""Delivery records: the database's account of what each operator is owed and got.

Adapter workers hand every outcome to one :class:`DeliveryRecorder`, which writes
whatever has accumulated in ONE transaction (group commit) and only then tells
the worker its outcome is durable; the worker commits a Kafka offset after that,
never before. A failed write is retried with the items kept, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, update

from schemas.alerts import AlertStatus, DeliveryStatus
from services import audit
from services.db.bulk import insert_prepared, prepare_inserts
from services.db.engine import Database
from services.db.models import Alert, Base, Delivery, DeliveryAttempt, LinkTest, table_of

log = logging.getLogger(__name__)

FINAL = (
    DeliveryStatus.delivered.value,
    DeliveryStatus.failed.value,
    DeliveryStatus.suppressed.value,
)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try, for the delivery timeline."""

    webhook_id: str
    alert_id: str
    operator: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    status_code: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery ended, as the worker saw it."""

    webhook_id: str
    alert_id: str
    operator: str
    kind: str
    status: DeliveryStatus
    attempts: int
    status_code: int | None
    reason: str | None
    at: datetime
    dead_lettered: bool = False


@dataclass(frozen=True, slots=True)
class RetryNote:
    """A delivery still being retried: keeps the reconciler away and the timeline current."""

    webhook_id: str
    attempts: int
    status_code: int | None
    reason: str | None
    next_attempt_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class LinkTestOutcome:
    webhook_id: str
    operator: str
    ok: bool
    status_code: int | None
    latency_ms: float | None
    reason: str | None
    at: datetime


@dataclass
class _Pending:
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    notes: list[RetryNote] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    link_tests: list[LinkTestOutcome] = field(default_factory=list)
    audits: list[Base] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.notes or self.attempts or self.link_tests or self.audits)


_deliveries = table_of(Delivery)
_links = table_of(LinkTest)
_finish = (
    update(_deliveries)
    .where(_deliveries.c.webhook_id == bindparam("b_webhook_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered_at"),
        updated_at=bindparam("b_at"),
        next_attempt_at=None,
        dead_lettered_at=bindparam("b_dead_lettered_at"),
        confirmed_at=bindparam("b_confirmed_at"),
    )
)
_retrying = (
    update(_deliveries)
    .where(
        _deliveries.c.webhook_id == bindparam("b_webhook_id"),
        # Not notin_(): an expanding IN cannot be used with executemany.
        *(_deliveries.c.status != status for status in FINAL),
    )
    .values(
        status=DeliveryStatus.retrying.value,
        attempts=bindparam("b_attempts"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_at"),
        next_attempt_at=bindparam("b_next"),
    )
)
_link_finished = (
    update(_links)
    .where(_links.c.webhook_id == bindparam("b_webhook_id"))
    .values(
        outcome=bindparam("b_outcome"),
        status_code=bindparam("b_status_code"),
        latency_ms=bindparam("b_latency_ms"),
        reason=bindparam("b_reason"),
        finished_at=bindparam("b_at"),
    )
)


def _short(reason: str | None) -> str | None:
    return None if reason is None else reason[:200]


class DeliveryRecorder:
    """Group-commits outcomes, retry notes, attempts, link tests and audit rows."""

    def __init__(self, db: Database, max_wait_s: float = 0.002) -> None:
        self._db = db
        self._max_wait_s = max_wait_s
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- reads -------------------------------------------------------------------

    async def finished_among(self, webhook_ids: Collection[str]) -> set[str]:
        """Which of these were already handled (Kafka input is at least once)."""
        if not webhook_ids:
            return set()
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Delivery.webhook_id).where(
                    Delivery.webhook_id.in_(list(webhook_ids)), Delivery.status.in_(FINAL)
                )
            )
            return set(rows)

    async def ended_alerts(self, alert_ids: Collection[str]) -> set[str]:
        """Alerts no longer active: a replayed dispatch or update for them is suppressed."""
        if not alert_ids:
            return set()
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Alert.id).where(
                    Alert.id.in_(list(alert_ids)), Alert.status != AlertStatus.active.value
                )
            )
            return set(rows)

    async def delivered_alerts(self, operator: str, alert_ids: Collection[str]) -> set[str]:
        """Alerts this operator got a dispatch or update of (so a retraction is owed)."""
        if not alert_ids:
            return set()
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Delivery.alert_id).where(
                    Delivery.alert_id.in_(list(alert_ids)),
                    Delivery.operator == operator,
                    Delivery.kind != "retraction",
                    Delivery.status == DeliveryStatus.delivered.value,
                )
            )
            return set(rows)

    # -- writes ------------------------------------------------------------------

    async def finish(self, outcome: DeliveryOutcome, attempts: Sequence[AttemptRecord]) -> None:
        """Record a final outcome; returns once it is committed."""
        self._pending.outcomes.append(outcome)
        self._pending.attempts.extend(attempts)
        if outcome.status is DeliveryStatus.failed:
            self._pending.audits.append(_outcome_audit(outcome))
        await self._wait_durable()

    async def finish_link_test(
        self, outcome: LinkTestOutcome, attempts: Sequence[AttemptRecord]
    ) -> None:
        self._pending.link_tests.append(outcome)
        self._pending.attempts.extend(attempts)
        await self._wait_durable()

    def note_retrying(self, note: RetryNote, attempts: Sequence[AttemptRecord]) -> None:
        """Fire and forget: written with the next group commit."""
        self._pending.notes.append(note)
        self._pending.attempts.extend(attempts)
        self._wake.set()

    def note_audit(self, row: Base) -> None:
        self._pending.audits.append(row)
        self._wake.set()

    async def flush(self) -> None:
        """Write everything pending now (used at shutdown and by tests)."""
        await self._write(self._take())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._pending:
            await self.flush()

    # -- internals ---------------------------------------------------------------

    async def _wait_durable(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.waiters.append(waiter)
        self._ensure_task()
        self._wake.set()
        await asyncio.shield(waiter)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    def _take(self) -> _Pending:
        taken, self._pending = self._pending, _Pending()
        return taken

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._max_wait_s:
                await asyncio.sleep(self._max_wait_s)  # let a burst join one transaction
            batch = self._take()
            while True:
                try:
                    await self._write(batch)
                    backoff = 0.05
                    break
                except asyncio.CancelledError:
                    self._merge_back(batch)
                    raise
                except Exception as exc:  # database down: keep the items, try again
                    log.warning(
                        "recording deliveries failed; will retry",
                        extra={"error": type(exc).__name__, "retry_in_s": backoff},
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _merge_back(self, batch: _Pending) -> None:
        pending = self._pending
        pending.outcomes[:0] = batch.outcomes
        pending.notes[:0] = batch.notes
        pending.attempts[:0] = batch.attempts
        pending.link_tests[:0] = batch.link_tests
        pending.audits[:0] = batch.audits
        pending.waiters[:0] = batch.waiters

    async def _write(self, batch: _Pending) -> None:
        if not batch:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        # Every parameter is built before the unit of work: on SQLite it holds the one
        # write lock, which the API's resolves wait for.
        notes = [
            {
                "b_webhook_id": n.webhook_id,
                "b_attempts": n.attempts,
                "b_status_code": n.status_code,
                "b_error": _short(n.reason),
                "b_at": n.at,
                "b_next": n.next_attempt_at,
            }
            for n in batch.notes
        ]
        outcomes = [_finish_params(o) for o in batch.outcomes]
        link_tests = [
            {
                "b_webhook_id": t.webhook_id,
                "b_outcome": "ok" if t.ok else "failed",
                "b_status_code": t.status_code,
                "b_latency_ms": t.latency_ms,
                "b_reason": _short(t.reason),
                "b_at": t.at,
            }
            for t in batch.link_tests
        ]
        rows = prepare_inserts([*(_attempt_row(a) for a in batch.attempts), *batch.audits])
        async with self._db.write() as session:
            if notes:
                await session.execute(_retrying, notes)
            if outcomes:
                await session.execute(_finish, outcomes)
            if link_tests:
                await session.execute(_link_finished, link_tests)
            await insert_prepared(session, rows)


def _finish_params(o: DeliveryOutcome) -> dict[str, object]:
    delivered = o.status is DeliveryStatus.delivered
    return {
        "b_webhook_id": o.webhook_id,
        "b_status": o.status.value,
        "b_attempts": o.attempts,
        "b_status_code": o.status_code,
        "b_error": _short(o.reason),
        "b_delivered_at": o.at if delivered else None,
        "b_at": o.at,
        "b_dead_lettered_at": o.at if o.dead_lettered else None,
        # A retraction is confirmed by the operator's 2xx (a later `failed` receipt
        # clears it again); see services/receipts.py.
        "b_confirmed_at": o.at if delivered and o.kind == "retraction" else None,
    }


def _attempt_row(a: AttemptRecord) -> DeliveryAttempt:
    return DeliveryAttempt(
        webhook_id=a.webhook_id,
        alert_id=a.alert_id,
        operator=a.operator,
        attempt=a.attempt,
        started_at=a.started_at,
        finished_at=a.finished_at,
        outcome=a.outcome,
        status_code=a.status_code,
        reason=_short(a.reason),
    )


def _outcome_audit(o: DeliveryOutcome) -> Base:
    action = f"{o.kind}.{'dead_lettered' if o.dead_lettered else o.status.value}"
    return audit.entry(
        alert_id=o.alert_id,
        actor=f"adapter:{o.operator}",
        action=action,
        now=o.at,
        details={
            "operator": o.operator,
            "webhook_id": o.webhook_id,
            "attempts": o.attempts,
            "status_code": o.status_code,
        },
    )
