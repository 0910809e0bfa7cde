"""End-to-end latency and throughput of kayip-alarm: API call to signed webhook at every operator.

What is measured, and why
-------------------------
The number that matters for a missing-person alert is not how fast ``POST /v1/alerts``
answers but how long it takes until *every* mobile operator holds the signed alert (and,
when the person is found, until every operator holds the retraction). That path crosses
the API, the database transaction with the outbox row, the outbox relay, Kafka (the
embedded Kafka-protocol broker), one adapter worker per operator and an HTTP webhook.

For each database engine (SQLite, PostgreSQL) this script:

1. starts an operator receiver in this process (uvicorn + Starlette on a free loopback
   port, one path per operator) that verifies each Standard Webhooks signature with the
   ``standardwebhooks`` package, counts bad signatures and duplicates, and records the
   ``time.perf_counter()`` arrival time of each (alert_id, type) per operator;
2. starts the real service (``kayip-alarm serve``) as a subprocess with a fresh SQLite file
   (temp dir as cwd) or a fresh PostgreSQL database, with its webhooks pointed at the
   receiver and the built-in simulator off;
3. warms up with a few alerts (not measured);
4. sequential phase: N alerts one at a time. create->all = max over the operators of the
   dispatch arrival time minus ``perf_counter()`` just before ``POST /v1/alerts``;
   resolve->all likewise for ``POST /v1/alerts/{id}/resolve`` and the retraction. The HTTP
   round trip of each call is reported too. The next alert starts only after all arrivals
   (or a 10 s timeout, counted as a failure);
5. burst phase: C concurrent clients for S seconds, each looping a create+resolve cycle on
   one shared ``httpx.AsyncClient``; then waits up to 30 s for every dispatch and retraction
   to reach every operator. Reports created alerts/s, HTTP errors, undelivered dispatches
   and retractions, bad signatures and create->all latency under load.

The receiver and the load generator share one event loop, so their ``perf_counter()``
readings are directly comparable. In the burst phase the measured latencies therefore also
include client-side queueing (the receiver competes with 32 clients for this process's
CPU); they are an upper bound on the service's own latency.

Exit status is 1 if any HTTP error, undelivered dispatch/retraction or bad signature was
seen (so the script doubles as a smoke check); timings are never asserted.

Usage::

    /work/venv/bin/python bench/e2e_latency.py [--db sqlite|postgres|both] [-n 200]
        [--burst-seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from operator_adapters.registry import adapter_name, discover
from services.settings import OperatorConfig

OPERATORS = ("turkcell", "vodafone", "turktelekom")
DISPATCH = "alert.dispatch"
RETRACTION = "alert.retraction"
API_KEY = "dev-case-system-key"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL_TEMPLATE = "postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
SEQ_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 30.0
WARMUP_ALERTS = 10
START_TIMEOUT_S = 60.0
CITIES: tuple[tuple[str, float, float], ...] = (
    ("İstanbul", 41.06, 28.99),
    ("Ankara", 39.92, 32.85),
    ("İzmir", 38.42, 27.14),
    ("Bursa", 40.19, 29.06),
    ("Antalya", 36.89, 30.70),
)

Key = tuple[str, str]  # (alert_id, webhook type)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for an empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def ms_stats(values: list[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    return {
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": (max(values) if values else float("nan")) * 1000,
    }


def fmt_stats(label: str, values: list[float]) -> str:
    s = ms_stats(values)
    return (
        f"  {label:<34} n={len(values):<5} p50={s['p50']:8.1f}  p95={s['p95']:8.1f}  "
        f"p99={s['p99']:8.1f}  max={s['max']:8.1f}  ms"
    )


def alert_body(rng: random.Random, seq: int) -> dict[str, Any]:
    city, lat, lon = rng.choice(CITIES)
    now = datetime.now(UTC)
    return {
        "case_reference": f"EGM-2026-{seq:06d}",
        "subject": {
            "category": "child",
            "age": rng.randint(3, 15),
            "description": "Kırmızı montlu, mavi pantolonlu kız çocuğu",
        },
        # +-0.01 deg keeps every circle on land (at +-0.03 an Antalya circle can fall
        # entirely at sea, which the service rightly refuses with 422).
        "last_seen": {
            "lat": round(lat + rng.uniform(-0.01, 0.01), 5),
            "lon": round(lon + rng.uniform(-0.01, 0.01), 5),
            "at": iso(now - timedelta(minutes=5)),
            "place": city,
        },
        "target_area": {"type": "circle", "radius_m": rng.randint(1000, 10000)},
        "languages": ["tr"],
        "consent": {
            "given_by": {"relationship": "parent", "name": "Mehmet Y."},
            "given_at": iso(now - timedelta(minutes=2)),
            "channels": ["sms"],
            "evidence_reference": "EGM-FORM-77",
        },
    }


def machine_info() -> str:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, nproc={os.cpu_count()}, Python {platform.python_version()}"


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of one process (Linux /proc), NaN when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_processes(pid: int) -> dict[str, int]:
    """The service and its direct children (the embedded broker, ``serve``'s adapter
    child), by a short name."""
    processes = {"service": pid}
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError):
                name = Path(f"/proc/{child}/comm").read_text().strip()
                if name.startswith("tansu"):
                    name = "broker"
                elif name.startswith("python"):
                    name = "adapter child"
                processes[name] = int(child)
    return processes


class LoopLag:
    """Samples how late this event loop wakes a 10 ms sleep: a starvation gauge."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append(time.perf_counter() - before - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


