"""One operator's consumer: read both lanes, deliver through the adapter, record, commit.

The worker subscribes to the dispatch lane (dispatches, updates, link tests) and
the retraction lane in ONE consumer group with the range assignor: both topics
have the same partition count and key, so a worker owns partition *p* of both,
and everything about one alert is decided in one process. By default the worker's
consumer only holds and commits the partitions: one feed per lane, shared by the
process's workers, fetches them (``lane_feed.py``), so a record is fetched once for
every operator and a retraction's fetch never waits behind a dispatch fetch.

Records never wait for each other's retries: every record becomes its own task.
Order per alert is kept by chaining an alert's tasks within a lane. A retraction
does not queue behind its alert's dispatch: when it is fetched it raises the
alert's retracted version at once, which cancels a dispatch waiting in backoff
(it is recorded ``suppressed``), and it waits only for an HTTP attempt already in
flight, so it always arrives after it. Nothing older than what was retracted or
already sent is delivered afterwards.

An offset is committed only when every record before it is recorded in the
database (:class:`PartitionProgress`). Records that may have been handled
before (offsets below a partition's end at assignment, and re-publications by
the reconciler or a re-drive) are checked against the database first; records
produced after the assignment are new by construction, so the hot path makes no
database round trip before its webhook goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter, ValidationError

from operator_adapters.base import DeliveryError, OperatorAdapter, RenderedMessage
from operator_adapters.concurrency import AdaptiveLimit
from operator_adapters.fetch_gate import FetchGate
from operator_adapters.lane_feed import LaneFeed
from operator_adapters.priority import RetractionPriority
from operator_adapters.resilience import BreakerOpen, CircuitBreaker, RateLimiter, RetryPolicy
from schemas.alerts import DeliveryStatus
from schemas.events import (
    AlertEvent,
    AlertRetracted,
    AlertUpdated,
    DispatchRequested,
    LinkTestRequested,
)
from services import audit
from services.alerts import webhook_id_for
from services.deliveries import (
    AttemptRecord,
    DeliveryOutcome,
    DeliveryRecorder,
    LinkTestOutcome,
    RetryNote,
)
from services.metrics import (
    BREAKER_STATE,
    DEAD_LETTERS,
    DELIVERIES_FINISHED,
    DELIVERY_ATTEMPTS,
    DISPATCH_LATENCY,
    LINK_TEST_LATENCY,
    LINK_UP,
    RETRACTION_RETRY_ALARMS,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENT: TypeAdapter[AlertEvent] = TypeAdapter(AlertEvent)
REMEMBERED = 100_000
# Unfinished records per partition before it is paused. Low: every fetched record is
# parsed and becomes a task on the loop a retraction must get through.
PAUSE_ABOVE = 200
RESUME_BELOW = 50
MAX_RECORDS_PER_POLL = 100  # one poll's parsing is one uninterrupted stretch of the loop


#: How many parsed events a process keeps (see ``parse_event``).
PARSED_EVENTS_KEPT = 512


@functools.lru_cache(maxsize=PARSED_EVENTS_KEPT)
def parse_event(value: bytes | None) -> AlertEvent | None:
    """The event a record carries, parsed once per process, not once per worker.

    Why: a lane feed hands every worker of the process the same records, and each
    operator's dispatch is a record of its own that the other workers skip only after
    parsing it; without the cache a create was parsed nine times, and the last
    operator's webhook waited behind the others' parsing. Events are frozen models
    that no worker changes, so one object can serve them all; the key is the record's
    bytes (their hash is computed once and kept by the bytes object).
    """
    try:
        return EVENT.validate_json(value or b"null")
    except ValidationError:
        return None


class DeadLetterSink(Protocol):
    """Where deliveries that ran out of deadline go, besides the database (a port)."""

    async def publish(self, record: dict[str, object], key: str) -> None:
        """Return once the record is durably accepted."""


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    """Per-operator delivery behaviour, from OperatorConfig and Settings."""

    dispatch_retry: RetryPolicy = field(default_factory=RetryPolicy)
    retraction_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base_s=0.02, cap_s=1.0, deadline_s=None)
    )
    link_test_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base_s=0.05, cap_s=1.0, deadline_s=10.0)
    )
    retraction_alarm_after_s: float = 60.0
    concurrency: int = 8
    #: Fewer dispatches in flight while the operator queues them (``concurrency.py``).
    adaptive_concurrency: bool = True
    max_rate_per_s: float | None = None
    breaker_failure_threshold: int = 5
    breaker_open_s: float = 5.0
    #: A graceful stop waits this long for attempts already on the wire.
    stop_grace_s: float = 5.0
    #: Pause fetching while idle, woken by ``nudge`` (see ``fetch_gate.py``).
    idle_pause: bool = False
    idle_recheck_s: float = 0.1


class _Stopping(Exception):
    """Raised instead of a new attempt once the worker is stopping."""


@dataclass(slots=True)
class _Job:
    kind: str  # dispatch | update | retraction | link_test
    event: AlertEvent
    webhook_id: str
    key: str  # alert id, or "link:<operator>"
    version: int
    tp: TopicPartition
    offset: int
    check_database: bool
    hold: int | None = None  # a retraction holding dispatches back (see priority.py)
    #: An attempt is on the wire, or its result not yet handed to the recorder: a
    #: graceful stop lets this job finish rather than send it again after a restart.
    unrecorded: bool = False


class PartitionProgress:
    """Unfinished offsets of one partition, so a commit never skips one still running."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, bool] = OrderedDict()
        self.committable: int | None = None
        self.committed: int | None = None

    def started(self, offset: int) -> None:
        self._open[offset] = False

    def finished(self, offset: int) -> None:
        if offset in self._open:
            self._open[offset] = True
        while self._open:
            first, done = next(iter(self._open.items()))
            if not done:
                break
            self._open.popitem(last=False)
            self.committable = first + 1

    def __len__(self) -> int:
        return len(self._open)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: AdapterWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.assigned(assigned)


