"""The relay's publisher port, implemented with an aiokafka producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer


class KafkaPublisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]]) -> None:
        # send() only enqueues, in call order, per partition; awaiting every
        # future keeps the batch all-or-retry.
        futures = [
            await self._producer.send(topic, value=value, key=key) for topic, key, value in messages
        ]
        await asyncio.gather(*futures)
