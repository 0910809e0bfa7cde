"""Link tests: a periodic signed ``test`` message per operator, through the real path.

Real alerts are rare, so a broken operator path must show up before the day it
matters. Each test is an outbox event like an alert's (relay → Kafka → that
operator's worker → signed webhook), so it exercises everything an alert would;
the worker records the outcome and latency, the operator's ``acknowledged``
receipt stamps it, and ``/metrics`` exports ``kayip_operator_link_up``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from schemas.events import LinkTestRequested
from schemas.links import LinkStatus
from services import outbox
from services.alerts import webhook_id_for
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import LinkTest
from services.outbox import PendingEvent
from services.outbox_listener import notify_in_transaction

log = logging.getLogger(__name__)


def link_key(operator: str) -> str:
    """The Kafka key (and outbox alert_id column) of an operator's link tests."""
    return f"link:{operator}"


class LinkTestScheduler:
    def __init__(
        self,
        db: Database,
        topic: str,
        intervals_s: Mapping[str, float],
        on_commit: Callable[[Sequence[PendingEvent]], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``intervals_s``: per operator; 0 turns that operator's tests off."""
        self._db = db
        self._topic = topic
        self._intervals = {op: s for op, s in intervals_s.items() if s > 0}
        self._on_commit = on_commit
        self._clock = clock

    async def run(self) -> None:
        if not self._intervals:
            # Turned off: idle rather than return, since a finished part stops the process.
            await asyncio.Event().wait()
        last = await self._last_requested()
        while True:
            now = self._clock()
            for operator, interval in self._intervals.items():
                previous = last.get(operator)
                if previous is None or now - previous >= timedelta(seconds=interval):
                    try:
                        await self.request(operator)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        log.warning(
                            "link test not requested",
                            extra={"operator": operator, "error": type(exc).__name__},
                        )
                        continue
                    last[operator] = now
            await asyncio.sleep(min(1.0, min(self._intervals.values()) / 4))

    async def request(self, operator: str) -> str:
        """Queue one link test now; returns its webhook-id."""
        now = self._clock()
        event = LinkTestRequested(event_id=uuid.uuid4(), operator=operator, occurred_at=now)
        event_id = str(event.event_id)
        webhook_id = webhook_id_for(event_id, operator)
        row = outbox.event_row(
            event_id=event_id,
            alert_id=link_key(operator),
            event_type=event.type,
            topic=self._topic,
            event=event,
            now=now,
        )
        test = LinkTest(
            operator=operator,
            event_id=event_id,
            webhook_id=webhook_id,
            requested_at=now,
            finished_at=None,
            acknowledged_at=None,
            outcome="pending",
            status_code=None,
            latency_ms=None,
            reason=None,
        )
        async with self._db.write() as session:
            await insert_all(session, [test, row])
            await notify_in_transaction(session)
        self._on_commit([PendingEvent.of(row)])
        return webhook_id

    async def _last_requested(self) -> dict[str, datetime]:
        async with self._db.read() as session:
            rows = await session.execute(
                select(LinkTest.operator, func.max(LinkTest.requested_at)).group_by(
                    LinkTest.operator
                )
            )
            return {operator: at for operator, at in rows if at is not None}


async def link_statuses(
    db: Database, operators: Sequence[str], stuck_after_s: float = 30.0
) -> list[LinkStatus]:
    """Per operator: healthy unless its latest finished test failed or a test has been
    waiting longer than ``stuck_after_s`` (a worker that is down fails no test)."""
    now = datetime.now(UTC)
    out: list[LinkStatus] = []
    async with db.read() as session:
        for operator in operators:
            tests = (
                await session.scalars(
                    select(LinkTest)
                    .where(LinkTest.operator == operator)
                    .order_by(LinkTest.requested_at.desc(), LinkTest.id.desc())
                    .limit(20)
                )
            ).all()
            finished = next((t for t in tests if t.outcome != "pending"), None)
            oldest_pending = min(
                (t.requested_at for t in tests if t.outcome == "pending"), default=None
            )
            success = await session.scalar(
                select(func.max(LinkTest.finished_at)).where(
                    LinkTest.operator == operator, LinkTest.outcome == "ok"
                )
            )
            stuck = oldest_pending is not None and (
                now - oldest_pending > timedelta(seconds=stuck_after_s)
            )
            out.append(
                LinkStatus(
                    operator=operator,
                    healthy=not stuck and (finished is None or finished.outcome == "ok"),
                    last_outcome=None if finished is None else finished.outcome,
                    last_requested_at=tests[0].requested_at if tests else None,
                    last_finished_at=None if finished is None else finished.finished_at,
                    last_latency_ms=None if finished is None else finished.latency_ms,
                    acknowledged=finished is not None and finished.acknowledged_at is not None,
                    last_success_at=success,
                )
            )
    return out