class AdapterWorker:
    def __init__(
        self,
        adapter: OperatorAdapter,
        consumer: AIOKafkaConsumer,
        recorder: DeliveryRecorder,
        policy: WorkerPolicy,
        dispatch_topic: str,
        retraction_topic: str,
        dead_letters: DeadLetterSink,
        priority: RetractionPriority | None = None,
        retraction_feed: LaneFeed | None = None,
        dispatch_feed: LaneFeed | None = None,
    ) -> None:
        self.operator = adapter.operator
        self._dispatch_topic = dispatch_topic
        lanes = ((dispatch_topic, dispatch_feed), (retraction_topic, retraction_feed))
        self._feeds = {topic: feed for topic, feed in lanes if feed is not None}
        self._priority = priority or RetractionPriority()
        self._retraction_topic = retraction_topic
        self._adapter = adapter
        self._consumer = consumer
        self._recorder = recorder
        self._policy = policy
        self._topics = [dispatch_topic, retraction_topic]
        self._dead_letters = dead_letters
        self._breaker = CircuitBreaker(policy.breaker_failure_threshold, policy.breaker_open_s)
        self._rate = RateLimiter(policy.max_rate_per_s)
        # Retractions get their own connection slots and skip the rate limit: a queue of
        # dispatches waiting for a slot must never delay one.
        self._slots = AdaptiveLimit(policy.concurrency, policy.adaptive_concurrency)
        self._retraction_slots = asyncio.Semaphore(policy.concurrency)
        self.ready = asyncio.Event()
        self._replay_below: dict[TopicPartition, int] = {}
        self._published_before: dict[TopicPartition, int] = {}  # wall ms at assignment
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._gate = FetchGate(consumer, policy.idle_pause, policy.idle_recheck_s)
        self._jobs: dict[asyncio.Task[None], _Job] = {}  # every running job's task
        # Records are scheduled by this worker's loop and, for the retraction lane, by the
        # shared feed's; a revocation must not land inside either (see ``revoked``).
        self._scheduling = asyncio.Lock()
        self._stopping = False
        # Per alert (bounded LRUs): highest version retracted, highest version sent,
        # the last task of each lane (for order), the in-flight lock and the wake-up.
        self._retracted: OrderedDict[str, int] = OrderedDict()
        self._sent: OrderedDict[str, int] = OrderedDict()
        self._tails: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._in_flight: PerAlert[asyncio.Lock] = PerAlert(asyncio.Lock)
        self._retract_signal: PerAlert[asyncio.Event] = PerAlert(asyncio.Event)
        self._delivered: OrderedDict[str, None] = OrderedDict()
        #: Finished deliveries by status, for this worker (tests and the fan-out bench).
        self.finished: Counter[str] = Counter()
        BREAKER_STATE.labels(self.operator).set(0)

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def paused(self) -> set[TopicPartition]:
        return set(self._consumer.paused())

    @property
    def gate(self) -> FetchGate:
        return self._gate

    def nudge(self, ends: Mapping[tuple[str, int], int]) -> None:
        """Records were just published, up to ``ends`` ((topic, partition) -> offset
        after the last): fetch them now."""
        self._gate.nudge({TopicPartition(t, p): end for (t, p), end in ends.items()})

    # -- consuming ---------------------------------------------------------------

    async def run(self) -> None:
        self._consumer.subscribe(self._topics, listener=_Listener(self))
        try:
            # Inside the try: a worker cancelled while its consumer starts (a restart
            # during a broker outage) must still stop it, or the half-started consumer
            # joins the group, takes partitions and never fetches them.
            await self._consumer.start()
            while not self._stopping:
                records = await self._poll()
                self._gate.polled(records, busy=bool(self._jobs))
                if records:
                    async with self._scheduling:
                        await self._schedule(records)
                await self._commit()
                self._flow_control()
            await self._finish_in_flight()
            await self._commit()
        finally:
            try:
                for task in list(self._jobs):
                    task.cancel()
                await asyncio.gather(*self._jobs, return_exceptions=True)
                await self._recorder.stop()
            finally:
                if self._feeds:
                    self._leave_feeds(self._consumer.assignment())
                await self._consumer.stop()

    def stop(self) -> None:
        """Ask ``run`` to end in order: no new records or attempts; attempts already on
        the wire are answered and recorded, then offsets committed (see
        ``_finish_in_flight``)."""
        self._stopping = True

    async def _finish_in_flight(self) -> None:
        """Jobs that have sent nothing unrecorded are dropped: their offsets stay
        uncommitted, so whoever owns the partition next reads them again, and since
        nothing went out nothing is sent twice. The others get ``stop_grace_s`` to be
        answered and recorded; only what outlasts that may be sent again later."""
        for task, job in list(self._jobs.items()):
            if not job.unrecorded:
                task.cancel()
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=self._policy.stop_grace_s)

    async def _poll(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Fetched retractions first, whatever else is buffered: the consumer hands out
        buffered partitions in the order they were fetched, so a retraction would
        otherwise wait behind every dispatch fetched before it."""
        assignment = self._consumer.assignment()
        if assignment:
            self.ready.set()
        lane = (
            []
            if self._retraction_topic in self._feeds
            else [tp for tp in assignment if tp.topic == self._retraction_topic]
        )
        urgent = await self._consumer.getmany(*lane, timeout_ms=0) if lane else {}
        batch = await self._consumer.getmany(
            timeout_ms=0 if urgent else self._gate.poll_timeout_ms(),
            max_records=MAX_RECORDS_PER_POLL,
        )
        return [r for rs in (*urgent.values(), *batch.values()) for r in rs]

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        if partitions:
            assigned_at_ms = int(time.time() * 1000)
            ends = await self._consumer.end_offsets(list(partitions))
            self._replay_below.update(ends)
            self._published_before.update(dict.fromkeys(partitions, assigned_at_ms))
            for tp in partitions:
                self._progress[tp] = PartitionProgress()
            self._gate.assigned()
            for topic, feed in self._feeds.items():
                await self._join_feed(feed, {tp for tp in partitions if tp.topic == topic})

    async def _join_feed(self, feed: LaneFeed, lane: set[TopicPartition]) -> None:
        """The shared feed fetches this worker's partitions of its lane from their
        committed offsets (what this consumer would have fetched itself)."""
        self._gate.fetched_elsewhere(lane)
        starts = {tp: await self._consumer.committed(tp) or 0 for tp in lane}
        feed.join(self, starts)

    async def receive_from_feed(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """From a shared feed: records of this worker's partitions of its lane (any of
        a partition revoked meanwhile are dropped: its new owner reads them). A stopping
        worker takes none (their offsets stay uncommitted)."""
        async with self._scheduling:
            owned = [r for r in records if TopicPartition(r.topic, r.partition) in self._progress]
            if owned and not self._stopping:
                await self._schedule(owned)
                self._flow_control()

    def _leave_feeds(self, partitions: set[TopicPartition]) -> None:
        for topic, feed in self._feeds.items():
            feed.leave(self, {tp for tp in partitions if tp.topic == topic})

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self._leave_feeds(partitions)
        async with self._scheduling:  # the feed may be scheduling records of these
            await self._commit()
            for tp in partitions:
                self._progress.pop(tp, None)
            self._gate.forget(partitions)

    async def _commit(self) -> None:
        offsets = {}
        for tp, progress in self._progress.items():
            if progress.committable is not None and progress.committable != progress.committed:
                offsets[tp] = progress.committable
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance or a lost broker: the consumer rejoins; what was not committed
            # is read again and checked against the database (see the module docstring).
            log.warning(
                "offset commit failed; will retry",
                extra={"operator": self.operator, "error": type(exc).__name__},
            )
            return
        for tp, offset in offsets.items():
            if tp in self._progress:
                self._progress[tp].committed = offset

    def _flow_control(self) -> None:
        """Pause a partition with too much unfinished work; the other lane keeps flowing.
        A partition a feed fetches is held there, for this worker only; the retraction
        lane's feed never holds one (see ``lane_feed.py``)."""
        held = self._gate.held
        for tp, progress in self._progress.items():
            if tp in self._gate.elsewhere:
                if tp.topic == self._dispatch_topic:
                    self._feed_flow_control(tp, progress)
                continue
            if tp not in held and len(progress) > PAUSE_ABOVE:
                self._gate.hold(tp)
            elif tp in held and len(progress) < RESUME_BELOW:
                self._gate.release(tp)

    def _feed_flow_control(self, tp: TopicPartition, progress: PartitionProgress) -> None:
        feed = self._feeds[self._dispatch_topic]
        if len(progress) > PAUSE_ABOVE:
            feed.hold(self, tp)
        elif len(progress) < RESUME_BELOW:
            feed.release(self, tp)

    async def _schedule(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        jobs: list[_Job] = []
        # Retraction-lane records first (stable: each partition stays in offset order),
        # so their tasks are the first to run.
        records = sorted(records, key=lambda r: r.topic != self._retraction_topic)
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            progress = self._progress.setdefault(tp, PartitionProgress())
            progress.started(record.offset)
            job = self._job(record, tp)
            if job is None:
                progress.finished(record.offset)
                continue
            if job.kind == "retraction":
                # Decided now, not when its turn comes: cancels older dispatches at once.
                # A partial retraction (narrowed area) only concerns the operators it lists.
                event = job.event
                assert isinstance(event, AlertRetracted)
                # Every fetched retraction ends the API's early hold for this worker (one
                # this worker then sends holds on its own, from ``_start``).
                self._priority.fetched(job.key)
                if event.partial and self.operator not in event.operators:
                    progress.finished(record.offset)
                    continue
                _raise(self._retracted, job.key, job.version)
                signal = self._retract_signal.peek(job.key)
                if signal is not None:
                    signal.set()
            jobs.append(job)
        skip = await self._already_handled([j for j in jobs if j.check_database])
        for job in jobs:
            if job.webhook_id in skip or job.webhook_id in self._delivered:
                self._progress[job.tp].finished(job.offset)
                continue
            self._start(job)

    def _job(self, record: ConsumerRecord[bytes, bytes], tp: TopicPartition) -> _Job | None:
        event = parse_event(record.value)
        if event is None:
            log.error(
                "unreadable event skipped",
                extra={"operator": self.operator, "topic": tp.topic, "offset": record.offset},
            )
            return None
        # Published before this worker had the partition: maybe handled already. By the
        # offset, or, where the broker's end offset falls short, by the record's time:
        # the embedded broker (Tansu) reports a partition's end as its last record
        # batch's first offset + 1, so a multi-record batch's later records passed for
        # new after a restart and were sent again (tests/e2e/test_redelivery.py).
        before_offset = record.offset < self._replay_below.get(tp, 1 << 62)
        before_time = record.timestamp <= self._published_before.get(tp, 0)
        maybe_replayed = before_offset or before_time
        check = maybe_replayed or event.redelivery
        if isinstance(event, LinkTestRequested):
            if event.operator != self.operator:
                return None
            webhook_id = webhook_id_for(str(event.event_id), self.operator)
            key = f"link:{self.operator}"
            return _Job("link_test", event, webhook_id, key, 0, tp, record.offset, check)
        retraction = isinstance(event, AlertRetracted)
        if self.operator not in event.operators and not retraction:
            return None  # another operator's dispatch (retractions: see _decide_retraction)
        # Only now: two of every three dispatch records are another operator's.
        webhook_id = webhook_id_for(str(event.event_id), self.operator)
        kind = (
            "retraction"
            if retraction
            else "update"
            if isinstance(event, AlertUpdated)
            else "dispatch"
        )
        key = str(event.alert_id)
        return _Job(kind, event, webhook_id, key, event.alert_version, tp, record.offset, check)

    async def _already_handled(self, jobs: Sequence[_Job]) -> set[str]:
        """For records that may be replays: finished ones, and alert messages whose alert
        has ended since (they are recorded suppressed rather than delivered late)."""
        if not jobs:
            return set()
        skip = await self._recorder.finished_among([j.webhook_id for j in jobs])
        alert_jobs = [j for j in jobs if j.kind in ("dispatch", "update")]
        ended = await self._recorder.ended_alerts({j.key for j in alert_jobs})
        for job in alert_jobs:
            if job.key in ended and job.webhook_id not in skip:
                _raise(self._retracted, job.key, job.version + 1)
        return skip

    def _start(self, job: _Job) -> None:
        lane = "retraction" if job.kind == "retraction" else "dispatch"
        if job.kind == "retraction":
            job.hold = self._priority.begin()
        previous = self._tails.get((lane, job.key))
        task = asyncio.create_task(self._run_job(job, previous))
        self._tails[(lane, job.key)] = task
        self._jobs[task] = job

        def done(t: asyncio.Task[None]) -> None:
            self._jobs.pop(t, None)
            if self._tails.get((lane, job.key)) is t:
                del self._tails[(lane, job.key)]

        task.add_done_callback(done)

    async def _run_job(self, job: _Job, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            if job.webhook_id in self._delivered:  # a duplicate record right behind its twin
                self._done(job)
                return
            try:
                if job.kind == "link_test":
                    await self._link_test(job)
                elif job.kind == "retraction":
                    await self._retraction(job)
                else:
                    await self._dispatch(job)
            except asyncio.CancelledError:
                raise
            except _Stopping:
                return  # nothing unrecorded went out; the offset stays uncommitted
            except Exception:  # a bug must not stall the partition's commits
                log.exception(
                    "delivery job crashed",
                    extra={"operator": self.operator, "webhook_id": job.webhook_id},
                )
                return  # offset stays uncommitted: the record is read again after a restart
            self._done(job)
        finally:
            self._release(job)

    def _release(self, job: _Job) -> None:
        if job.hold is not None:
            self._priority.end(job.hold)
            job.hold = None

    def _done(self, job: _Job) -> None:
        progress = self._progress.get(job.tp)
        if progress is not None:
            progress.finished(job.offset)
            if job.tp in self._gate.elsewhere and job.tp.topic == self._dispatch_topic:
                self._feed_flow_control(job.tp, progress)  # no poll of ours would see it

    # -- the three kinds of job --------------------------------------------------

    async def _dispatch(self, job: _Job) -> None:
        event = job.event
        if isinstance(event, AlertUpdated):
            render: Callable[[], RenderedMessage] = partial(self._adapter.render_update, event)
        else:
            assert isinstance(event, DispatchRequested)
            render = partial(self._adapter.render_dispatch, event)
        result = await self._send(job, _Lazy(render), self._policy.dispatch_retry)
        if result.status is DeliveryStatus.delivered:
            _raise(self._sent, job.key, job.version)
        await self._finish(job, result)

    async def _retraction(self, job: _Job) -> None:
        event = job.event
        assert isinstance(event, AlertRetracted)
        if not await self._retraction_owed(job, event):
            await self._finish(job, _Result(DeliveryStatus.suppressed, 0, None, "not owed", []))
            return
        message = _Lazy(partial(self._adapter.render_retraction, event))
        result = await self._send(job, message, self._policy.retraction_retry)
        await self._finish(job, result)

    async def _retraction_owed(self, job: _Job, event: AlertRetracted) -> bool:
        """Owed to every operator the service listed (it may have the alert) and to any
        operator this worker sent the alert to, listed or not (a dispatch can leave the
        outbox just before the retraction decides it had not)."""
        if self.operator in event.operators or job.key in self._sent:
            return True
        if self._in_flight.peek(job.key) is not None:
            with self._in_flight.use(job.key) as lock:
                async with lock:  # an attempt in flight: wait for it, then decide
                    pass
            return job.key in self._sent
        return job.key in await self._recorder.delivered_alerts(self.operator, [job.key])

    async def _link_test(self, job: _Job) -> None:
        event = job.event
        assert isinstance(event, LinkTestRequested)
        started = time.monotonic()
        result = await self._send(
            job, _Lazy(partial(self._adapter.render_link_test, event)), self._policy.link_test_retry
        )
        ok = result.status is DeliveryStatus.delivered
        latency_ms = (time.monotonic() - started) * 1000 if ok else None
        LINK_UP.labels(self.operator).set(1 if ok else 0)
        if latency_ms is not None:
            LINK_TEST_LATENCY.labels(self.operator).observe(latency_ms / 1000)
        log.log(
            logging.INFO if ok else logging.ERROR,
            "link test finished",
            extra={"operator": self.operator, "ok": ok, "attempts": result.attempts},
        )
        await self._recorder.finish_link_test(
            LinkTestOutcome(
                job.webhook_id,
                self.operator,
                ok,
                result.status_code,
                latency_ms,
                result.reason,
                datetime.now(UTC),
            ),
            result.attempts_log,
        )

    # -- sending -----------------------------------------------------------------

    def _superseded(self, job: _Job) -> bool:
        if job.kind in ("retraction", "link_test"):
            return False
        return (
            self._retracted.get(job.key, 0) > job.version
            or self._sent.get(job.key, 0) > job.version
        )

    async def _send(self, job: _Job, message: _Lazy, retry: RetryPolicy) -> _Result:
        started = time.monotonic()
        unwritten: list[AttemptRecord] = []  # attempts not yet handed to the recorder
        count = 0
        alarmed = False
        while True:
            if self._superseded(job):
                return _Result(DeliveryStatus.suppressed, count, None, "superseded", unwritten)
            count += 1
            error = await self._attempt(job, message, count, unwritten)
            self._release(job)  # a retraction's first answer: dispatches may go again
            if error is SUPERSEDED:
                count -= 1
                continue  # the check at the top records it suppressed
            if error is None:
                code = unwritten[-1].status_code
                return _Result(DeliveryStatus.delivered, count, code, None, unwritten)
            elapsed = time.monotonic() - started
            delay = retry.delay(count, error.retry_after_s)
            if not error.retriable or retry.out_of_time(elapsed, delay):
                return _Result(
                    DeliveryStatus.failed, count, error.status_code, error.reason, unwritten
                )
            if (
                job.kind == "retraction"
                and not alarmed
                and elapsed > self._policy.retraction_alarm_after_s
            ):
                alarmed = True
                self._alarm(job, count, error.reason)
            now = datetime.now(UTC)
            note = RetryNote(
                job.webhook_id,
                count,
                error.status_code,
                error.reason,
                now + timedelta(seconds=delay),
                now,
            )
            self._recorder.note_retrying(note, unwritten)
            job.unrecorded = False
            unwritten = []
            log.warning(
                "delivery attempt failed; retrying",
                extra={
                    **_ids(job, self.operator),
                    "reason": error.reason,
                    "retry_in_s": round(delay, 3),
                },
            )
            await self._backoff(job, delay)

    async def _attempt(
        self, job: _Job, message: _Lazy, number: int, log_to: list[AttemptRecord]
    ) -> _Failure | None:
        """One try, under the operator's concurrency, rate and breaker; None on 2xx."""
        retraction = job.kind == "retraction"
        async with self._retraction_slots if retraction else self._slots:
            if job.kind in ("dispatch", "update"):
                # Inside the slot: only the few dispatches that hold one wait here, so a
                # retraction's answer wakes a handful of tasks, not the whole backlog.
                await self._priority.dispatch_turn()
            if not retraction:
                await self._rate.acquire()
            # The alert's lock is held only around the HTTP call itself: a retraction
            # waits for an attempt in flight (so it arrives after it), never for a queue.
            with self._in_flight.use(job.key) as lock:
                async with lock:
                    if self._superseded(job):  # a retraction came while this waited
                        return SUPERSEDED
                    if self._stopping:
                        raise _Stopping
                    job.unrecorded = True
                    begun = datetime.now(UTC)
                    try:
                        self._breaker.before_call()
                    except BreakerOpen as exc:
                        DELIVERY_ATTEMPTS.labels(self.operator, job.kind, "circuit_open").inc()
                        log_to.append(
                            _record(
                                job, self.operator, number, begun, "circuit_open", None, str(exc)
                            )
                        )
                        return _Failure("circuit open", None, exc.retry_in_s, retriable=True)
                    failure: DeliveryError | None = None
                    rendered = message.get()
                    in_flight, sent = self._slots.in_flight, time.monotonic()
                    try:
                        receipt = await self._adapter.deliver(job.webhook_id, rendered)
                    except DeliveryError as exc:
                        failure = exc
                    else:
                        if job.kind in ("dispatch", "update"):
                            self._slots.observe(time.monotonic() - sent, in_flight)
        if failure is not None:
            self._breaker.failure()
            self._update_breaker_metric()
            DELIVERY_ATTEMPTS.labels(self.operator, job.kind, "error").inc()
            outcome = "retriable_error" if failure.retriable else "permanent_error"
            log_to.append(
                _record(
                    job, self.operator, number, begun, outcome, failure.status_code, failure.reason
                )
            )
            return _Failure(
                failure.reason,
                failure.status_code,
                getattr(failure, "retry_after_s", None),
                retriable=failure.retriable,
            )
        self._breaker.success()
        self._update_breaker_metric()
        DELIVERY_ATTEMPTS.labels(self.operator, job.kind, "ok").inc()
        log_to.append(_record(job, self.operator, number, begun, "ok", receipt.status_code, None))
        return None

    def _update_breaker_metric(self) -> None:
        BREAKER_STATE.labels(self.operator).set(
            {"closed": 0, "half_open": 1, "open": 2}[self._breaker.state]
        )

    async def _backoff(self, job: _Job, delay: float) -> None:
        """Sleep, but wake at once if a retraction supersedes this message."""
        if self._stopping:
            raise _Stopping  # its attempts so far are recorded; it resumes after a restart
        if job.kind in ("retraction", "link_test"):
            await asyncio.sleep(delay)
            return
        if self._superseded(job):
            return  # a retraction came during the attempt; the send loop records it
        with self._retract_signal.use(job.key) as signal:
            try:
                await asyncio.wait_for(signal.wait(), delay)
            except TimeoutError:
                pass

    def _alarm(self, job: _Job, attempts: int, reason: str) -> None:
        RETRACTION_RETRY_ALARMS.labels(self.operator).inc()
        log.error(
            "retraction not confirmed in time; still retrying",
            extra={**_ids(job, self.operator), "attempts": attempts, "reason": reason},
        )
        self._recorder.note_audit(
            audit.entry(
                alert_id=job.key,
                actor=f"adapter:{self.operator}",
                action="retraction.unconfirmed_alarm",
                now=datetime.now(UTC),
                details={
                    "operator": self.operator,
                    "webhook_id": job.webhook_id,
                    "attempts": attempts,
                },
            )
        )

    async def _finish(self, job: _Job, result: _Result) -> None:
        now = datetime.now(UTC)
        dead_lettered = False
        if result.status is DeliveryStatus.failed:
            await self._dead_letter(job, result, now)
            dead_lettered = True
            if job.kind == "retraction":  # refused outright (a 4xx): a person must look
                self._alarm(job, result.attempts, result.reason or "refused")
        event = job.event
        assert not isinstance(event, LinkTestRequested)
        DELIVERIES_FINISHED.labels(self.operator, job.kind, result.status.value).inc()
        self.finished[result.status.value] += 1
        if result.status is DeliveryStatus.delivered:
            DISPATCH_LATENCY.labels(self.operator, job.kind).observe(
                max(0.0, (now - event.occurred_at).total_seconds())
            )
            _remember(self._delivered, job.webhook_id)
        log.log(
            logging.ERROR if result.status is DeliveryStatus.failed else logging.INFO,
            f"{job.kind} {result.status.value}",
            extra={
                **_ids(job, self.operator),
                "attempts": result.attempts,
                "reason": result.reason,
            },
        )
        await self._recorder.finish(
            DeliveryOutcome(
                job.webhook_id,
                job.key,
                self.operator,
                job.kind,
                result.status,
                result.attempts,
                result.status_code,
                result.reason,
                now,
                dead_lettered=dead_lettered,
            ),
            result.attempts_log,
        )

    async def _dead_letter(self, job: _Job, result: _Result, now: datetime) -> None:
        """The dead-letter topic holds references only (no personal data); the database
        keeps the event, so a re-drive needs nothing from the topic."""
        DEAD_LETTERS.labels(self.operator, job.kind).inc()
        record: dict[str, object] = {
            "type": "delivery.dead_lettered",
            "operator": self.operator,
            "kind": job.kind,
            "alert_id": job.key,
            "alert_version": job.version,
            "event_id": str(job.event.event_id),
            "webhook_id": job.webhook_id,
            "attempts": result.attempts,
            "status_code": result.status_code,
            "reason": result.reason,
            "dead_lettered_at": now.isoformat(),
        }
        await _retry_forever(lambda: self._dead_letters.publish(record, job.key), "dead letter")


class _Lazy:
    """A message rendered on its first attempt, inside a concurrency slot: rendering a
    dispatch (CAP XML, cell lists) is most of its CPU, and a backlog's queued records
    must not all be rendered up front, nor those a retraction supersedes at all."""

    __slots__ = ("_message", "_render")

    def __init__(self, render: Callable[[], RenderedMessage]) -> None:
        self._render: Callable[[], RenderedMessage] | None = render
        self._message: RenderedMessage | None = None

    def get(self) -> RenderedMessage:
        if self._message is None:
            assert self._render is not None
            self._message = self._render()
            self._render = None
        return self._message


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    status_code: int | None
    retry_after_s: float | None
    retriable: bool


@dataclass(frozen=True, slots=True)
class _Result:
    status: DeliveryStatus
    attempts: int
    status_code: int | None
    reason: str | None
    attempts_log: list[AttemptRecord]


SUPERSEDED = _Failure("superseded", None, None, retriable=False)


def _ids(job: _Job, operator: str) -> dict[str, object]:
    return {
        "alert_id": job.key,
        "operator": operator,
        "kind": job.kind,
        "webhook_id": job.webhook_id,
    }


def _record(
    job: _Job,
    operator: str,
    number: int,
    begun: datetime,
    outcome: str,
    status_code: int | None,
    reason: str | None,
) -> AttemptRecord:
    return AttemptRecord(
        job.webhook_id,
        job.key,
        operator,
        number,
        begun,
        datetime.now(UTC),
        outcome,
        status_code,
        reason,
    )


class PerAlert(Generic[T]):
    """One object per alert while some task uses it, forgotten when the last lets go.

    The worker sees every alert there ever was; a lock or wake-up kept per alert for
    good would grow without end. Only a task inside ``use`` can wait on the object,
    so one created afresh after the last user left is as good as the old one.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._entries: dict[str, tuple[T, list[int]]] = {}  # alert -> (object, [users])

    def peek(self, key: str) -> T | None:
        """The alert's object if some task is using it now."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    @contextlib.contextmanager
    def use(self, key: str) -> Iterator[T]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (self._factory(), [0])
        users = entry[1]
        users[0] += 1
        try:
            yield entry[0]
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def _raise(versions: OrderedDict[str, int], key: str, version: int) -> None:
    if versions.get(key, -1) < version:
        versions[key] = version
    versions.move_to_end(key)
    if len(versions) > REMEMBERED:
        versions.popitem(last=False)


def _remember(seen: OrderedDict[str, None], key: str) -> None:
    seen[key] = None
    seen.move_to_end(key)
    if len(seen) > REMEMBERED:
        seen.popitem(last=False)


async def _retry_forever(call: Callable[[], Awaitable[None]], what: str) -> None:
    backoff = 0.05
    while True:
        try:
            await call()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{what} failed; will retry", extra={"error": type(exc).__name__})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
