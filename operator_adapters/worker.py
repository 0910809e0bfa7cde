"""One operator's consumer: read alert events, deliver through the adapter, record, commit.

Per Kafka batch: partitions deliver concurrently (in order within a partition,
which keeps a retraction behind its dispatch), one transaction records every
outcome, and only then is the offset committed. A crash re-reads the batch; the
stable webhook-id and the delivery records make the replay harmless.

Only records that may have been handled before (offsets below a partition's end
offset when this worker was assigned it) are checked against the database;
records produced after the assignment are new by construction, so the hot path
makes no database round trip before the webhook goes out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from pydantic import TypeAdapter, ValidationError

from operator_adapters.base import DeliveryError, OperatorAdapter, RenderedMessage
from schemas.events import AlertEvent, DispatchRequested
from services.alerts import webhook_id_for
from services.deliveries import DeliveryOutcome, DeliveryRecorder
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


@dataclass(frozen=True, slots=True)
class _Job:
    event: AlertEvent
    webhook_id: str
    maybe_replayed: bool


EVENT: TypeAdapter[AlertEvent] = TypeAdapter(AlertEvent)


def parse_event(value: bytes | None) -> AlertEvent | None:
    try:
        return EVENT.validate_json(value or b"null")
    except ValidationError:
        return None


HANDLED_CACHE = 100_000


class _AssignmentListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes each newly assigned partition's end offset (see the module docstring)."""

    def __init__(self, worker: AdapterWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.assigned(assigned)


class AdapterWorker:
    def __init__(
        self,
        adapter: OperatorAdapter,
        consumer: AIOKafkaConsumer,
        recorder: DeliveryRecorder,
        retry: RetryPolicy,
        topics: Sequence[str],
    ) -> None:
        self.operator = adapter.operator
        self._topics = list(topics)
        self._adapter = adapter
        self._consumer = consumer
        self._recorder = recorder
        self._retry = retry
        self.ready = asyncio.Event()
        # Per partition: offsets below this may be redeliveries of handled records.
        self._replay_below: dict[TopicPartition, int] = {}
        self._handled: OrderedDict[str, None] = OrderedDict()

    async def run(self) -> None:
        self._consumer.subscribe(self._topics, listener=_AssignmentListener(self))
        await self._consumer.start()
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=500)
                if self._consumer.assignment():
                    self.ready.set()
                if batch:
                    await self._process(list(batch.values()))
                    await self._consumer.commit()
        finally:
            await self._consumer.stop()

    async def _process(self, partitions: Sequence[Sequence[ConsumerRecord[bytes, bytes]]]) -> None:
        jobs = [
            [job for r in records if (job := self._job(r)) is not None] for records in partitions
        ]
        maybe_seen = [j.webhook_id for p in jobs for j in p if j.maybe_replayed]
        done = await self._recorder.finished_among(maybe_seen) if maybe_seen else set()
        done.update(j.webhook_id for p in jobs for j in p if j.webhook_id in self._handled)
        outcomes: list[DeliveryOutcome] = []

        async def run_partition(partition_jobs: list[_Job]) -> None:
            for job in partition_jobs:
                if job.webhook_id not in done:
                    done.add(job.webhook_id)  # the same event twice in one batch
                    outcomes.append(await self._deliver(job))
                    self._remember(job.webhook_id)

        await asyncio.gather(*(run_partition(p) for p in jobs))
        await self._recorder.record(outcomes)

    def _remember(self, webhook_id: str) -> None:
        self._handled[webhook_id] = None
        if len(self._handled) > HANDLED_CACHE:
            self._handled.popitem(last=False)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        if partitions:
            ends = await self._consumer.end_offsets(list(partitions))
            self._replay_below.update(ends)

    def _job(self, record: ConsumerRecord[bytes, bytes]) -> _Job | None:
        event = parse_event(record.value)
        if event is None:
            log.error(
                "unreadable event skipped",
                extra={
                    "operator": self.operator,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            return None
        if self.operator not in event.operators:
            return None
        tp = TopicPartition(record.topic, record.partition)
        maybe_replayed = record.offset < self._replay_below.get(tp, 1 << 62)
        return _Job(event, webhook_id_for(str(event.event_id), self.operator), maybe_replayed)

    async def _deliver(self, job: _Job) -> DeliveryOutcome:
        event = job.event
        if isinstance(event, DispatchRequested):
            kind, message = "dispatch", self._adapter.render_dispatch(event)
        else:
            kind, message = "retraction", self._adapter.render_retraction(event)
        return await self._send(
            kind, str(event.alert_id), job.webhook_id, message, event.occurred_at
        )

    async def _send(
        self,
        kind: str,
        alert_id: str,
        webhook_id: str,
        message: RenderedMessage,
        accepted_at: datetime,
    ) -> DeliveryOutcome:
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
                    return DeliveryOutcome(
                        webhook_id,
                        alert_id,
                        self.operator,
                        kind,
                        False,
                        attempt,
                        exc.status_code,
                        exc.reason,
                        datetime.now(UTC),
                    )
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
            DELIVERIES_FINISHED.labels(self.operator, kind, "delivered").inc()
            DISPATCH_LATENCY.labels(self.operator, kind).observe(
                max(0.0, (now - accepted_at).total_seconds())
            )
            log.info(
                "delivered",
                extra={
                    "alert_id": alert_id,
                    "operator": self.operator,
                    "kind": kind,
                    "attempts": attempt,
                },
            )
            return DeliveryOutcome(
                webhook_id,
                alert_id,
                self.operator,
                kind,
                True,
                attempt,
                receipt.status_code,
                None,
                now,
            )
