"""Process wiring: which parts run in this process, started and stopped in order.

``serve`` runs the API, the relay, the simulator and the embedded broker (when none
is configured) in one process, and the adapter workers (one per operator) in a
child process it supervises (``services/adapter_process.py``), or in the same
process with ``KAYIP_ADAPTER_PROCESS=false``; the ``api``, ``relay`` and
``adapter`` commands run one part each for production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from services.adapter_process import AdapterProcess, child_environment, read_control
from services.context import ServiceContext
from services.db.engine import Database
from services.db.migrate import upgrade_to_head
from services.deliveries import DeliveryRecorder
from services.housekeeping import run_housekeeping
from services.link_tests import LinkTestScheduler
from services.logging_setup import quiet_third_party_loggers
from services.messaging.broker import EmbeddedBroker
from services.messaging.kafka import ensure_topics, make_consumer, make_producer
from services.messaging.publisher import KafkaDeadLetters, KafkaPublisher
from services.messaging.topics import Topics, consumer_group
from services.outbox import PendingEvent
from services.outbox_listener import listen
from services.reconciler import Reconciler
from services.relay import OutboxRelay, PublishedEnds
from services.settings import OperatorConfig, Settings

if TYPE_CHECKING:
    import uvicorn
    from aiokafka import AIOKafkaProducer

    from operator_adapters.lane_feed import LaneFeed
    from operator_adapters.priority import RetractionPriority
    from operator_adapters.worker import AdapterWorker, WorkerPolicy

log = logging.getLogger(__name__)
#: Adapter workers' task names start with this (then the operator's name).
_WORKER_TASK = "adapter:"
#: The workers' shared lane feeds' task names start with this: stopped and restarted
#: with them.
_FEED_TASK = "feed:"


@dataclass
class Parts:
    """Which parts of the service this process runs."""

    api: bool = True
    relay: bool = True
    operators: Sequence[str] | None = None  # None: every enabled operator; []: none
    migrate: bool = True
    #: ``serve``: the operators' workers run in a supervised child process.
    adapters_in_child: bool = False
    #: The child's side: retractions to expect arrive on stdin; "ready" goes to stdout.
    control_stdin: bool = False


@dataclass
class Runtime:
    settings: Settings
    parts: Parts = field(default_factory=Parts)
    context: ServiceContext | None = None
    broker: EmbeddedBroker | None = None
    bootstrap: str = ""
    workers: list[AdapterWorker] = field(default_factory=list)
    server: uvicorn.Server | None = None
    reconciler: Reconciler | None = None
    link_tests: LinkTestScheduler | None = None
    adapters: AdapterProcess | None = None
    retraction_feed: LaneFeed | None = None
    dispatch_feed: LaneFeed | None = None
    _producer: AIOKafkaProducer | None = None
    _http: list[httpx.AsyncClient] = field(default_factory=list)  # one per operator
    _priority: RetractionPriority | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _restarting: set[asyncio.Task[None]] = field(default_factory=set)
    _cluster_id: str = ""  # the broker's, as last seen: a new one means it restarted
    _settling: bool = False  # repairing a restarted broker's topics

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    async def start(self) -> None:
        quiet_third_party_loggers()
        settings = self.settings
        db = Database(settings.database_url, settings.database_pool_size)
        if self.parts.migrate:
            await upgrade_to_head(db)
        self.context = ServiceContext.build(settings, db=db)
        if self.parts.relay or self.parts.operators != []:
            await self._start_messaging(db)
        if self.parts.api:
            await self._start_api()
        await self._wait_workers_ready()

    async def _start_messaging(self, db: Database) -> None:
        settings = self.settings
        assert self.context is not None
        if settings.embedded_broker:
            self.broker = EmbeddedBroker()
            await self.broker.start()
            self.bootstrap = self.broker.bootstrap_servers
        else:
            self.bootstrap = settings.kafka_bootstrap_servers or ""
        topics = Topics(settings.kafka_topic_prefix)
        check = await ensure_topics(
            self.bootstrap, topics, settings.kafka_partitions, settings.kafka_replication_factor
        )
        self._cluster_id = check.cluster_id
        self._producer = make_producer(settings, self.bootstrap)
        await self._producer.start()
        if self.parts.relay:
            relay = OutboxRelay(
                db,
                KafkaPublisher(self._producer),
                self.context.feed,
                settings.relay_batch_size,
                settings.relay_poll_interval_s,
                # With the API in this process, fresh rows come through the feed;
                # the sweep leaves them a grace period so the two never race.
                sweep_grace_s=2.0 if self.parts.api else 0.0,
                # Wake-ups only matter to consumers that pause (``fetch_gate.py``).
                on_published=self._published if settings.idle_pause else None,
            )
            self._spawn(relay.run(), "relay")
            if not settings.is_sqlite and not self.parts.api:
                self._spawn(listen(settings.database_url, self.context.feed), "outbox-listener")
            self._start_keepers(db, topics)
        if self.parts.adapters_in_child:
            self._start_adapter_process(topics)
        else:
            await self._start_workers(db, topics)
        if self.parts.control_stdin:
            self._retraction_priority(topics)  # made by the workers, unless there are none
            # When stdin ends (the parent stops us, or is gone) this part ends: wait()
            # returns and the process stops.
            self._spawn(read_control(self._expect_retraction, self._published), "control")

    def _start_adapter_process(self, topics: Topics) -> None:
        """The workers in a child: the same settings, except what only this process
        knows (the embedded broker's address) and what follows from it."""
        settings = self.settings
        assert self.context is not None
        env = child_environment(
            {
                "KAYIP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "KAYIP_KAFKA_ENABLE_IDEMPOTENCE": str(settings.idempotent_producer).lower(),
                "KAYIP_KAFKA_SESSION_TIMEOUT_MS": str(settings.consumer_session_timeout_ms),
                "KAYIP_KAFKA_IDLE_PAUSE": str(settings.idle_pause).lower(),
                "KAYIP_KAFKA_FETCH_MAX_WAIT_MS": str(settings.fetch_max_wait_ms),
                "KAYIP_KAFKA_RETRACTION_FEED": str(settings.kafka_retraction_feed).lower(),
                "KAYIP_KAFKA_DISPATCH_FEED": str(settings.kafka_dispatch_feed).lower(),
            }
        )
        self.adapters = AdapterProcess(env)
        self._spawn(self.adapters.run(), "adapter-process")
        self._on_committed_retraction(topics, self.adapters.expect)

    def _on_committed_retraction(self, topics: Topics, call: Callable[[str], None]) -> None:
        """``call(alert_id)`` for every retraction the API in this process commits."""
        assert self.context is not None
        retractions = topics.retractions

        def watch(event: PendingEvent) -> None:
            if event.topic == retractions:
                call(event.key.decode())

        self.context.feed.watch(watch)

    def _published(self, ends: PublishedEnds) -> None:
        """The relay has published: wake the consumers it feeds, here or in the child."""
        for worker in self.workers:
            worker.nudge(ends)
        for feed in (self.retraction_feed, self.dispatch_feed):
            if feed is not None:
                feed.nudge(ends)
        if self.adapters is not None:
            self.adapters.published(ends)

    @property
    def _wakes_consumers(self) -> bool:
        """Whether this process's consumers hear of every publish (from the relay here,
        or from ``serve`` on stdin); without that an idle pause would only add latency."""
        return self.settings.idle_pause and (self.parts.relay or self.parts.control_stdin)

    def _expect_retraction(self, alert_id: str) -> None:
        """Hold this process's dispatches back until every worker here fetched it."""
        assert self._priority is not None
        self._priority.expect(alert_id, fetches=len(self.workers))

    def _start_keepers(self, db: Database, topics: Topics) -> None:
        """What runs beside the relay: the reconciler, link tests, the topic keeper, and
        housekeeping (expiry, retraction confirmation, late-publish repair, erasure)."""
        settings = self.settings
        assert self.context is not None
        feed = self.context.feed
        self.reconciler = Reconciler(
            db, feed.committed, settings.reconcile_after_s, settings.reconcile_interval_s
        )
        self._spawn(self.reconciler.run(), "reconciler")
        self.link_tests = LinkTestScheduler(
            db,
            topics.alert_events,
            {name: settings.link_test_interval_for(name) for name in settings.enabled_operators},
            feed.committed,
        )
        self._spawn(self.link_tests.run(), "link-tests")
        self._spawn(self._keep_topics(db, topics), "topic-keeper")
        self._spawn(run_housekeeping(self.context), "housekeeping")

    async def _keep_topics(self, db: Database, topics: Topics) -> None:
        """Re-create our topics if the broker lost them (the embedded one keeps nothing
        across a restart); the reconciler then re-publishes whatever is still owed."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.reconcile_interval_s)
            try:
                check = await ensure_topics(
                    self.bootstrap,
                    topics,
                    settings.kafka_partitions,
                    settings.kafka_replication_factor,
                    known_cluster_id=self._cluster_id,
                    repair=self._settling,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker unreachable", extra={"error": type(exc).__name__})
                continue
            restarted = check.cluster_id != self._cluster_id
            self._cluster_id = check.cluster_id
            # Clients may auto-create topics on a restarted broker before we look; until
            # a look finds everything in order, wrong topics are repaired (a client can
            # auto-create one again between our delete and create).
            self._settling = not check.clean
            if restarted or not check.clean:
                log.warning(
                    "the broker lost its state; topics re-created",
                    extra={
                        "broker_restarted": restarted,
                        "topics_created": check.created,
                        "topics_recreated": check.recreated,
                    },
                )
                if self.workers:
                    await self._restart_workers(db, topics)
                elif self.adapters is not None:
                    await self.adapters.restart()

    async def _restart_workers(self, db: Database, topics: Topics) -> None:
        """After the broker lost everything (the embedded one on a restart), fresh
        consumers: the broker forgot the groups too, and a consumer that was never told
        can keep fetching as a member of a group that no longer exists. What was owed
        is in the database; replays are checked there and the reconciler re-publishes."""
        old = self._worker_tasks() + [t for t in self._tasks if t.get_name().startswith(_FEED_TASK)]
        self._restarting.update(old)
        for task in old:
            task.cancel()
        await asyncio.gather(*old, return_exceptions=True)
        self._tasks = [t for t in self._tasks if t not in old]
        self.workers.clear()
        await self._close_http()
        await self._start_workers(db, topics)
        log.warning("adapter workers restarted", extra={"workers": len(self.workers)})

    async def _start_workers(self, db: Database, topics: Topics) -> None:
        from operator_adapters.registry import build_adapter, discover
        from operator_adapters.worker import AdapterWorker

        settings = self.settings
        enabled = settings.enabled_operators
        names = list(enabled) if self.parts.operators is None else list(self.parts.operators)
        if not names:
            return
        available = discover()
        recorder = DeliveryRecorder(db)
        assert self._producer is not None
        dead_letters = KafkaDeadLetters(self._producer, topics.dead_letters)
        priority = self._retraction_priority(topics)
        self.retraction_feed = self._start_feed("retractions", settings.kafka_retraction_feed)
        self.dispatch_feed = self._start_feed("dispatches", settings.kafka_dispatch_feed)
        for name in names:
            config = self._with_simulator_endpoint(name, enabled[name])
            adapter = build_adapter(name, config, self._operator_http(config), available)
            consumer = make_consumer(
                self.settings,
                self.bootstrap,
                consumer_group(settings.kafka_topic_prefix, name),
            )
            worker = AdapterWorker(
                adapter,
                consumer,
                recorder,
                worker_policy(settings, config, idle_pause=self._wakes_consumers),
                dispatch_topic=topics.alert_events,
                retraction_topic=topics.retractions,
                dead_letters=dead_letters,
                priority=priority,
                retraction_feed=self.retraction_feed,
                dispatch_feed=self.dispatch_feed,
            )
            self.workers.append(worker)
            self._spawn(worker.run(), f"{_WORKER_TASK}{name}")

    def _start_feed(self, lane: str, enabled: bool) -> LaneFeed | None:
        """One per lane and set of workers (a restart of the workers makes new ones)."""
        from operator_adapters.fetch_gate import FetchGate
        from operator_adapters.lane_feed import LaneFeed

        if not enabled:
            return None
        consumer = make_consumer(self.settings, self.bootstrap, None)
        recheck_s = self.settings.kafka_idle_recheck_ms / 1000
        feed = LaneFeed(consumer, FetchGate(consumer, self._wakes_consumers, recheck_s))
        self._spawn(feed.run(), f"{_FEED_TASK}{lane}")
        return feed

    def _retraction_priority(self, topics: Topics) -> RetractionPriority:
        """One per process, kept across worker restarts: the workers share the loop.
        With the API here too, a resolve holds dispatches from the moment it commits."""
        from operator_adapters.priority import RetractionPriority

        if self._priority is None:
            self._priority = RetractionPriority()
            if self.context is not None and self.parts.api:
                self._on_committed_retraction(topics, self._expect_retraction)
        return self._priority

    def _operator_http(self, config: OperatorConfig) -> httpx.AsyncClient:
        """A connection pool per operator (a bulkhead): one operator's slow endpoint
        cannot take another's connections. Sized for the worker's dispatch slots plus
        its retraction slots."""
        from operator_adapters.http_transport import webhook_client

        client = webhook_client(self.settings.webhook_transport, 2 * config.concurrency + 1)
        self._http.append(client)
        return client

    async def _close_http(self) -> None:
        clients, self._http = self._http, []
        for client in clients:
            await client.aclose()

    def _with_simulator_endpoint(self, name: str, config: OperatorConfig) -> OperatorConfig:
        if config.endpoint_url is not None or not self.settings.simulator_enabled:
            return config
        url = f"{self.base_url}/simulator/operators/{name}/webhooks"
        return config.model_copy(update={"endpoint_url": url})

    async def _start_api(self) -> None:
        import uvicorn

        from alert_api.app import create_app

        assert self.context is not None
        app = create_app(self.settings, self.context)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._spawn(self.server.serve(), "api")
        while not self.server.started:
            task = self._tasks[-1]
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.01)

    async def _wait_workers_ready(self, timeout_s: float = 30.0) -> None:
        """Return once every consumer has its partitions, so the first alert is not late."""
        waits = [asyncio.create_task(w.ready.wait()) for w in self.workers]
        if self.adapters is not None:
            waits.append(asyncio.create_task(self.adapters.ready.wait()))
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout_s)

    def _spawn(self, coroutine: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)  # type: ignore[arg-type]
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def _stop_workers(self) -> None:
        """Workers end in order (see ``AdapterWorker.stop``): what is on the wire is
        answered and recorded and offsets are committed before the consumers leave."""
        running = [t for t in self._worker_tasks() if not t.done()]
        for worker in self.workers:
            worker.stop()
        if running:
            await asyncio.wait(running, timeout=self.settings.stop_grace_s + 5.0)

    def _worker_tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if t.get_name().startswith(_WORKER_TASK)]

    async def wait(self) -> None:
        """Run until a part stops (the API server on a signal, or a crash); parts
        restarted on purpose (see ``_restart_workers``) do not count."""
        while True:
            done, _ = await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            if not done <= self._restarting:
                return
            self._restarting -= done

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.adapters is not None:
            await self.adapters.stop()
        await self._stop_workers()
        for task in reversed(self._tasks):
            if task.get_name() != "api":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        self._tasks.clear()
        if self._producer is not None:
            await self._producer.stop()
        await self._close_http()
        if self.context is not None:
            await self.context.close()
        if self.broker is not None:
            await self.broker.stop()


def worker_policy(
    settings: Settings, config: OperatorConfig, idle_pause: bool = False
) -> WorkerPolicy:
    from operator_adapters.resilience import RetryPolicy
    from operator_adapters.worker import WorkerPolicy

    return WorkerPolicy(
        dispatch_retry=RetryPolicy(deadline_s=config.retry_deadline_s),
        link_test_retry=RetryPolicy(cap_s=1.0, deadline_s=min(config.retry_deadline_s, 10.0)),
        retraction_alarm_after_s=settings.retraction_alarm_after_s,
        concurrency=config.concurrency,
        adaptive_concurrency=config.adaptive_concurrency,
        max_rate_per_s=config.max_rate_per_s,
        breaker_failure_threshold=config.breaker_failure_threshold,
        breaker_open_s=config.breaker_open_s,
        stop_grace_s=settings.stop_grace_s,
        idle_pause=idle_pause,
        idle_recheck_s=settings.kafka_idle_recheck_ms / 1000,
    )


def _log_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error(
            "a service part stopped with an error",
            extra={"part": task.get_name(), "error": repr(exc)},
        )
