"""Topics: ours, with our partition count, even when a client auto-created one first."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from services.messaging.broker import EmbeddedBroker, free_port
from services.messaging.kafka import ensure_topics
from services.messaging.topics import Topics

pytestmark = pytest.mark.asyncio
PARTITIONS = 12


async def _partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {str(d["topic"]): len(d["partitions"]) for d in described}


async def _auto_create(bootstrap: str, topic: str) -> None:
    """What a relay does when it publishes before the topics exist: the broker makes
    the topic with its own default partition count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def test_each_start_of_the_embedded_broker_is_a_new_cluster() -> None:
    broker = EmbeddedBroker()
    await broker.start()
    first = (await ensure_topics(broker.bootstrap_servers, Topics("a"), PARTITIONS, 1)).cluster_id
    await broker.stop()
    broker = EmbeddedBroker(port=broker.port)
    await broker.start()
    try:
        second = await ensure_topics(
            broker.bootstrap_servers, Topics("a"), PARTITIONS, 1, known_cluster_id=first
        )
    finally:
        await broker.stop()
    assert second.cluster_id != first
    assert second.created == Topics("a").all()  # the restarted broker kept nothing


async def test_a_topic_auto_created_on_a_restarted_broker_is_made_again_with_our_count(
    broker: EmbeddedBroker,
) -> None:
    topics = Topics(f"t{uuid.uuid4().hex[:10]}")
    await _auto_create(broker.bootstrap_servers, topics.alert_events)
    assert (await _partition_counts(broker.bootstrap_servers, [topics.alert_events]))[
        topics.alert_events
    ] != PARTITIONS

    check = await ensure_topics(
        broker.bootstrap_servers, topics, PARTITIONS, 1, known_cluster_id="an-earlier-broker"
    )

    assert check.recreated == [topics.alert_events]
    assert sorted(check.created) == sorted([topics.retractions, topics.dead_letters])
    counts = await _partition_counts(broker.bootstrap_servers, topics.all())
    assert counts == dict.fromkeys(topics.all(), PARTITIONS)
    again = await ensure_topics(
        broker.bootstrap_servers, topics, PARTITIONS, 1, known_cluster_id=check.cluster_id
    )
    assert again.clean


async def test_on_a_broker_that_did_not_restart_a_wrong_count_is_reported_not_deleted(
    broker: EmbeddedBroker,
) -> None:
    topics = Topics(f"t{uuid.uuid4().hex[:10]}")
    first = await ensure_topics(broker.bootstrap_servers, Topics("x"), PARTITIONS, 1)
    await _auto_create(broker.bootstrap_servers, topics.alert_events)

    check = await ensure_topics(
        broker.bootstrap_servers, topics, PARTITIONS, 1, known_cluster_id=first.cluster_id
    )

    assert check.recreated == []
    counts = await _partition_counts(broker.bootstrap_servers, [topics.alert_events])
    assert counts[topics.alert_events] != PARTITIONS  # records in it are kept


async def test_free_ports_are_outside_the_ephemeral_range() -> None:
    low, high = (int(v) for v in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    ports = {free_port() for _ in range(50)}
    assert all(not (low <= p <= high) for p in ports)
