"""Retraction latency with and without a large dispatch backlog (issue 5).

What is measured, and why
-------------------------
When a missing person is found, every operator must stop the alert at once, however
much dispatch traffic is queued: retractions have their own Kafka topic (lane) and
the adapter workers are meant to let them overtake queued dispatches. The goal in
issue 5: resolve -> every operator's retraction received, p99 under 50 ms with a
backlog of at least 10,000 queued dispatch messages.

For each database engine, in ONE service process (``kayip-alarm serve`` as a
subprocess, fresh SQLite file or PostgreSQL database, simulator and link tests off,
the real default adapters unless ``--adapter standard_webhooks``):

1. **without backlog**: create ``--alerts`` (100) alerts through the API and wait
   until every operator has each dispatch; then resolve them one after another,
   as a case system would (each ``POST .../resolve`` awaited, the next sent at once,
   never waiting for the operators); then wait for every retraction at every operator.
2. **with backlog**: create another 100 alerts the same way. Then build the backlog:
   read the three real ``DispatchRequested`` records the service published for one of
   them (one per operator: each carries that operator's cells) from the dispatch
   topic, and produce ``--backlog`` (10,000) copies of that triple straight into the
   dispatch topic with aiokafka, each copy with a fresh alert id and fresh event ids.
   They are ordinary dispatch records the adapter workers consume, render, sign and
   deliver to the operators (the alerts do not exist in the database, so the
   workers' delivery records update no row; nothing else differs). Every operator
   thus owes ``--backlog`` dispatch deliveries, and each operator's consumer group
   lags by 3 x ``--backlog`` records (it skips the other operators' two thirds).
   The lag is read with aiokafka (end offset - committed offset per group) right
   before the first resolve and right after the last; the receiver's count of
   backlog dispatches still undelivered is printed too. Then ``--queued-alerts``
   (20) more alerts are created, whose dispatch records land BEHIND the backlog.
   Then the 100 alerts, and after them the queued ones, are resolved one after
   another exactly as in step 1, and every retraction is waited for.
3. Finally the backlog is left to drain (``--drain-timeout``) and the bench checks
   that no dispatch of any resolved alert (re-publications included) reached an
   operator after that alert's retraction (must be 0), and that no queued alert's
   dispatch reached an operator more than 1 s after its retraction record was in
   Kafka (must be 0: issue 5 says a dispatch still queued when the retraction is
   decided is suppressed; the second of grace covers the worker fetching it).

Latency = ``perf_counter()`` at each operator's receipt of the retraction minus
``perf_counter()`` just before ``POST /v1/alerts/{id}/resolve`` was sent; "all" is
the max over the three operators. The receiver runs in this process (see
``_harness.OperatorReceiver``: every signature verified). The bench starts its own
embedded broker and points the service at it, so it can read offsets and produce
the backlog. ``--dispatch-delay-ms`` makes the receivers answer dispatches (only)
slowly, which holds the backlog in place instead of letting it drain at full speed.

Exit status 1 on a correctness failure: an HTTP error, a retraction or measured
dispatch never received, a dispatch received after its alert's retraction, a queued
dispatch not suppressed (as above), a bad signature, an unrecognised payload. Timings
are never asserted.

Usage::

    .venv/bin/python bench/retraction.py [--db sqlite|postgres|both] [--alerts 100]
        [--backlog 10000] [--queued-alerts 20] [--dispatch-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from _harness import (
    Behaviour,
    Broker,
    OperatorReceiver,
    ProduceProbe,
    Verdict,
    bench_main,
    bench_session,
    group_lag,
    ratio,
    summary_header,
    true_end_offsets,
)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from e2e_latency import (
    OPERATORS,
    alert_body,
    cpu_seconds,
    create,
    fmt_stats,
    ms_stats,
    resolve,
)

from services.messaging.topics import Topics, consumer_group

TOPICS = Topics("kayip")
GROUPS = {op: consumer_group(TOPICS.prefix, op) for op in OPERATORS}
WAIT_DISPATCH_S = 30.0
WAIT_RETRACTION_S = 120.0
#: A worker fetches a record within milliseconds; a queued dispatch that reaches an
#: operator this long after its alert's retraction was in Kafka was not suppressed.
KNOWN_AFTER_S = 1.0


@dataclass
class Resolves:
    """One sequence of resolves and what the operators saw of it."""

    alert_ids: list[str] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # alert id -> before the POST
    sent_wall: dict[str, float] = field(default_factory=dict)  # the same, time.time()
    http: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    all_ops: list[float] = field(default_factory=list)
    all_by_alert: dict[str, float] = field(default_factory=dict)
    #: all_ops of the resolves sent while every operator still had backlog dispatches owed.
    during_backlog: list[float] = field(default_factory=list)
    per_op: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: Per operator, alerts that never reached it, dispatch nor retraction: resolved
    #: while the dispatch was still in the outbox (the README's suppression rule).
    neither: dict[str, list[str]] = field(default_factory=dict)
    # Where the time goes (wall clocks of this process, the service and the broker):
    to_event: list[float] = field(default_factory=list)  # POST sent -> event occurred_at
    to_kafka: list[float] = field(default_factory=list)  # occurred_at -> record timestamp
    to_operators: list[float] = field(default_factory=list)  # record -> last operator
    #: Per operator, backlog dispatches it had not received when each resolve was sent.
    owed_at_resolve: dict[str, list[int]] = field(default_factory=dict)
    #: Per operator, backlog dispatches it received between each resolve and its
    #: retraction: how much queued dispatch traffic the retraction waited behind.
    overtaken_by: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    lag_before: dict[str, int] = field(default_factory=dict)
    lag_after: dict[str, int] = field(default_factory=dict)
    backlog_owed_before: dict[str, int] = field(default_factory=dict)
    backlog_owed_after: dict[str, int] = field(default_factory=dict)
    created_errors: Counter[str] = field(default_factory=Counter)
    undispatched: int = 0
    active: Resolves = field(default_factory=Resolves)
    queued: Resolves = field(default_factory=Resolves)
    #: Broker produce-ack latency sampled while the resolves ran (see ProduceProbe).
    probe: list[float] = field(default_factory=list)
    #: CPU seconds of the service, the broker and this process while the resolves ran.
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0


@dataclass
class EngineRun:
    engine: str
    phases: list[Phase] = field(default_factory=list)
    produced: int = 0
    produce_seconds: float = 0.0
    template_bytes: dict[str, int] = field(default_factory=dict)
    drained_seconds: float | None = None
    dispatch_after_retraction: int = 0
    queued_dispatched_after_resolve: int = 0
    queued_dispatched_before_resolve: int = 0
    #: Queued alerts' dispatches received more than KNOWN_AFTER_S after their
    #: retraction record was in Kafka: the worker could have known, and must suppress.
    unsuppressed: int = 0
    #: Alert id -> first retraction record's broker timestamp (Unix seconds).
    retraction_published: dict[str, float] = field(default_factory=dict)
    verdict: Verdict = field(default_factory=Verdict)

    def failures(self) -> list[str]:
        found = []
        for p in self.phases:
            errors = sum(p.created_errors.values()) + sum(
                sum(r.errors.values()) for r in (p.active, p.queued)
            )
            missing = sum(len(m) for r in (p.active, p.queued) for m in r.missing.values())
            if errors:
                found.append(f"{p.name}: {errors} HTTP errors")
            if missing or p.undispatched:
                found.append(
                    f"{p.name}: {missing} retractions and {p.undispatched} dispatches missing"
                )
        if self.dispatch_after_retraction:
            found.append(f"{self.dispatch_after_retraction} dispatches after their retraction")
        if self.unsuppressed:
            found.append(
                f"{self.unsuppressed} queued dispatches delivered more than {KNOWN_AFTER_S:g} s "
                "after their retraction was in Kafka (not suppressed)"
            )
        found += self.verdict.failures()
        return found


# --------------------------------------------------------------------------- steps


async def create_active(
    client: httpx.AsyncClient,
    receiver: OperatorReceiver,
    rng: random.Random,
    count: int,
    first_seq: int,
    phase: Phase,
) -> list[str]:
    """``count`` alerts, created 10 at a time, then waited for at every operator."""
    ids: list[str] = []
    for start in range(0, count, 10):
        bodies = [alert_body(rng, first_seq + i) for i in range(start, min(count, start + 10))]
        for alert_id, outcome in await asyncio.gather(*(create(client, b) for b in bodies)):
            if alert_id is None:
                phase.created_errors[outcome] += 1
            else:
                ids.append(alert_id)
    missing = await receiver.wait_all(ids, "dispatch", WAIT_DISPATCH_S)
    phase.undispatched += sum(len(m) for m in missing.values())
    return ids


async def resolve_sequentially(
    client: httpx.AsyncClient, alert_ids: list[str], into: Resolves
) -> None:
    for alert_id in alert_ids:
        t0, wall = time.perf_counter(), time.time()
        outcome = await resolve(client, alert_id)
        if outcome != "202":
            into.errors[outcome] += 1
            continue
        into.http.append(time.perf_counter() - t0)
        into.sent[alert_id] = t0
        into.sent_wall[alert_id] = wall
        into.alert_ids.append(alert_id)


async def collect(receiver: OperatorReceiver, into: Resolves, timeout_s: float) -> None:
    into.missing = await receiver.wait_all(into.alert_ids, "retraction", timeout_s)
    into.per_op = {op: [] for op in receiver.operators}
    for alert_id in into.alert_ids:
        arrivals = [receiver.arrival(op, alert_id, "retraction") for op in receiver.operators]
        for op, arrival in zip(receiver.operators, arrivals, strict=True):
            if arrival is not None:
                into.per_op[op].append(arrival.received - into.sent[alert_id])
        if all(a is not None for a in arrivals):
            latency = max(a.received for a in arrivals if a) - into.sent[alert_id]
            into.all_ops.append(latency)
            into.all_by_alert[alert_id] = latency


async def dispatch_records(bootstrap: str, alert_id: str) -> list[dict[str, Any]]:
    """The DispatchRequested records the service published for one alert (one per operator)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        ends = await true_end_offsets(consumer, TOPICS.alert_events)
        await consumer.seek_to_beginning(*ends)
        found: list[dict[str, Any]] = []
        key = alert_id.encode()
        unread = set(ends)
        while unread:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                found += [json.loads(r.value) for r in records if r.key == key and r.value]
            unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
        return [r for r in found if r.get("type") == "alert.dispatch_requested"]
    finally:
        await consumer.stop()


