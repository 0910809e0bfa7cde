"""One fetch path for the retraction lane, shared by every worker of a process.

Why: aiokafka keeps one fetch in flight per broker and consumer. A worker that read
both lanes with one consumer sent the retraction partitions in the same fetch as
the dispatch partitions, and under a dispatch backlog such a fetch took up to
189 ms (bench/RESULTS.md, "Session 8"): a retraction published just after one
left waited for it and for the next. Here the retraction lane has its own consumer,
whose fetches carry nothing else, and a found child's retraction is fetched once
for all three operators instead of by three consumers polling 1.5 ms apart.

The workers' consumers stay subscribed to both lanes, so the group still gives a
worker partition *p* of both (one process decides everything about an alert) and
commits their offsets; they only pause the retraction partitions and join this
feed at their committed offsets instead. This consumer has no group: it is assigned
the union of its readers' partitions, fetches each from the lowest offset a reader
still needs, and hands every reader only the records at or after its own next
offset, so a reader that joins behind the others makes the feed read back and the
others skip what they had.

The feed never pauses a partition for one reader: retractions are few and small,
and a worker with a slow operator keeps them as waiting tasks rather than stop the
other operators' retractions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from operator_adapters.fetch_gate import FetchGate

log = logging.getLogger(__name__)


MAX_RECORDS_PER_POLL = 100
#: After a fetch error, wait this long before fetching again.
ERROR_PAUSE_S = 0.5


class FeedReader(Protocol):
    """A worker, as the feed sees it."""

    async def receive_retractions(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Take records of partitions this reader joined, in offset order."""


class RetractionFeed:
    """Fetches the retraction lane for the readers that joined it (see module doc)."""

    def __init__(self, consumer: AIOKafkaConsumer, gate: FetchGate | None = None) -> None:
        self._consumer = consumer
        # partition -> reader -> the next offset that reader needs
        self._next: dict[TopicPartition, dict[FeedReader, int]] = {}
        self._gate = gate or FetchGate(consumer, enabled=False)
        self._started = False  # the consumer has started, so it can be assigned
        self._readers_changed = asyncio.Event()

    @property
    def partitions(self) -> set[TopicPartition]:
        return set(self._next)

    def join(self, reader: FeedReader, starts: Mapping[TopicPartition, int]) -> None:
        """``reader`` owns these partitions now and needs each from the given offset."""
        behind = set()
        for tp, offset in starts.items():
            others = self._next.setdefault(tp, {})
            if others and offset < min(others.values()):
                behind.add(tp)  # the consumer is past it: read back
            others[reader] = offset
        if starts:
            self._reassign(behind)

    def leave(self, reader: FeedReader, partitions: Iterable[TopicPartition]) -> None:
        """``reader`` no longer owns these partitions: nothing more of them reaches it."""
        changed = False
        for tp in partitions:
            readers = self._next.get(tp)
            if readers is not None and readers.pop(reader, None) is not None:
                changed = True
                if not readers:
                    del self._next[tp]
        if changed:
            self._reassign(set())

    def nudge(self, ends: Mapping[tuple[str, int], int]) -> None:
        """Records were just published, up to ``ends`` ((topic, partition) -> offset
        after the last; only this feed's partitions matter): fetch them now."""
        mine = {
            tp: end for (t, p), end in ends.items() if (tp := TopicPartition(t, p)) in self._next
        }
        if mine:
            self._gate.nudge(mine)

    def _reassign(self, behind: set[TopicPartition]) -> None:
        """Assign the union of the readers' partitions, each from the lowest offset a
        reader needs, and read ``behind`` partitions back to it. Reads already on their
        way for an old position are dropped by aiokafka; a reader that is ahead skips
        what comes again."""
        if not self._started:
            return  # ``run`` assigns once the consumer has started
        wanted = set(self._next)
        if wanted != self._consumer.assignment():
            self._consumer.assign(list(wanted))  # every position is reset: seek them all
            behind = wanted
            self._gate.assigned()
        for tp in behind:
            self._consumer.seek(tp, min(self._next[tp].values()))
        self._readers_changed.set()

    async def run(self) -> None:
        """Fetch and hand out until cancelled."""
        try:
            await self._consumer.start()
            self._started = True
            self._reassign(set())
            while True:
                if not self._next:
                    self._readers_changed.clear()
                    await self._readers_changed.wait()
                    continue
                try:
                    batch = await self._consumer.getmany(
                        timeout_ms=self._gate.poll_timeout_ms(),
                        max_records=MAX_RECORDS_PER_POLL,
                    )
                except KafkaError as exc:
                    log.warning("retraction feed fetch failed", extra={"error": type(exc).__name__})
                    await asyncio.sleep(ERROR_PAUSE_S)
                    continue
                records = [r for rs in batch.values() for r in rs]
                self._gate.polled(records)
                if records:
                    await self._hand_out(records)
        finally:
            self._started = False
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    async def _hand_out(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        shares: dict[FeedReader, list[ConsumerRecord[bytes, bytes]]] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            for reader, next_offset in (self._next.get(tp) or {}).items():
                if record.offset >= next_offset:
                    shares.setdefault(reader, []).append(record)
                    self._next[tp][reader] = record.offset + 1
        for reader, share in shares.items():
            try:
                await reader.receive_retractions(share)
            except Exception:  # one reader's bug must not starve the others
                log.exception("a reader failed to take its retractions")
