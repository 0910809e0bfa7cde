"""The relay's publisher port, implemented with an aiokafka producer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from services.relay import PublishedEnds


class KafkaPublisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> PublishedEnds:
        # send() only enqueues, in call order, per partition; awaiting every
        # future keeps the batch all-or-retry.
        futures = [
            await self._producer.send(topic, value=value, key=key) for topic, key, value in messages
        ]
        landed: list[RecordMetadata] = await asyncio.gather(*futures)
        ends: PublishedEnds = {}
        for record in landed:
            place = (record.topic, record.partition)
            ends[place] = max(ends.get(place, 0), record.offset + 1)
        return ends


class KafkaDeadLetters:
    """The workers' dead-letter sink: JSON references (no personal data) on one topic."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, record: dict[str, object], key: str) -> None:
        await self._producer.send_and_wait(
            self._topic, value=json.dumps(record).encode(), key=key.encode()
        )