async def produce_backlog(bootstrap: str, template: list[dict[str, Any]], copies: int) -> set[str]:
    """``copies`` alerts' worth of dispatch records (one per operator each), new ids.
    Returns the new alert ids once the broker has acknowledged every record."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1 << 20,
        enable_idempotence=False,
    )
    await producer.start()
    try:
        futures = []
        ids: set[str] = set()
        now = datetime.now(UTC).isoformat()
        for _ in range(copies):
            alert_id = str(uuid.uuid4())
            ids.add(alert_id)
            for record in template:
                value = {**record, "alert_id": alert_id, "event_id": str(uuid.uuid4())}
                value["occurred_at"] = now
                futures.append(
                    await producer.send(
                        TOPICS.alert_events,
                        value=json.dumps(value).encode(),
                        key=alert_id.encode(),
                    )
                )
        await asyncio.gather(*futures)
        return ids
    finally:
        await producer.stop()


def backlog_arrivals(receiver: OperatorReceiver, backlog: set[str]) -> dict[str, list[float]]:
    """Per operator, the sorted arrival times of backlog dispatches (first copies)."""
    return {
        op: sorted(
            a.received
            for a in log.accepted
            if a.kind == "dispatch" and not a.duplicate and a.alert_id in backlog
        )
        for op, log in receiver.logs.items()
    }


def backlog_owed(receiver: OperatorReceiver, backlog: set[str]) -> dict[str, int]:
    """Backlog dispatches each operator has not received yet."""
    return {op: len(backlog) - len(t) for op, t in backlog_arrivals(receiver, backlog).items()}


def owed_at_resolves(receiver: OperatorReceiver, backlog: set[str], into: Resolves) -> None:
    """For each resolve, how many backlog dispatches each operator was still owed."""
    for op, times in backlog_arrivals(receiver, backlog).items():
        into.owed_at_resolve[op] = [
            len(backlog) - bisect.bisect_left(times, into.sent[a]) for a in into.alert_ids
        ]
        into.overtaken_by[op] = []
        for alert_id in into.alert_ids:
            retraction = receiver.arrival(op, alert_id, "retraction")
            if retraction is not None:
                into.overtaken_by[op].append(
                    bisect.bisect_left(times, retraction.received)
                    - bisect.bisect_left(times, into.sent[alert_id])
                )
    for i, alert_id in enumerate(into.alert_ids):
        if alert_id in into.all_by_alert and all(o[i] for o in into.owed_at_resolve.values()):
            into.during_backlog.append(into.all_by_alert[alert_id])


async def retraction_records(bootstrap: str) -> dict[str, tuple[float, float]]:
    """Alert id -> (event occurred_at, broker record timestamp), both Unix seconds, of
    the first retraction record the service published for each alert (the reconciler
    may publish copies later)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        ends = await true_end_offsets(consumer, TOPICS.retractions)
        await consumer.seek_to_beginning(*ends)
        found: dict[str, tuple[float, float]] = {}
        unread = {tp for tp, end in ends.items() if end}
        while unread:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                for r in records:
                    event = json.loads(r.value or b"{}")
                    occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
                    first = found.get(event["alert_id"])
                    if first is None or r.timestamp / 1000 < first[1]:  # not a re-publication
                        found[event["alert_id"]] = (occurred, r.timestamp / 1000)
            unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()


