"""One operator's consumer: read alert events, deliver through the adapter, record, commit.

Offsets are committed only after the outcome is recorded in the database, so a
crash re-reads the batch; the stable webhook-id and the delivery record make the
replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pydantic import ValidationError

from operator_adapters.base import DeliveryError, OperatorAdapter, RenderedMessage
from schemas.events import AlertEventEnvelope, DispatchRequested
from services.alerts import webhook_id_for
from services.deliveries import DeliveryRecorder
from services.metrics import DELIVERIES_FINISHED, DELIVERY_ATTEMPTS, DISPATCH_LATENCY

log = logging.getLogger(__name__)


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a deadline."""

    def __init__(self, base_s: float = 0.05, cap_s: float = 10.0, deadline_s: float = 300.0):
        self.base_s = base_s
        self.cap_s = cap_s
        self.deadline_s = deadline_s

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        return max(backoff, retry_after_s or 0.0)


class AdapterWorker:
    def __init__(
        self,
        adapter: OperatorAdapter,
        consumer: AIOKafkaConsumer,
        recorder: DeliveryRecorder,
        retry: RetryPolicy,
    ) -> None:
        self.operator = adapter.operator
        self._adapter = adapter
        self._consumer = consumer
        self._recorder = recorder
        self._retry = retry
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await self._consumer.start()
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=500)
                if self._consumer.assignment():
                    self.ready.set()
                if not batch:
                    continue
                await asyncio.gather(*(self._handle_partition(m) for m in batch.values()))
                await self._consumer.commit()
        finally:
            await self._consumer.stop()

    async def _handle_partition(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        # Records of one partition stay in order: that is what keeps a retraction
        # behind its dispatch for the same alert.
        for record in records:
            await self._handle(record)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = AlertEventEnvelope.model_validate_json(
                b'{"event":' + (record.value or b"null") + b"}"
            ).event
        except ValidationError:
            log.error(
                "unreadable event skipped",
                extra={
                    "operator": self.operator,
                    "offset": record.offset,
                    "partition": record.partition,
                },
            )
            return
        if self.operator not in event.operators:
            return
        webhook_id = webhook_id_for(str(event.event_id), self.operator)
        if await self._recorder.is_finished(webhook_id):
            return
        if isinstance(event, DispatchRequested):
            kind, message = "dispatch", self._adapter.render_dispatch(event)
        else:
            kind, message = "retraction", self._adapter.render_retraction(event)
        await self._deliver(kind, str(event.alert_id), webhook_id, message, event.occurred_at)

    async def _deliver(
        self,
        kind: str,
        alert_id: str,
        webhook_id: str,
        message: RenderedMessage,
        accepted_at: datetime,
    ) -> None:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                receipt = await self._adapter.deliver(webhook_id, message)
            except DeliveryError as exc:
                DELIVERY_ATTEMPTS.labels(self.operator, kind, "error").inc()
                delay = self._retry.delay(attempt, getattr(exc, "retry_after_s", None))
                out_of_time = time.monotonic() - started + delay > self._retry.deadline_s
                if not exc.retriable or out_of_time:
                    await self._recorder.failed(
                        webhook_id, attempt, exc.status_code, exc.reason, datetime.now(UTC)
                    )
                    DELIVERIES_FINISHED.labels(self.operator, kind, "failed").inc()
                    log.error(
                        "delivery failed",
                        extra={
                            "alert_id": alert_id,
                            "operator": self.operator,
                            "kind": kind,
                            "attempts": attempt,
                            "reason": exc.reason,
                        },
                    )
                    return
                log.warning(
                    "delivery attempt failed; retrying",
                    extra={
                        "alert_id": alert_id,
                        "operator": self.operator,
                        "kind": kind,
                        "attempt": attempt,
                        "reason": exc.reason,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                continue
            now = datetime.now(UTC)
            DELIVERY_ATTEMPTS.labels(self.operator, kind, "ok").inc()
            DISPATCH_LATENCY.labels(self.operator, kind).observe(
                max(0.0, (now - accepted_at).total_seconds())
            )
            await self._recorder.delivered(webhook_id, attempt, receipt.status_code, now)
            DELIVERIES_FINISHED.labels(self.operator, kind, "delivered").inc()
            log.info(
                "delivered",
                extra={
                    "alert_id": alert_id,
                    "operator": self.operator,
                    "kind": kind,
                    "attempts": attempt,
                },
            )
            return
