"""Shared pieces of the operator benchmarks (fanout.py, retraction.py).

The generic pieces (secrets, alert bodies, percentiles, the PostgreSQL throwaway
database, the service launcher, the in-process uvicorn receiver server, the log scan)
are imported from ``e2e_latency`` rather than copied. What is new here:

- :class:`OperatorReceiver`: operator endpoints that read EVERY adapter's format
  (Turkcell JSON, Vodafone CAP 1.2 XML, Türk Telekom compact JSON, generic Standard
  Webhooks JSON). It verifies each signature with the ``standardwebhooks`` package and
  asks the configured adapter class's own ``describe()`` what the body is (dispatch,
  update, retraction, link test; alert id and version): the adapters' read-back is the
  one the operator simulator uses, so the bench needs no parser of its own. Each
  operator can be made slow (answer after a delay) or throttling (429 + Retry-After
  on a fraction of requests) while the service runs.
- :func:`run_service`: e2e_latency's launcher of ``kayip-alarm serve`` with the settings
  these benches add (link tests off, adapters, an external broker).
- :func:`run_broker`, :func:`group_lag`, :class:`ProduceProbe`: an embedded broker owned
  by the bench (so the bench knows its address), consumer-group lag read with aiokafka
  (working around the embedded broker's short ``end_offsets``), and the broker's
  produce-ack latency sampled while a bench runs.
- :func:`bench_session` and :func:`bench_main`: one engine's set-up, warm-up and
  verdict (:class:`Verdict`), and the per-engine loop with the exit status, so each
  bench file holds only what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from e2e_latency import (
    API_KEY,
    ERROR_SAMPLES,
    OPERATORS,
    Service,
    add_settings_option,
    alert_body,
    create,
    machine_info,
    ms_stats,
    new_secret,
    postgres_database,
    resolve,
    run_receiver,
    scan_log,
)
from e2e_latency import run_service as e2e_run_service
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response

from operator_adapters.base import MessageSummary, OperatorAdapter
from operator_adapters.registry import adapter_name, discover
from services.messaging.broker import EmbeddedBroker
from services.settings import OperatorConfig

#: MessageSummary.type -> the short kind the benches report.
KINDS = {
    "alert.dispatch": "dispatch",
    "alert.update": "update",
    "alert.retraction": "retraction",
    "link.test": "test",
}


# --------------------------------------------------------------------------- receiver


@dataclass
class Behaviour:
    """How one operator endpoint answers: at once, after a delay, or sometimes 429."""

    delay_s: float = 0.0
    #: Message kinds the delay applies to (e.g. only dispatches, so retractions are prompt).
    delay_kinds: frozenset[str] = frozenset({"dispatch", "update", "retraction", "test"})
    throttle_fraction: float = 0.0
    retry_after_s: int = 1


@dataclass(frozen=True, slots=True)
class Arrival:
    alert_id: str
    kind: str
    version: int
    webhook_id: str
    received: float  # perf_counter when the request arrived
    answered: float  # perf_counter when the 2xx went back (after any delay)
    wall: float  # time.time() when the request arrived, to compare with service clocks
    duplicate: bool  # this webhook-id was accepted before


@dataclass
class OperatorLog:
    """Everything one operator endpoint saw."""

    requests: int = 0
    throttled: int = 0
    bad_signatures: int = 0
    unrecognised: int = 0
    duplicates: int = 0
    duplicate_kinds: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    accepted: list[Arrival] = field(default_factory=list)  # every 2xx, duplicates too
    first: dict[tuple[str, str], Arrival] = field(default_factory=dict)
    webhook_ids: set[str] = field(default_factory=set)


class OperatorReceiver:
    """Operator endpoints in this process; ``handle`` is mounted at ``/ops/{operator}``."""

    def __init__(
        self,
        secrets_by_op: Mapping[str, str],
        adapters: Mapping[str, type[OperatorAdapter]],
        seed: int = 7,
    ) -> None:
        self.operators = list(secrets_by_op)
        self.behaviour = {op: Behaviour() for op in self.operators}
        self.logs = {op: OperatorLog() for op in self.operators}
        self._verifiers = {op: Webhook(secret) for op, secret in secrets_by_op.items()}
        self._adapters = dict(adapters)
        self._rng = random.Random(seed)
        self._waiters: dict[tuple[str, str], asyncio.Event] = {}

    async def handle(self, request: Request) -> Response:
        received, wall = time.perf_counter(), time.time()
        op = request.path_params["operator"]
        log = self.logs.get(op)
        if log is None:
            return Response(status_code=404)
        log.requests += 1
        body = await request.body()
        headers = dict(request.headers)
        try:
            self._verifiers[op].verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            log.bad_signatures += 1
            return Response(status_code=401)
        summary = self._adapters[op].describe(body, headers.get("content-type", ""))
        if summary is None:
            log.unrecognised += 1
            return Response(status_code=400)
        behaviour = self.behaviour[op]
        kind = KINDS[summary.type]
        if behaviour.throttle_fraction and self._rng.random() < behaviour.throttle_fraction:
            log.throttled += 1
            return Response(status_code=429, headers={"retry-after": str(behaviour.retry_after_s)})
        if behaviour.delay_s and kind in behaviour.delay_kinds:
            await asyncio.sleep(behaviour.delay_s)
        self._record(log, summary, kind, headers.get("webhook-id", ""), received, wall)
        return Response(status_code=200)

    def _record(
        self,
        log: OperatorLog,
        summary: MessageSummary,
        kind: str,
        wid: str,
        received: float,
        wall: float,
    ) -> None:
        log.kinds[kind] += 1
        duplicate = wid in log.webhook_ids
        alert_id, version = summary.alert_id or "", summary.alert_version or 0
        arrival = Arrival(
            alert_id, kind, version, wid, received, time.perf_counter(), wall, duplicate
        )
        log.accepted.append(arrival)
        if duplicate:
            log.duplicates += 1
            log.duplicate_kinds[kind] += 1
            return
        log.webhook_ids.add(wid)
        key = (arrival.alert_id, kind)
        if key not in log.first:
            log.first[key] = arrival
            waiter = self._waiters.get(key)
            if waiter is not None and self.everywhere(key):
                waiter.set()

    # -- reading -----------------------------------------------------------------

    def arrival(self, op: str, alert_id: str, kind: str) -> Arrival | None:
        return self.logs[op].first.get((alert_id, kind))

    def everywhere(self, key: tuple[str, str]) -> bool:
        return all(key in self.logs[op].first for op in self.operators)

    async def wait_everywhere(self, key: tuple[str, str], timeout_s: float) -> bool:
        """Until (alert id, kind) has reached every operator, or the timeout."""
        if self.everywhere(key):
            return True
        waiter = self._waiters.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(key, None)
        return True

    async def wait_all(
        self, alert_ids: Iterable[str], kind: str, timeout_s: float, ops: Iterable[str] = ()
    ) -> dict[str, list[str]]:
        """Wait until every alert's ``kind`` is at every operator in ``ops`` (default all);
        return, per operator, the alert ids still missing at the timeout."""
        wanted = list(ops) or self.operators
        ids = list(alert_ids)
        deadline = time.perf_counter() + timeout_s
        while True:
            missing = {
                op: [a for a in ids if (a, kind) not in self.logs[op].first] for op in wanted
            }
            if not any(missing.values()) or time.perf_counter() >= deadline:
                return missing
            await asyncio.sleep(0.05)

    @property
    def bad_signatures(self) -> int:
        return sum(log.bad_signatures for log in self.logs.values())

    @property
    def unrecognised(self) -> int:
        return sum(log.unrecognised for log in self.logs.values())

    @property
    def duplicates(self) -> int:
        return sum(log.duplicates for log in self.logs.values())

    def duplicate_kinds(self) -> Counter[str]:
        return sum((log.duplicate_kinds for log in self.logs.values()), Counter())


# --------------------------------------------------------------------------- service


def operator_env(
    operators: Iterable[str], adapter: str | None, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """KAYIP_OPERATORS__<OP>__* settings beyond the endpoint and secret e2e_latency sets.

    ``adapter`` None keeps each operator's own built-in adapter (turkcell, vodafone,
    turktelekom); ``"standard_webhooks"`` gives all three the one generic JSON format.
    ``overrides``: per-operator options for every operator (e.g. ``{"CONCURRENCY": "16"}``).
    """
    env: dict[str, str] = {}
    for op in operators:
        prefix = f"KAYIP_OPERATORS__{op.upper()}__"
        if adapter is not None:
            env[prefix + "ADAPTER"] = adapter
        env |= {prefix + name: value for name, value in (overrides or {}).items()}
    return env


def adapter_classes(
    operators: Iterable[str], adapter: str | None
) -> dict[str, type[OperatorAdapter]]:
    """The adapter class the service will pick for each operator (for ``describe``)."""
    available = discover()
    config = OperatorConfig(adapter=adapter)
    return {op: available[adapter_name(op, config, available)] for op in operators}


@contextlib.asynccontextmanager
async def engine_database(engine: str) -> AsyncIterator[str | None]:
    """None for SQLite (a fresh file in the service's working directory), else a fresh
    PostgreSQL database dropped afterwards."""
    if engine == "sqlite":
        yield None
        return
    async with postgres_database() as url:
        yield url


@contextlib.asynccontextmanager
async def run_service(
    workdir: Path,
    database_url: str | None,
    receiver_url: str,
    secrets_by_op: dict[str, str],
    settings: Mapping[str, str],
) -> AsyncIterator[Service]:
    """e2e_latency's ``kayip-alarm serve`` (simulator off, webhooks to ``receiver_url``)
    with link tests off and ``settings`` (KAYIP_* variables) on top; says so when the
    service stops by itself."""
    extra = {"KAYIP_LINK_TEST_INTERVAL_S": "0", **settings}
    async with e2e_run_service(
        workdir, database_url, receiver_url, secrets_by_op, extra_env=extra
    ) as service:
        try:
            yield service
        finally:
            if service.process.returncode is not None:
                tail = service.log_path.read_text(errors="replace")[-2000:]
                print(f"!! the service exited early ({service.process.returncode}); log:\n{tail}")


@dataclass(frozen=True, slots=True)
class Broker:
    bootstrap: str
    pid: int  # for its CPU time

    @property
    def settings(self) -> dict[str, str]:
        """What points the service at it (Tansu takes no idempotent producer)."""
        return {
            "KAYIP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAYIP_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAYIP_KAFKA_SESSION_TIMEOUT_MS": "2000",
        }


@contextlib.asynccontextmanager
async def run_broker() -> AsyncIterator[Broker]:
    """An embedded broker owned by the bench, so the bench knows its address."""
    broker = EmbeddedBroker()
    await broker.start()
    try:
        process = broker._process  # the bench may look inside; the service does not
        yield Broker(broker.bootstrap_servers, process.pid if process else -1)
    finally:
        await broker.stop()


class ProduceProbe:
    """Sends one tiny record every ``interval_s`` to a topic of its own and records how
    long the broker takes to acknowledge it: the broker's produce latency at that
    moment, which the service's relay pays for every event it publishes."""

    TOPIC = "bench.produce-probe"

    def __init__(self, bootstrap: str, interval_s: float = 0.25) -> None:
        self._bootstrap = bootstrap
        self._interval_s = interval_s
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ProduceProbe:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            if self.TOPIC not in await admin.list_topics():
                await admin.create_topics([NewTopic(self.TOPIC, 1, 1)])
        finally:
            await admin.close()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", linger_ms=0, enable_idempotence=False
        )
        await producer.start()
        try:
            while True:
                started = time.perf_counter()
                await producer.send_and_wait(self.TOPIC, b"probe")
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(self._interval_s)
        finally:
            await producer.stop()