def breakdown(
    receiver: OperatorReceiver, records: dict[str, tuple[float, float]], r: Resolves
) -> None:
    """Split each resolve -> last operator into API, relay and worker shares."""
    for alert_id in r.alert_ids:
        arrivals = [receiver.arrival(op, alert_id, "retraction") for op in receiver.operators]
        if alert_id not in records or None in arrivals:
            continue
        occurred, published = records[alert_id]
        r.to_event.append(occurred - r.sent_wall[alert_id])
        r.to_kafka.append(published - occurred)
        r.to_operators.append(max(a.wall for a in arrivals if a) - published)


async def lag(bootstrap: str) -> dict[str, int]:
    per_group = await group_lag(bootstrap, GROUPS.values(), TOPICS.alert_events)
    return {op: per_group[group] for op, group in GROUPS.items()}


async def wait_drained(bootstrap: str, timeout_s: float) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if not any((await lag(bootstrap)).values()):
            return time.perf_counter() - started
        await asyncio.sleep(1.0)
    return None


def accept_neither(receiver: OperatorReceiver, resolves: Resolves) -> None:
    """A retraction missing at an operator that never got the alert is the documented
    outcome for an alert resolved before its dispatch left the outbox, not a loss.
    Called after the drain, so a dispatch that came late would be seen (and counted
    by ``order_checks``)."""
    for op, ids in list(resolves.missing.items()):
        never = [a for a in ids if receiver.arrival(op, a, "dispatch") is None]
        resolves.missing[op] = [a for a in ids if a not in never]
        resolves.neither[op] = never


