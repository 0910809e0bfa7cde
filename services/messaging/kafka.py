"""aiokafka plumbing: topic creation at start-up and the producer the relay uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import TopicAlreadyExistsError

from services.messaging.topics import Topics
from services.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicCheck:
    """What one look at the broker found: which broker it is, and what had to be made."""

    cluster_id: str
    created: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.created and not self.recreated


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    replication: int,
    known_cluster_id: str | None = None,
    repair: bool = False,
) -> TopicCheck:
    """Create our topics explicitly, with our partition count.

    A broker that auto-creates topics (the embedded one does, on any client's
    metadata request) gives them its default partition count, and the dispatch and
    retraction lanes must have the same count to stay co-partitioned. After a
    broker restart (a cluster id other than ``known_cluster_id``, or ``repair`` while
    the caller is still settling a restart) such a topic holds nothing the database
    does not: it is deleted and created again, and the reconciler re-publishes what
    is owed. On a broker we have not seen restart, a wrong count is only reported;
    deleting would lose records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        cluster_id = str((await admin.describe_cluster())["cluster_id"])
        restarted = repair or (known_cluster_id is not None and cluster_id != known_cluster_id)
        existing = set(await admin.list_topics())
        ours = topics.all()
        present = [t for t in ours if t in existing]
        mismatched = []
        if present:
            for described in await admin.describe_topics(present):
                if len(described["partitions"]) != partitions:
                    mismatched.append(str(described["topic"]))
        recreated = mismatched if restarted else []
        if mismatched and not restarted:
            log.warning(
                "topic partition count differs from the configuration",
                extra={"topics": mismatched, "partitions": partitions},
            )
        if recreated:
            await admin.delete_topics(recreated)
            log.warning("auto-created topics deleted to be re-created", extra={"topics": recreated})
        missing = [t for t in ours if t not in existing]
        to_create = missing + recreated
        if to_create:
            try:
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=partitions, replication_factor=replication)
                        for t in to_create
                    ]
                )
            except TopicAlreadyExistsError:
                pass
            log.info("topics created", extra={"topics": to_create, "partitions": partitions})
        return TopicCheck(cluster_id, missing, recreated)
    finally:
        await admin.close()


def make_producer(settings: Settings, bootstrap: str) -> AIOKafkaProducer:
    """``max_batch_size``: a create's three dispatch events (one per operator, each with
    the broadcast polygon and that operator's cells) are about 18 KB together, more
    than aiokafka's default 16 KB batch; the overflow waited for the first batch's
    acknowledgement and went in a second produce request, one broker round trip
    later (bench/RESULTS.md, "Session 12"). A batch as large as a consumer's
    per-partition fetch keeps them in one request while a fetch still takes a batch
    whole."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=settings.kafka_max_partition_fetch_bytes,
        enable_idempotence=settings.idempotent_producer,
        request_timeout_ms=10000,
    )


def make_consumer(settings: Settings, bootstrap: str, group: str | None) -> AIOKafkaConsumer:
    """Manual commits only: an offset moves after the effect is recorded in the database.
    The caller subscribes, so it can pass a rebalance listener. Without a group (the
    lane feeds) the caller assigns partitions, and the workers' groups commit."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
        fetch_max_bytes=max(1048576, settings.kafka_max_partition_fetch_bytes),
        max_poll_records=500,
        # Range, not round-robin: partition p of both lanes goes to the same worker.
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(200, settings.consumer_session_timeout_ms // 5),
    )