async def true_end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """Each partition's end (offset of the next record), from a fetch's high watermark.

    Not ``end_offsets()``: the embedded Tansu 0.6 broker answers ListOffsets(latest)
    with the base offset of the partition's last record batch, short by the rest of
    that batch (seen here: 3 records in a partition, ``end_offsets`` said 1). Seeking
    there and fetching once returns the real high watermark.
    """
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    if not partitions:
        await consumer.topics()  # refresh the metadata once
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for tp, offset in listed.items():
        consumer.seek(tp, offset)
    while any(consumer.highwater(tp) is None for tp in partitions):
        await consumer.getmany(timeout_ms=100, max_records=1)
    return {tp: consumer.highwater(tp) for tp in partitions}


async def group_lag(bootstrap: str, groups: Iterable[str], topic: str) -> dict[str, int]:
    """Per consumer group: records of ``topic`` not yet committed (end - committed offset;
    a partition without a commit counts from 0). The service commits an offset only
    once every record before it is recorded, so this counts undelivered work."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ends = await true_end_offsets(consumer, topic)
        lag: dict[str, int] = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
            lag[group] = sum(
                end - max(0, committed[tp].offset if tp in committed else 0)
                for tp, end in ends.items()
            )
        return lag
    finally:
        await admin.close()
        await consumer.stop()


# --------------------------------------------------------------------------- one engine


@dataclass
class Verdict:
    """What the receiver and the service log say about one engine's run."""

    bad_signatures: int = 0
    unrecognised: int = 0
    duplicates: int = 0
    log_counts: Counter[str] = field(default_factory=Counter)

    def failures(self) -> list[str]:
        if not (self.bad_signatures or self.unrecognised):
            return []
        return [f"bad signatures {self.bad_signatures}, unrecognised {self.unrecognised}"]