def order_checks(
    receiver: OperatorReceiver, run: EngineRun, resolved: dict[str, float], queued: set[str]
) -> None:
    """Any dispatch copy (re-publications too) received after its alert's retraction
    reached that operator (must be 0); queued alerts' dispatches received after (or
    before) their resolve was sent."""
    for op, log in receiver.logs.items():
        for arrival in log.accepted:
            if arrival.kind != "dispatch" or arrival.alert_id not in resolved:
                continue
            retraction = receiver.arrival(op, arrival.alert_id, "retraction")
            if retraction is not None and arrival.received > retraction.received:
                run.dispatch_after_retraction += 1
            if arrival.alert_id in queued:
                if arrival.received > resolved[arrival.alert_id]:
                    run.queued_dispatched_after_resolve += 1
                else:
                    run.queued_dispatched_before_resolve += 1
                published = run.retraction_published.get(arrival.alert_id)
                if published is not None and arrival.wall > published + KNOWN_AFTER_S:
                    run.unsuppressed += 1


# --------------------------------------------------------------------------- phases


class Watch:
    """CPU of the service, the broker and this process, and the broker's produce
    latency, over a stretch of the run."""

    def __init__(self, service_pid: int, broker: Broker, phase: Phase) -> None:
        self._pids = {"service": service_pid, "broker": broker.pid}
        self._probe = ProduceProbe(broker.bootstrap)
        self._phase = phase
        self._cpu: dict[str, float] = {}
        self._started = 0.0

    async def __aenter__(self) -> Watch:
        self._cpu = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        self._cpu["bench"] = time.process_time()
        self._started = time.perf_counter()
        await self._probe.__aenter__()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._probe.__aexit__()
        self._phase.wall = time.perf_counter() - self._started
        now = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        now["bench"] = time.process_time()
        self._phase.cpu = {name: now[name] - self._cpu[name] for name in now}
        self._phase.probe = self._probe.latencies


