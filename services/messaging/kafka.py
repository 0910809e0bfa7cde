"""aiokafka plumbing: topic creation at start-up and the producer the relay uses."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import TopicAlreadyExistsError

from services.messaging.topics import Topics
from services.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int, replication: int
) -> list[str]:
    """Create our topics explicitly: the embedded broker does not auto-create them.
    Returns the topics it had to create (after a broker restart: all of them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.all() if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=partitions, replication_factor=replication)
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass
            log.info("topics created", extra={"topics": missing, "partitions": partitions})
        return missing
    finally:
        await admin.close()


def make_producer(settings: Settings, bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        enable_idempotence=settings.idempotent_producer,
        request_timeout_ms=10000,
    )


def make_consumer(settings: Settings, bootstrap: str, group: str) -> AIOKafkaConsumer:
    """Manual commits only: an offset moves after the effect is recorded in the database.
    The caller subscribes, so it can pass a rebalance listener."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=500,
        # Range, not round-robin: partition p of both lanes goes to the same worker.
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(200, settings.consumer_session_timeout_ms // 5),
    )