@dataclass
class Bench:
    """What a benchmark works with for one engine: the service and its operators."""

    engine: str
    receiver: OperatorReceiver
    service: Service
    client: httpx.AsyncClient
    broker: Broker | None
    rng: random.Random
    verdict: Verdict = field(default_factory=Verdict)  # filled once the service stopped


@contextlib.asynccontextmanager
async def bench_session(
    engine: str, adapter: str, own_broker: bool, service_settings: Mapping[str, str] | None = None
) -> AsyncIterator[Bench]:
    """Receiver, fresh database, (broker), service, API client, warm-up; afterwards the
    receiver's and the service log's verdicts, and every temporary file removed.

    ``adapter``: ``default`` (each operator's built-in adapter) or a plugin name.
    ``own_broker``: the bench starts the broker, so it can read and write topics.
    ``service_settings``: KAYIP_* variables for the service on top (``--set``).
    """
    secrets_by_op = {op: new_secret() for op in OPERATORS}
    plugin = None if adapter == "default" else adapter
    receiver = OperatorReceiver(secrets_by_op, adapter_classes(OPERATORS, plugin))
    workdir = Path(tempfile.mkdtemp(prefix=f"bench_{engine}_"))
    print(f"\n=== {engine} (load average {load_average()}) ===", flush=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            receiver_url = await stack.enter_async_context(run_receiver(receiver))
            database_url = await stack.enter_async_context(engine_database(engine))
            broker = await stack.enter_async_context(run_broker()) if own_broker else None
            settings = {
                **(broker.settings if broker else {}),
                **operator_env(OPERATORS, plugin),
                **(service_settings or {}),
            }
            service = await stack.enter_async_context(
                run_service(workdir, database_url, receiver_url, secrets_by_op, settings)
            )
            client = await stack.enter_async_context(api_client(service.base_url))
            bench = Bench(engine, receiver, service, client, broker, random.Random(20261121))
            await warm_up(client, receiver, bench.rng)
            yield bench
        print(
            f"\n  receiver: bad signatures {receiver.bad_signatures}, unrecognised payloads "
            f"{receiver.unrecognised}, duplicate deliveries {receiver.duplicates} "
            f"{dict(receiver.duplicate_kinds()) or ''}"
        )
        bench.verdict = Verdict(
            receiver.bad_signatures,
            receiver.unrecognised,
            receiver.duplicates,
            report_log(service.log_path),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- output


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options every operator bench has (engine, adapter), then the bench's own."""
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--adapter",
        choices=["default", "standard_webhooks"],
        default="default",
        help="default: each operator's own built-in adapter",
    )
    add_settings_option(parser)
    return parser.parse_args()


class EngineRun(Protocol):
    engine: str

    def failures(self) -> list[str]:
        """Correctness failures (the exit status), never timings."""


R = TypeVar("R", bound=EngineRun)


def bench_main(
    parser: argparse.ArgumentParser,
    run_engine: Callable[[str, argparse.Namespace], Awaitable[R]],
    print_summary: Callable[[list[R], argparse.Namespace], None],
) -> int:
    """Parse the options, run each engine (an engine that aborts is reported and does
    not hide the other's figures), print the summary; exit 1 on any correctness failure."""
    args = parse_args(parser)

    async def run_all() -> tuple[list[R], bool]:
        engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
        runs: list[R] = []
        aborted = False
        for engine in engines:
            try:
                runs.append(await run_engine(engine, args))
            except Exception as exc:
                print(f"{engine}: benchmark aborted: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
                aborted = True
        return runs, aborted

    runs, failed = asyncio.run(run_all())
    print_summary(runs, args)
    for label, detail in ERROR_SAMPLES.items():
        print(f"first {label!r} response: {detail}")
    for run in runs:
        for failure in run.failures():
            failed = True
            print(f"FAIL {run.engine}: {failure}")
    return 1 if failed else 0


def report_log(path: Path) -> Counter[str]:
    """Warnings and errors in the service log, with a few sample lines."""
    counts, samples = scan_log(path)
    print(f"  service log: {dict(counts) or 'no warnings or errors'}")
    for line in samples[:4]:
        print(f"    {line[:240]}")
    return counts


def summary_header(details: str) -> None:
    print("\n=== summary ===")
    print(f"machine: {machine_info()}; load average now {load_average()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {details}")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def stats_cells(values: list[float]) -> str:
    """``p50/p95/p99`` in ms, for table cells."""
    s = ms_stats(values)
    return f"{s['p50']:.1f}/{s['p95']:.1f}/{s['p99']:.1f}"


def ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old > 0 else "n/a"


# --------------------------------------------------------------------------- API


def api_client(base_url: str, connections: int = 64) -> httpx.AsyncClient:
    """The case system's client: the development API key, generous pool and timeout.

    Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive timeout:
    with equal timeouts a request can go out on a connection the server is closing
    (httpx ReadError, seen once at the start of a phase after a pause)."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    return httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=30.0,
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


async def warm_up(
    client: httpx.AsyncClient, receiver: OperatorReceiver, rng: random.Random, count: int = 10
) -> None:
    """A few create + resolve cycles, each waited for at every operator (not measured):
    first connections, first compiled statements, first geofence lookups."""
    for i in range(count):
        alert_id, outcome = await create(client, alert_body(rng, 900_000 + i))
        if alert_id is None:
            raise RuntimeError(f"warm-up create failed: {outcome}")
        await receiver.wait_everywhere((alert_id, "dispatch"), 10.0)
        await resolve(client, alert_id)
        await receiver.wait_everywhere((alert_id, "retraction"), 10.0)