async def phase_without_backlog(
    client: httpx.AsyncClient,
    receiver: OperatorReceiver,
    rng: random.Random,
    broker: Broker,
    service_pid: int,
    args: argparse.Namespace,
) -> Phase:
    phase = Phase("without backlog")
    bootstrap = broker.bootstrap
    ids = await create_active(client, receiver, rng, args.alerts, 0, phase)
    phase.lag_before = await lag(bootstrap)
    async with Watch(service_pid, broker, phase):
        await resolve_sequentially(client, ids, phase.active)
        await collect(receiver, phase.active, WAIT_RETRACTION_S)
    phase.lag_after = await lag(bootstrap)
    breakdown(receiver, await retraction_records(bootstrap), phase.active)
    return phase


async def phase_with_backlog(
    client: httpx.AsyncClient,
    receiver: OperatorReceiver,
    rng: random.Random,
    broker: Broker,
    service_pid: int,
    args: argparse.Namespace,
    run: EngineRun,
) -> Phase:
    phase = Phase("with backlog")
    bootstrap = broker.bootstrap
    ids = await create_active(client, receiver, rng, args.alerts, 10_000, phase)
    template = await dispatch_records(bootstrap, ids[0])
    if len(template) != len(OPERATORS):
        raise RuntimeError(f"expected {len(OPERATORS)} dispatch records, found {len(template)}")
    for op in receiver.operators:
        receiver.behaviour[op] = Behaviour(
            delay_s=args.dispatch_delay_ms / 1000, delay_kinds=frozenset({"dispatch"})
        )
    run.template_bytes = {r["operators"][0]: len(json.dumps(r)) for r in template}
    started = time.perf_counter()
    backlog = await produce_backlog(bootstrap, template, -(-args.backlog // len(template)))
    run.produced = len(backlog) * len(template)
    run.produce_seconds = time.perf_counter() - started
    queued: list[str] = []
    for i in range(args.queued_alerts):
        alert_id, outcome = await create(client, alert_body(rng, 20_000 + i))
        if alert_id is None:
            phase.created_errors[outcome] += 1
        else:
            queued.append(alert_id)
    phase.lag_before = await lag(bootstrap)
    phase.backlog_owed_before = backlog_owed(receiver, backlog)
    async with Watch(service_pid, broker, phase):
        # Queued alerts first, while their dispatches are surely still behind the backlog.
        await resolve_sequentially(client, queued, phase.queued)
        await resolve_sequentially(client, ids, phase.active)
        phase.lag_after = await lag(bootstrap)
        phase.backlog_owed_after = backlog_owed(receiver, backlog)
        await collect(receiver, phase.active, WAIT_RETRACTION_S)
        await collect(receiver, phase.queued, WAIT_RETRACTION_S)
    for op in receiver.operators:
        receiver.behaviour[op] = Behaviour()
    run.drained_seconds = await wait_drained(bootstrap, args.drain_timeout)
    records = await retraction_records(bootstrap)
    run.retraction_published = {alert_id: ts for alert_id, (_, ts) in records.items()}
    for resolves in (phase.active, phase.queued):
        breakdown(receiver, records, resolves)
        owed_at_resolves(receiver, backlog, resolves)
    return phase


def print_resolves(title: str, r: Resolves) -> None:
    if not r.alert_ids and not r.errors:
        return
    print(f"  {title}: {len(r.alert_ids)} resolved, HTTP errors {dict(r.errors) or 0}")
    print(fmt_stats("resolve -> all operators retracted", r.all_ops))
    for op, values in r.per_op.items():
        print(fmt_stats(f"  -> {op}", values) + f"  missing {len(r.missing.get(op, []))}")
    if r.owed_at_resolve:
        print(
            fmt_stats("  ... sent while backlog remained", r.during_backlog)
            + "  (every operator still owed backlog dispatches)"
        )
    print(fmt_stats("POST .../resolve round trip", r.http))
    print("    where the time goes (wall clocks; max over the operators):")
    print(fmt_stats("  POST sent -> event occurred_at", r.to_event))
    print(fmt_stats("  occurred_at -> Kafka record", r.to_kafka))
    print(fmt_stats("  Kafka record -> last operator", r.to_operators))
    if r.owed_at_resolve:
        owed = {
            op: f"{min(v, default=0)}..{max(v, default=0)}" for op, v in r.owed_at_resolve.items()
        }
        print(f"    backlog dispatches still owed when each resolve was sent (min..max): {owed}")
        behind = {
            op: f"{min(v, default=0)}/{statistics.median(v or [0]):.0f}/{max(v, default=0)}"
            for op, v in r.overtaken_by.items()
        }
        print(
            "    backlog dispatches each operator received between a resolve and its "
            f"retraction (min/median/max): {behind}"
        )


def print_phase(phase: Phase) -> None:
    print(f"\n-- {phase.name}")
    print(f"  dispatch-topic lag per operator group before the first resolve: {phase.lag_before}")
    print(f"  ... and after the last resolve returned: {phase.lag_after}")
    if phase.backlog_owed_before:
        print(
            f"  backlog dispatches not yet received, before / after the resolves: "
            f"{phase.backlog_owed_before} / {phase.backlog_owed_after}"
        )
    print_resolves("active alerts (dispatch delivered before)", phase.active)
    print_resolves("queued alerts (dispatch queued behind the backlog)", phase.queued)
    print(fmt_stats("broker produce ack (probe, 4/s)", phase.probe))
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phase.cpu.items())
    print(f"  CPU from the first resolve to the last retraction: {cpu} over {phase.wall:.1f} s")


async def run_engine(engine: str, args: argparse.Namespace) -> EngineRun:
    run = EngineRun(engine)
    async with bench_session(
        engine, args.adapter, own_broker=True, service_settings=dict(args.settings)
    ) as bench:
        receiver, broker = bench.receiver, bench.broker
        assert broker is not None
        session = (bench.client, receiver, bench.rng, broker, bench.service.process.pid, args)
        phase = await phase_without_backlog(*session)
        print_phase(phase)
        run.phases.append(phase)
        phase = await phase_with_backlog(*session, run)
        print(
            f"\n  backlog: {run.produced} dispatch records produced in "
            f"{run.produce_seconds:.1f} s ({run.produced // len(OPERATORS)} owed to each "
            f"operator; every group reads all of them); bytes per record {run.template_bytes}"
        )
        print_phase(phase)
        run.phases.append(phase)
        drained = run.drained_seconds
        print(
            "  backlog drained "
            + (f"{drained:.0f} s after the retractions" if drained is not None else "NOT")
            + f" (timeout {args.drain_timeout:.0f} s)"
        )
        resolved = {**phase.active.sent, **phase.queued.sent, **run.phases[0].active.sent}
        accept_neither(receiver, phase.queued)
        neither = sum(len(v) for v in phase.queued.neither.values())
        print(
            f"  queued alerts that reached an operator neither as alert nor as retraction "
            f"(suppressed in the outbox): {neither}; retractions still missing: "
            f"{sum(len(v) for v in phase.queued.missing.values())} (must be 0)"
        )
        order_checks(receiver, run, resolved, set(phase.queued.sent))
        print(
            f"  dispatches received after their alert's retraction: "
            f"{run.dispatch_after_retraction} (must be 0)"
        )
        print(
            f"  queued alerts' dispatches received after their resolve: "
            f"{run.queued_dispatched_after_resolve} (before it: "
            f"{run.queued_dispatched_before_resolve}); more than {KNOWN_AFTER_S:g} s after "
            f"the retraction record was in Kafka: {run.unsuppressed} (must be 0)"
        )
    run.verdict = bench.verdict
    return run


def print_summary(runs: list[EngineRun], args: argparse.Namespace) -> None:
    summary_header(
        f"{args.alerts} alerts resolved sequentially per phase; backlog {args.backlog} "
        f"dispatch records; dispatch answer delay {args.dispatch_delay_ms:g} ms; adapters "
        f"{args.adapter}; settings {dict(args.settings) or 'default'}"
    )
    print(
        "resolve -> all 3 operators received the retraction, ms p50/p99 (n); 'during' = "
        "resolves sent while every operator still owed backlog dispatches; late disp = "
        "dispatches after their retraction, unsupp = queued dispatches not suppressed, "
        "dups = duplicate deliveries (all must be 0 but dups)"
    )
    header = (
        f"{'engine':<8} {'without backlog':>22} {'with backlog, all':>22} "
        f"{'with backlog, during':>22} {'ratio p50/p99':>15} {'lag at 1st':>10} "
        f"{'late disp':>9} {'unsupp':>6} {'dups':>5}"
    )
    print(header)
    print("-" * len(header))

    def cell(values: list[float]) -> str:
        st = ms_stats(values)
        return f"{st['p50']:.0f}/{st['p99']:.0f} ({len(values)})"

    for run in runs:
        if len(run.phases) < 2:
            continue
        before, during = run.phases[0].active, run.phases[1].active
        a, b = ms_stats(before.all_ops), ms_stats(during.during_backlog)
        lag_cell = min(run.phases[1].lag_before.values(), default=0)
        print(
            f"{run.engine:<8} {cell(before.all_ops):>22} {cell(during.all_ops):>22} "
            f"{cell(during.during_backlog):>22} "
            f"{ratio(b['p50'], a['p50']) + '/' + ratio(b['p99'], a['p99']):>15} "
            f"{lag_cell:>10} {run.dispatch_after_retraction:>9} {run.unsuppressed:>6} "
            f"{run.verdict.duplicates:>5}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100, help="alerts resolved per phase")
    parser.add_argument(
        "--backlog",
        type=int,
        default=15_000,
        help="dispatch records produced (a third of them to each operator)",
    )
    parser.add_argument("--queued-alerts", type=int, default=10)
    parser.add_argument("--dispatch-delay-ms", type=float, default=0.0)
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    return bench_main(parser, run_engine, print_summary)


if __name__ == "__main__":
    raise SystemExit(main())
