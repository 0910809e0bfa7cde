"""Operator fan-out under sustained load, with and without one slow operator (issue 4).

What is measured, and why
-------------------------
Every alert goes to three operators, each through its own adapter worker (its own
consumer group, concurrency, rate limit and circuit breaker). The promise is that one
slow or throttling operator does not slow the others. This bench shows it by running,
in ONE service process per database engine, the same open-loop load twice or more:

1. ``baseline``: every operator endpoint answers at once;
2. ``delay``: the slow operator (default vodafone) answers every request after
   ``--slow-ms`` (default 200 ms);
3. ``throttle``: the slow operator answers ``--throttle-fraction`` (default 20 %) of
   requests with 429 and ``Retry-After: --retry-after`` (default 1 s), at random;
4. ``control``: the baseline again. Its ratios to the first baseline show how much
   the figures drift on their own (the machine is shared), which is the yardstick
   for reading the other ratios.

For each phase: R alerts/s (``--rate``, default 10) for S seconds (``--seconds``,
default 20) through ``POST /v1/alerts``, started on a fixed schedule whatever the
responses do (open loop, so a slow service cannot slow the load down and hide its own
latency). The default rate stays below what the single service process can take on
this 2-core machine (it saturates near 20-30 alerts/s, i.e. 60-90 webhooks/s; beyond
that every operator's latency grows with the queue, slow operator or not). Then it waits
until every operator has every alert (or ``--drain-timeout``) before the next phase.

Per operator it prints deliveries/s and the latency from the create request being sent
to that operator answering 2xx to the dispatch, i.e. the delivery being complete
(p50/p95/p99/max; for the slow operator also to the request's arrival), and the ratio of each
phase's percentiles to the baseline's: the slow operator's grows, the others' should
stay near 1.0x. Also: alerts accepted/s, HTTP errors, duplicate deliveries (same
webhook-id accepted twice), alerts never delivered to an operator, bad signatures.

The operators use their real default adapters (Turkcell JSON, Vodafone CAP 1.2 XML,
Türk Telekom compact JSON) unless ``--adapter standard_webhooks``; the receiver (in
this process, see ``_harness.OperatorReceiver``) verifies every Standard Webhooks
signature and reads every format. The service is ``kayip-alarm serve`` as a
subprocess with a fresh SQLite file or PostgreSQL database, simulator and link tests
off. The receiver and the load generator share this process's event loop, so their
``perf_counter()`` readings compare directly; the slow operator's artificial delay is
a timer, it costs no CPU.

Exit status 1 on a correctness failure (an HTTP error, an alert missing at an
operator after the drain, a bad signature, a payload no adapter recognises); timings
are never asserted.

Usage::

    .venv/bin/python bench/fanout.py [--db sqlite|postgres|both] [--rate 10] [--seconds 20]
        [--slow-operator vodafone] [--slow-mode delay|throttle|both] [--slow-ms 200]
        [--throttle-fraction 0.2] [--retry-after 1] [--adapter standard_webhooks]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from _harness import (
    Behaviour,
    OperatorReceiver,
    Verdict,
    bench_main,
    bench_session,
    ratio,
    summary_header,
)
from e2e_latency import (
    OPERATORS,
    alert_body,
    cpu_seconds,
    create,
    fmt_stats,
    ms_stats,
)


@dataclass
class OperatorFigures:
    latencies: list[float] = field(default_factory=list)  # request sent -> 2xx sent back
    received: list[float] = field(default_factory=list)  # request sent -> request arrived
    delivered: int = 0
    missing: int = 0
    duplicates: int = 0
    throttled: int = 0
    last_arrival: float = 0.0

    def per_second(self, started: float) -> float:
        span = self.last_arrival - started
        return self.delivered / span if span > 0 else 0.0


@dataclass
class Phase:
    name: str
    description: str
    started: float = 0.0
    load_seconds: float = 0.0
    accepted: int = 0
    last_accept: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    create_http: list[float] = field(default_factory=list)
    drain_seconds: float = 0.0
    service_cpu: float = float("nan")
    bench_cpu: float = float("nan")
    ops: dict[str, OperatorFigures] = field(default_factory=dict)

    @property
    def accepted_per_s(self) -> float:
        span = self.last_accept - self.started
        return self.accepted / span if span > 0 else 0.0

    @property
    def missing(self) -> int:
        return sum(f.missing for f in self.ops.values())


@dataclass
class EngineRun:
    engine: str
    phases: list[Phase] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)

    def failures(self) -> list[str]:
        errors = sum(sum(p.errors.values()) for p in self.phases)
        missing = sum(p.missing for p in self.phases)
        found = [f"{errors} HTTP errors"] if errors else []
        found += [f"{missing} deliveries never received"] if missing else []
        found += self.verdict.failures()
        return found


def phase_plan(args: argparse.Namespace) -> list[tuple[str, str, Behaviour]]:
    plan = [("baseline", "every operator answers at once", Behaviour())]
    if args.slow_mode in ("delay", "both"):
        plan.append(
            (
                "delay",
                f"{args.slow_operator} answers every request after {args.slow_ms:g} ms",
                Behaviour(delay_s=args.slow_ms / 1000),
            )
        )
    if args.slow_mode in ("throttle", "both"):
        plan.append(
            (
                "throttle",
                f"{args.slow_operator} answers {args.throttle_fraction:.0%} of requests "
                f"429 Retry-After: {args.retry_after}",
                Behaviour(throttle_fraction=args.throttle_fraction, retry_after_s=args.retry_after),
            )
        )
    if not args.no_control:
        plan.append(
            ("control", "every operator at once again: the run's drift and noise", Behaviour())
        )
    return plan


async def open_loop(
    client: httpx.AsyncClient,
    rng: random.Random,
    rate: float,
    seconds: float,
    first_seq: int,
    phase: Phase,
) -> dict[str, float]:
    """Start one create every 1/rate s for ``seconds``, never waiting for responses.
    Returns alert id -> perf_counter just before its request was sent."""
    sent: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []

    async def one(seq: int) -> None:
        t0 = time.perf_counter()
        alert_id, outcome = await create(client, alert_body(rng, seq))
        done = time.perf_counter()
        if alert_id is None:
            phase.errors[outcome] += 1
            return
        phase.create_http.append(done - t0)
        phase.last_accept = max(phase.last_accept, done)
        sent[alert_id] = t0

    count = int(rate * seconds)
    for i in range(count):
        delay = phase.started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(first_seq + i)))
    await asyncio.gather(*tasks)
    phase.load_seconds = time.perf_counter() - phase.started
    phase.accepted = len(sent)
    return sent


async def run_phase(
    client: httpx.AsyncClient,
    receiver: OperatorReceiver,
    rng: random.Random,
    args: argparse.Namespace,
    plan: tuple[str, str, Behaviour],
    first_seq: int,
    service_pid: int,
) -> Phase:
    name, description, behaviour = plan
    phase = Phase(name, description)
    for op in receiver.operators:
        receiver.behaviour[op] = behaviour if op == args.slow_operator else Behaviour()
    before = {op: (log.duplicates, log.throttled) for op, log in receiver.logs.items()}
    cpu_service, cpu_bench = cpu_seconds(service_pid), time.process_time()
    phase.started = time.perf_counter()
    sent = await open_loop(client, rng, args.rate, args.seconds, first_seq, phase)
    load_done = time.perf_counter()
    missing = await receiver.wait_all(sent, "dispatch", args.drain_timeout)
    phase.drain_seconds = time.perf_counter() - load_done
    phase.service_cpu = cpu_seconds(service_pid) - cpu_service
    phase.bench_cpu = time.process_time() - cpu_bench
    for op in receiver.operators:
        log = receiver.logs[op]
        figures = OperatorFigures(
            missing=len(missing[op]),
            duplicates=log.duplicates - before[op][0],
            throttled=log.throttled - before[op][1],
        )
        for alert_id, t0 in sent.items():
            arrival = receiver.arrival(op, alert_id, "dispatch")
            if arrival is None:
                continue
            figures.delivered += 1
            figures.latencies.append(arrival.answered - t0)
            figures.received.append(arrival.received - t0)
            figures.last_arrival = max(figures.last_arrival, arrival.received)
        phase.ops[op] = figures
    for op in receiver.operators:
        receiver.behaviour[op] = Behaviour()
    return phase


def print_phase(phase: Phase, baseline: Phase | None, slow_operator: str) -> None:
    print(f"\n-- phase {phase.name}: {phase.description}")
    print(
        f"  load: {phase.accepted} alerts accepted in {phase.load_seconds:.1f} s "
        f"({phase.accepted_per_s:.1f}/s), HTTP errors {sum(phase.errors.values())} "
        f"{dict(phase.errors) or ''}; drain after the load {phase.drain_seconds:.1f} s"
    )
    print(fmt_stats("POST /v1/alerts round trip", phase.create_http))
    for op, f in phase.ops.items():
        mark = " (slow)" if op == slow_operator and phase.name != "baseline" else ""
        print(
            f"  {op + mark:<20} delivered {f.delivered} ({f.per_second(phase.started):.1f}/s), "
            f"missing {f.missing}, duplicates {f.duplicates}, 429s sent {f.throttled}"
        )
        print(fmt_stats("  sent -> operator answered 2xx", f.latencies))
        if mark:
            print(fmt_stats("  sent -> request arrived", f.received))
        if baseline is not None:
            now, was = ms_stats(f.latencies), ms_stats(baseline.ops[op].latencies)
            print(
                f"    vs baseline: p50 {ratio(now['p50'], was['p50'])}  "
                f"p95 {ratio(now['p95'], was['p95'])}  p99 {ratio(now['p99'], was['p99'])}"
            )
    print(
        f"  CPU: service {phase.service_cpu:.1f} s, bench {phase.bench_cpu:.1f} s over "
        f"{phase.load_seconds + phase.drain_seconds:.1f} s wall on {os.cpu_count()} cores"
    )


async def run_engine(engine: str, args: argparse.Namespace) -> EngineRun:
    run = EngineRun(engine)
    async with bench_session(
        engine, args.adapter, own_broker=False, service_settings=dict(args.settings)
    ) as bench:
        baseline: Phase | None = None
        for i, plan in enumerate(phase_plan(args)):
            phase = await run_phase(
                bench.client,
                bench.receiver,
                bench.rng,
                args,
                plan,
                i * 100_000,
                bench.service.process.pid,
            )
            print_phase(phase, baseline, args.slow_operator)
            run.phases.append(phase)
            baseline = baseline or phase
    run.verdict = bench.verdict
    return run


def print_summary(runs: list[EngineRun], args: argparse.Namespace) -> None:
    summary_header(
        f"{args.rate:g} alerts/s for {args.seconds:g} s per phase; slow operator "
        f"{args.slow_operator}; adapters {args.adapter}"
    )
    print(
        "latency = create request sent -> the operator answered 2xx to the dispatch (the "
        "delivery is done), ms p50/p95/p99; ratio = p50 and p99 against the same operator's "
        "baseline"
    )
    header = (
        f"{'engine':<8} {'phase':<9} {'acc/s':>6} {'err':>4} {'miss':>5} {'dup':>4}  "
        + "  ".join(f"{op + ' del/s, latency, ratio':<44}" for op in OPERATORS)
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        base = run.phases[0]
        for phase in run.phases:
            cells = []
            for op in OPERATORS:
                f = phase.ops[op]
                now, was = ms_stats(f.latencies), ms_stats(base.ops[op].latencies)
                rel = (
                    ""
                    if phase is base
                    else f" {ratio(now['p50'], was['p50'])}/{ratio(now['p99'], was['p99'])}"
                )
                cells.append(
                    f"{f.per_second(phase.started):5.1f} "
                    f"{now['p50']:.0f}/{now['p95']:.0f}/{now['p99']:.0f}{rel}".ljust(44)
                )
            dups = sum(f.duplicates for f in phase.ops.values())
            print(
                f"{run.engine:<8} {phase.name:<9} {phase.accepted_per_s:6.1f} "
                f"{sum(phase.errors.values()):4d} {phase.missing:5d} {dups:4d}  " + "  ".join(cells)
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="load per phase")
    parser.add_argument("--slow-operator", choices=OPERATORS, default="vodafone")
    parser.add_argument("--slow-mode", choices=["delay", "throttle", "both"], default="both")
    parser.add_argument("--slow-ms", type=float, default=200.0)
    parser.add_argument("--throttle-fraction", type=float, default=0.2)
    parser.add_argument("--retry-after", type=int, default=1, help="seconds, on each 429")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--no-control", action="store_true", help="skip the closing repeat of the baseline"
    )
    return bench_main(parser, run_engine, print_summary)


if __name__ == "__main__":
    raise SystemExit(main())