# --------------------------------------------------------------------------- receiver


@dataclass
class Receiver:
    """Operator endpoints in this process: verify signatures, record arrival times."""

    secrets_by_op: dict[str, str]
    arrivals: dict[Key, dict[str, float]] = field(default_factory=dict)
    bad_signatures: int = 0
    duplicates: int = 0
    requests: int = 0
    _events: dict[Key, asyncio.Event] = field(default_factory=dict)
    _verifiers: dict[str, Webhook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._verifiers = {op: Webhook(s) for op, s in self.secrets_by_op.items()}
        # Each operator gets its own format (Turkcell JSON, Vodafone CAP XML, Türk
        # Telekom compact JSON): the adapter the service picks reads it back.
        available = discover()
        self._adapters = {
            op: available[adapter_name(op, OperatorConfig(), available)]
            for op in self.secrets_by_op
        }

    def _event(self, key: Key) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
            if len(self.arrivals.get(key, ())) == len(self.secrets_by_op):
                event.set()
        return event

    async def handle(self, request: Request) -> Response:
        arrived = time.perf_counter()
        self.requests += 1
        op = request.path_params["operator"]
        verifier = self._verifiers.get(op)
        if verifier is None:
            return Response(status_code=404)
        body = await request.body()
        try:
            verifier.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError:
            self.bad_signatures += 1
            return Response(status_code=401)
        summary = self._adapters[op].describe(body, request.headers.get("content-type", ""))
        if summary is None:
            return Response(status_code=400)
        key = (str(summary.alert_id), str(summary.type))
        seen = self.arrivals.setdefault(key, {})
        if op in seen:
            self.duplicates += 1
        else:
            seen[op] = arrived
            if len(seen) == len(self.secrets_by_op):
                self._event(key).set()
        return Response(status_code=200)

    def complete(self, key: Key) -> bool:
        return len(self.arrivals.get(key, ())) == len(self.secrets_by_op)

    def last_arrival(self, key: Key) -> float:
        return max(self.arrivals[key].values())

    async def wait(self, key: Key, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._event(key).wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def wait_all(self, keys: list[Key], timeout_s: float) -> list[Key]:
        """Wait until every key is complete or the timeout passes; return the missing keys."""
        deadline = time.perf_counter() + timeout_s
        missing = [k for k in keys if not self.complete(k)]
        while missing and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            missing = [k for k in missing if not self.complete(k)]
        return missing


class _QuietServer(uvicorn.Server):
    """An in-process uvicorn that leaves this process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def run_receiver(receiver: Receiver) -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/ops/{operator}", receiver.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", log_level="warning", backlog=1024
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the receiver stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/ops"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()


# --------------------------------------------------------------------------- service


@dataclass
class Service:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"bench_e2e_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield PG_URL_TEMPLATE.format(db=name)
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def run_service(
    workdir: Path,
    database_url: str | None,
    receiver_url: str,
    secrets_by_op: dict[str, str],
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Service]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYIP_")}
    env.update(
        {
            "KAYIP_ENVIRONMENT": "development",
            "KAYIP_HOST": "127.0.0.1",
            "KAYIP_PORT": str(port),
            "KAYIP_SIMULATOR_ENABLED": "false",
            "KAYIP_LOG_LEVEL": "WARNING",
        }
    )
    if database_url is not None:
        env["KAYIP_DATABASE_URL"] = database_url
    for op, secret in secrets_by_op.items():
        env[f"KAYIP_OPERATORS__{op.upper()}__ENDPOINT_URL"] = f"{receiver_url}/{op}"
        env[f"KAYIP_OPERATORS__{op.upper()}__SIGNING_SECRET"] = secret
    env.update(extra_env or {})
    exe = Path(sys.executable).parent / "kayip-alarm"
    log_path = workdir / "service.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(exe),
            "serve",
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await wait_ready(service)
        yield service
    finally:
        await stop_service(service)


async def wait_ready(service: Service) -> None:
    deadline = time.perf_counter() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if service.process.returncode is not None:
                break
            banner = b"kayip-alarm is running" in service.log_path.read_bytes()
            if banner:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{service.base_url}/healthz")).status_code == 200:
                        return
            await asyncio.sleep(0.1)
    tail = service.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the service did not become ready; log tail:\n{tail}")


async def stop_service(service: Service) -> None:
    process = service.process
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
    # The embedded broker is a child in the service's own session: make sure it is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def scan_log(path: Path) -> tuple[Counter[str], list[str]]:
    """Count warning/error lines and known bad symptoms in the service log."""
    counts: Counter[str] = Counter()
    samples: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        low = line.lower()
        hit = False
        for marker in (
            '"level": "error"',
            '"level": "critical"',
            '"level": "warning"',
            "traceback",
            "database is locked",
            "deadlock",
        ):
            if marker in low:
                counts[marker.strip('"').replace('"level": "', "level=")] += 1
                hit = True
        if hit and len(samples) < 8:
            samples.append(line[:400])
    return counts, samples


# --------------------------------------------------------------------------- phases


@dataclass
class EngineResult:
    engine: str
    seq_create_all: list[float] = field(default_factory=list)
    seq_resolve_all: list[float] = field(default_factory=list)
    seq_create_http: list[float] = field(default_factory=list)
    seq_resolve_http: list[float] = field(default_factory=list)
    seq_failures: int = 0
    seq_cpu_per_cycle: dict[str, float] = field(default_factory=dict)
    seq_http_errors: Counter[str] = field(default_factory=Counter)
    burst_seconds: float = 0.0
    burst_created: int = 0
    burst_resolved: int = 0
    burst_errors: Counter[str] = field(default_factory=Counter)
    burst_undelivered: int = 0
    #: Burst messages an operator did not get because the service recorded them
    #: ``suppressed``: a dispatch still queued when its alert was resolved (issue 5),
    #: or a retraction to an operator that never had the alert.
    burst_suppressed: int = 0
    burst_unretracted: int = 0
    burst_create_all: list[float] = field(default_factory=list)
    burst_create_http: list[float] = field(default_factory=list)
    burst_service_side: list[float] = field(default_factory=list)
    burst_loop_lag: list[float] = field(default_factory=list)
    burst_service_cpu: float = float("nan")
    burst_bench_cpu: float = float("nan")
    bad_signatures: int = 0
    duplicates: int = 0
    log_counts: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.seq_http_errors.values()) + sum(self.burst_errors.values())

    @property
    def undelivered(self) -> int:
        return self.seq_failures + self.burst_undelivered + self.burst_unretracted


#: First response body seen for each error label, to show what went wrong.
ERROR_SAMPLES: dict[str, str] = {}


def _error(label: str, detail: str) -> str:
    ERROR_SAMPLES.setdefault(label, detail[:900])
    return label


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str | None, str]:
    """POST an alert; return (alert id or None, outcome label)."""
    try:
        response = await client.post("/v1/alerts", json=body)
    except httpx.HTTPError as exc:
        return None, _error(type(exc).__name__, repr(exc))
    if response.status_code != 201:
        label = f"create {response.status_code}"
        return None, _error(label, f"{response.text} <- {orjson.dumps(body).decode()}"[:900])
    return str(response.json()["id"]), "201"


async def resolve(client: httpx.AsyncClient, alert_id: str) -> str:
    try:
        response = await client.post(
            f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}
        )
    except httpx.HTTPError as exc:
        return _error(type(exc).__name__, repr(exc))
    if response.status_code != 202:
        return _error(f"resolve {response.status_code}", response.text)
    return "202"


async def warm_up(client: httpx.AsyncClient, receiver: Receiver, rng: random.Random) -> None:
    for i in range(WARMUP_ALERTS):
        alert_id, outcome = await create(client, alert_body(rng, 900000 + i))
        if alert_id is None:
            raise RuntimeError(f"warm-up create failed: {outcome}")
        await receiver.wait((alert_id, DISPATCH), SEQ_TIMEOUT_S)
        await resolve(client, alert_id)
        await receiver.wait((alert_id, RETRACTION), SEQ_TIMEOUT_S)


async def sequential(
    client: httpx.AsyncClient, receiver: Receiver, rng: random.Random, n: int, result: EngineResult
) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        alert_id, outcome = await create(client, alert_body(rng, i))
        t_http = time.perf_counter()
        if alert_id is None:
            result.seq_http_errors[outcome] += 1
            continue
        result.seq_create_http.append(t_http - t0)
        key = (alert_id, DISPATCH)
        if await receiver.wait(key, SEQ_TIMEOUT_S):
            result.seq_create_all.append(receiver.last_arrival(key) - t0)
        else:
            result.seq_failures += 1
        t1 = time.perf_counter()
        outcome = await resolve(client, alert_id)
        t_http = time.perf_counter()
        if outcome != "202":
            result.seq_http_errors[outcome] += 1
            continue
        result.seq_resolve_http.append(t_http - t1)
        key = (alert_id, RETRACTION)
        if await receiver.wait(key, SEQ_TIMEOUT_S):
            result.seq_resolve_all.append(receiver.last_arrival(key) - t1)
        else:
            result.seq_failures += 1


async def explained_by_suppression(
    client: httpx.AsyncClient, receiver: Receiver, missing: list[Key]
) -> tuple[list[Key], int]:
    """Split missing burst messages into those the service suppressed by design (the
    burst resolves each alert right after creating it, and a dispatch still waiting
    when its retraction comes is never sent) and the rest, which are losses."""
    unexplained: list[Key] = []
    suppressed = 0
    for alert_id, kind in missing:
        response = await client.get(f"/v1/alerts/{alert_id}")
        if response.status_code != 200:
            unexplained.append((alert_id, kind))
            continue
        wanted = "dispatch" if kind == DISPATCH else "retraction"
        status = {
            d["operator"]: d["status"] for d in response.json()["deliveries"] if d["kind"] == wanted
        }
        absent = [op for op in OPERATORS if op not in receiver.arrivals.get((alert_id, kind), {})]
        if all(status.get(op) == "suppressed" for op in absent):
            suppressed += len(absent)
        else:
            unexplained.append((alert_id, kind))
    return unexplained, suppressed


async def service_side_latency(
    client: httpx.AsyncClient, alert_ids: list[str], sample: int = 60
) -> list[float]:
    """create->all dispatches delivered by the service's own clock (created_at, delivered_at).

    Independent of this process's scheduling, so it tells service lag from client queueing.
    """
    step = max(1, len(alert_ids) // sample)
    chosen = alert_ids[::step][:sample]
    gate = asyncio.Semaphore(8)

    async def one(alert_id: str) -> float | None:
        async with gate:
            try:
                response = await client.get(f"/v1/alerts/{alert_id}")
            except httpx.HTTPError:
                return None
        if response.status_code != 200:
            return None
        alert = response.json()
        done = [d["delivered_at"] for d in alert["deliveries"] if d["kind"] == "dispatch"]
        if len(done) != len(OPERATORS) or None in done:
            return None
        created = datetime.fromisoformat(alert["created_at"])
        return max((datetime.fromisoformat(d) - created).total_seconds() for d in done)

    values = await asyncio.gather(*(one(a) for a in chosen))
    return [v for v in values if v is not None]


async def burst(
    client: httpx.AsyncClient,
    receiver: Receiver,
    rng: random.Random,
    seconds: float,
    concurrency: int,
    result: EngineResult,
    service_pid: int,
) -> None:
    created: dict[str, float] = {}
    resolved: list[str] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(100000, 10**9))

    async def client_loop() -> None:
        while time.perf_counter() < deadline:
            body = alert_body(rng, next(counter))
            t0 = time.perf_counter()
            alert_id, outcome = await create(client, body)
            if alert_id is None:
                result.burst_errors[outcome] += 1
                continue
            result.burst_create_http.append(time.perf_counter() - t0)
            created[alert_id] = t0
            outcome = await resolve(client, alert_id)
            if outcome == "202":
                resolved.append(alert_id)
            else:
                result.burst_errors[outcome] += 1

    started = time.perf_counter()
    cpu_service, cpu_bench = cpu_seconds(service_pid), time.process_time()
    with LoopLag() as lag:
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.burst_seconds = time.perf_counter() - started
    result.burst_service_cpu = cpu_seconds(service_pid) - cpu_service
    result.burst_bench_cpu = time.process_time() - cpu_bench
    result.burst_loop_lag = lag.samples
    result.burst_created = len(created)
    result.burst_resolved = len(resolved)
    keys = [(a, DISPATCH) for a in created] + [(a, RETRACTION) for a in resolved]
    missing = await receiver.wait_all(keys, DRAIN_TIMEOUT_S)
    missing, result.burst_suppressed = await explained_by_suppression(client, receiver, missing)
    result.burst_undelivered = sum(1 for _, kind in missing if kind == DISPATCH)
    result.burst_unretracted = sum(1 for _, kind in missing if kind == RETRACTION)
    for alert_id, t0 in created.items():
        key = (alert_id, DISPATCH)
        if receiver.complete(key):
            result.burst_create_all.append(receiver.last_arrival(key) - t0)
    result.burst_service_side = await service_side_latency(client, list(created))


async def run_engine(
    engine: str,
    n: int,
    burst_seconds: float,
    concurrency: int,
    service_settings: dict[str, str] | None = None,
) -> EngineResult:
    result = EngineResult(engine)
    secrets_by_op = {op: new_secret() for op in OPERATORS}
    receiver = Receiver(secrets_by_op)
    rng = random.Random(20261121)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench_e2e_{engine}_"))
    print(f"\n=== {engine} ===", flush=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            receiver_url = await stack.enter_async_context(run_receiver(receiver))
            database_url = None
            if engine == "postgres":
                database_url = await stack.enter_async_context(postgres_database())
            t_start = time.perf_counter()
            service = await stack.enter_async_context(
                run_service(workdir, database_url, receiver_url, secrets_by_op, service_settings)
            )
            print(
                f"service ready in {time.perf_counter() - t_start:.1f} s "
                f"({database_url or 'sqlite in ' + str(workdir)})",
                flush=True,
            )
            limits = httpx.Limits(
                max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
            )
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=service.base_url,
                    limits=limits,
                    timeout=30.0,
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
            )

            await warm_up(client, receiver, rng)
            processes = service_processes(service.process.pid)
            cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
            await sequential(client, receiver, rng, n, result)
            result.seq_cpu_per_cycle = {
                name: (cpu_seconds(pid) - cpu_before[name]) / n for name, pid in processes.items()
            }
            print(
                f"sequential: {n} alerts, one at a time (create, wait for all 3 operators, "
                "resolve, wait for all 3 retractions)"
            )
            print(fmt_stats("create -> all operators received", result.seq_create_all))
            print(fmt_stats("resolve -> all operators retracted", result.seq_resolve_all))
            print(fmt_stats("POST /v1/alerts round trip", result.seq_create_http))
            print(fmt_stats("POST .../resolve round trip", result.seq_resolve_http))
            print(
                "  CPU per create+resolve cycle (robust to a shared machine): "
                + ", ".join(
                    f"{name} {seconds * 1000:.1f} ms"
                    for name, seconds in result.seq_cpu_per_cycle.items()
                )
            )
            print(
                f"  timeouts (> {SEQ_TIMEOUT_S:.0f} s): {result.seq_failures}   "
                f"HTTP errors: {dict(result.seq_http_errors) or 0}",
                flush=True,
            )

            await burst(
                client, receiver, rng, burst_seconds, concurrency, result, service.process.pid
            )
            rate = result.burst_created / result.burst_seconds if result.burst_seconds else 0
            print(
                f"burst: {concurrency} clients x {burst_seconds:g} s, each looping one "
                "create+resolve cycle (2 requests); one shared httpx.AsyncClient"
            )
            print(
                f"  cycles: {result.burst_created} alerts created, {result.burst_resolved} "
                f"resolved in {result.burst_seconds:.1f} s -> {rate:.1f} alerts/s "
                f"({(result.burst_created + result.burst_resolved) / result.burst_seconds:.1f}"
                " requests/s)"
            )
            print(
                f"  HTTP errors: {sum(result.burst_errors.values())} "
                f"{dict(result.burst_errors) or ''}"
            )
            print(
                f"  alerts not delivered to every operator within {DRAIN_TIMEOUT_S:.0f} s: "
                f"{result.burst_undelivered}"
            )
            print(f"  retractions not delivered to every operator: {result.burst_unretracted}")
            print(
                "  messages not sent because the service suppressed them (a dispatch still "
                f"queued when its alert was resolved, issue 5): {result.burst_suppressed}"
            )
            print("  latency under load (includes client-side queueing in this process):")
            print(fmt_stats("create -> all operators received", result.burst_create_all))
            print(fmt_stats("POST /v1/alerts round trip", result.burst_create_http))
            print("  diagnostics (is the lag in the service or in this process?):")
            print(
                fmt_stats("service clock: created->all delivered", result.burst_service_side)
                + " (sampled, via GET /v1/alerts/{id})"
            )
            print(fmt_stats("bench event-loop lag (10 ms ticks)", result.burst_loop_lag))
            print(
                f"  CPU during burst: service process {result.burst_service_cpu:.1f} s, "
                f"bench process {result.burst_bench_cpu:.1f} s, over "
                f"{result.burst_seconds:.1f} s wall on {os.cpu_count()} cores"
            )
            result.bad_signatures = receiver.bad_signatures
            result.duplicates = receiver.duplicates
            print(
                f"receiver: {receiver.requests} webhooks, bad signatures "
                f"{receiver.bad_signatures}, duplicate deliveries {receiver.duplicates}"
            )
            log_path = service.log_path
        counts, samples = scan_log(log_path)
        result.log_counts = counts
        print(f"service log ({log_path.name}): {dict(counts) or 'no warnings or errors'}")
        for line in samples:
            print(f"    {line}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def print_summary(results: list[EngineResult], args: argparse.Namespace) -> None:
    print("\n=== summary ===")
    print(f"machine: {machine_info()}")
    print(
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}   n={args.n}, "
        f"burst {args.concurrency} clients x {args.burst_seconds:g} s, "
        f"settings {dict(args.settings) or 'default'}"
    )
    cols = [
        ("engine", 8),
        ("seq create->all p50/p95/p99", 28),
        ("seq resolve->all p50/p95/p99", 29),
        ("burst alerts/s", 15),
        ("errors", 7),
        ("undeliv", 8),
        ("unretr", 7),
        ("badsig", 7),
        ("burst create->all p50/p95/p99", 31),
    ]
    header = " ".join(
        f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(cols)
    )
    print(header)
    print("-" * len(header))
    for r in results:
        sc, sr = ms_stats(r.seq_create_all), ms_stats(r.seq_resolve_all)
        bc = ms_stats(r.burst_create_all)
        rate = r.burst_created / r.burst_seconds if r.burst_seconds else 0.0
        cells = [
            r.engine,
            f"{sc['p50']:.1f}/{sc['p95']:.1f}/{sc['p99']:.1f}",
            f"{sr['p50']:.1f}/{sr['p95']:.1f}/{sr['p99']:.1f}",
            f"{rate:.1f}",
            str(r.errors),
            str(r.seq_failures + r.burst_undelivered),
            str(r.burst_unretracted),
            str(r.bad_signatures),
            f"{bc['p50']:.1f}/{bc['p95']:.1f}/{bc['p99']:.1f}",
        ]
        print(
            " ".join(
                f"{cell:>{width}}" if i else f"{cell:<{width}}"
                for i, (cell, (_, width)) in enumerate(zip(cells, cols, strict=True))
            )
        )
    print(
        "(latencies in ms; burst figures include client-side queueing; undeliv counts "
        "sequential timeouts + burst dispatches missing at any operator)"
    )


async def main_async(args: argparse.Namespace) -> int:
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[EngineResult] = []
    failed = False
    for engine in engines:
        try:
            results.append(
                await run_engine(
                    engine, args.n, args.burst_seconds, args.concurrency, dict(args.settings)
                )
            )
        except Exception as exc:  # a broken engine must not hide the other one's figures
            print(f"{engine}: benchmark aborted: {type(exc).__name__}: {exc}", flush=True)
            failed = True
    print_summary(results, args)
    for label, detail in ERROR_SAMPLES.items():
        print(f"first {label!r} response: {detail}")
    for r in results:
        if r.errors or r.undelivered or r.bad_signatures:
            failed = True
            print(
                f"FAIL {r.engine}: errors={r.errors} undelivered={r.undelivered} "
                f"bad_signatures={r.bad_signatures}"
            )
    return 1 if failed else 0


def parse_setting(text: str) -> tuple[str, str]:
    """``--set KAYIP_NAME=VALUE``: a service setting for one bench run."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("KAYIP_"):
        raise argparse.ArgumentTypeError("expected KAYIP_NAME=VALUE")
    return name, value


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    """``--set``, shared by every bench that starts the service."""
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=parse_setting,
        metavar="KAYIP_NAME=VALUE",
        help="a service setting for this run (repeatable), to compare configurations",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("-n", type=int, default=200, help="sequential alerts per engine")
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    add_settings_option(parser)
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
