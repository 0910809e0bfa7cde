"""A worker cancelled while its consumer is still starting stops that consumer.

Otherwise the half-started consumer joins its group in the background, takes a share
of the partitions and never fetches them: the alerts on those partitions wait
forever (seen after a broker restart, when the topic keeper restarts the workers
while their consumers are still connecting)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaConsumer

from operator_adapters.base import OperatorAdapter
from operator_adapters.worker import AdapterWorker, WorkerPolicy
from services.deliveries import DeliveryRecorder


class StartsSlowly:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    async def start(self) -> None:
        self.started.set()
        await asyncio.sleep(3600)  # a broker that is not answering yet

    async def stop(self) -> None:
        self.stopped = True


class Recorder:
    async def stop(self) -> None:
        pass


class Adapter:
    operator = "turkcell"


async def test_cancelled_while_starting_the_consumer_is_stopped() -> None:
    consumer = StartsSlowly()
    worker = AdapterWorker(
        cast(OperatorAdapter, Adapter()),
        cast(AIOKafkaConsumer, consumer),
        cast(DeliveryRecorder, Recorder()),
        WorkerPolicy(),
        dispatch_topic="d",
        retraction_topic="r",
        dead_letters=cast(Any, None),
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(consumer.started.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert consumer.stopped
