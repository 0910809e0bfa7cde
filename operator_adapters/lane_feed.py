"""One fetch path per lane, shared by every worker of a process.

Why: each operator's worker used to fetch both lanes with its own consumer. Three
operators meant three consumers fetching (and the broker serving, and this process
decoding) every record three times, each polling on its own 2 ms cycle, so one
alert's three fetches came back about 1.5 ms apart; Kafka polling was over half the
adapter process's CPU (bench/RESULTS.md, "Session 10"). And aiokafka keeps one
fetch in flight per consumer and broker: under a dispatch backlog a fetch carrying
dispatch partitions took up to 189 ms ("Session 8"), and a retraction published
just after one waited for it and for the next.

So each lane has one consumer per process, with no group: a record is fetched once
for all operators, and the retraction lane's fetches carry nothing else.

The workers' consumers stay subscribed to both lanes, so the group still gives a
worker partition *p* of both (one process decides everything about an alert) and
commits their offsets; they only pause those partitions and join the feeds at their
committed offsets instead. A feed is assigned the union of its readers' partitions,
fetches each from the lowest offset an active reader still needs, and hands every
reader only the records at or after its own next offset, so a reader that joins (or
comes back) behind the others makes the feed read back and the others skip what they
had.

Flow control is per reader (``hold``/``release``): a held reader is handed nothing
and stays where it is, the others go on; the feed pauses a partition only when every
reader of it is held, and reads back for a reader released behind the others. The
retraction lane's readers are never held: retractions are few and small, and a
worker with a slow operator keeps them as waiting tasks rather than stop the other
operators' retractions.
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

    async def receive_from_feed(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Take records of partitions this reader joined, in offset order."""


class LaneFeed:
    """Fetches one lane for the readers that joined it (see module doc)."""

    def __init__(self, consumer: AIOKafkaConsumer, gate: FetchGate | None = None) -> None:
        self._consumer = consumer
        # partition -> reader -> the next offset that reader needs
        self._next: dict[TopicPartition, dict[FeedReader, int]] = {}
        # partition -> the readers flow control holds back there
        self._held: dict[TopicPartition, set[FeedReader]] = {}
        # partition -> the offset the consumer fetches next (as of our last seek or
        # hand-out; aiokafka's own ``position`` is a coroutine)
        self._position: dict[TopicPartition, int] = {}
        self._gate = gate or FetchGate(consumer, enabled=False)
        self._started = False  # the consumer has started, so it can be assigned
        self._readers_changed = asyncio.Event()

    @property
    def partitions(self) -> set[TopicPartition]:
        return set(self._next)

    @property
    def gate(self) -> FetchGate:
        return self._gate

    def join(self, reader: FeedReader, starts: Mapping[TopicPartition, int]) -> None:
        """``reader`` owns these partitions now and needs each from the given offset."""
        for tp, offset in starts.items():
            self._next.setdefault(tp, {})[reader] = offset
            self._unhold(reader, tp)
        if starts:
            self._reassign(set(starts))

    def leave(self, reader: FeedReader, partitions: Iterable[TopicPartition]) -> None:
        """``reader`` no longer owns these partitions: nothing more of them reaches it."""
        changed = False
        for tp in partitions:
            readers = self._next.get(tp)
            if readers is not None and readers.pop(reader, None) is not None:
                changed = True
                self._unhold(reader, tp)
                if not readers:
                    del self._next[tp]
        if changed:
            self._reassign(set())

    def hold(self, reader: FeedReader, tp: TopicPartition) -> None:
        """``reader`` has too much unfinished work on ``tp``: hand it nothing more of
        it until ``release``. The partition stops only when all its readers are held."""
        readers = self._next.get(tp)
        if readers is None or reader not in readers:
            return
        self._held.setdefault(tp, set()).add(reader)
        self._pause_if_all_held(tp)

    def release(self, reader: FeedReader, tp: TopicPartition) -> None:
        """``reader`` may take ``tp`` again, from where it stopped."""
        readers = self._next.get(tp)
        if readers is None or reader not in self._held.get(tp, ()):
            return
        self._unhold(reader, tp)
        self._read_back(tp)  # it fell behind while held

    def held(self, reader: FeedReader) -> set[TopicPartition]:
        return {tp for tp, readers in self._held.items() if reader in readers}

    def nudge(self, ends: Mapping[tuple[str, int], int]) -> None:
        """Records were just published, up to ``ends`` ((topic, partition) -> offset
        after the last; only this feed's partitions matter): fetch them now."""
        mine = {
            tp: end for (t, p), end in ends.items() if (tp := TopicPartition(t, p)) in self._next
        }
        if mine:
            self._gate.nudge(mine)

    def _floor(self, tp: TopicPartition) -> int | None:
        """Where the consumer fetches ``tp`` from: the lowest offset an active (not
        held) reader needs; None if it has none."""
        held = self._held.get(tp, set())
        active = [o for r, o in self._next.get(tp, {}).items() if r not in held]
        return min(active) if active else None

    def _unhold(self, reader: FeedReader, tp: TopicPartition) -> None:
        held = self._held.get(tp)
        if held is not None:
            held.discard(reader)
            if not held:
                del self._held[tp]
        self._pause_if_all_held(tp)

    def _pause_if_all_held(self, tp: TopicPartition) -> None:
        """The one place that decides whether ``tp`` is paused: exactly when it has
        readers and every one of them is held."""
        readers = self._next.get(tp)
        if readers and self._held.get(tp, set()) >= readers.keys():
            self._gate.hold(tp)
        else:
            self._gate.release(tp)

    def _reassign(self, joined: set[TopicPartition]) -> None:
        """Assign the union of the readers' partitions, each from the lowest offset an
        active reader needs, and read ``joined`` partitions back to it if the consumer
        is past it. Reads already on their way for an old position are dropped by
        aiokafka; a reader that is ahead skips what comes again."""
        if not self._started:
            return  # ``run`` assigns once the consumer has started
        wanted = set(self._next)
        if wanted != self._consumer.assignment():
            self._consumer.assign(list(wanted))  # every position is reset: seek them all
            self._gate.forget(self._gate.held - wanted)
            self._position.clear()
            for tp in wanted:
                floor = self._floor(tp)
                self._seek(tp, floor if floor is not None else min(self._next[tp].values()))
            for tp in self._gate.held & wanted:  # assign resumed them
                self._consumer.pause(tp)
            self._gate.assigned()
        else:
            for tp in joined:
                self._read_back(tp)
        self._readers_changed.set()

    def _read_back(self, tp: TopicPartition) -> None:
        """Seek ``tp`` back if an active reader needs what the consumer is past."""
        floor = self._floor(tp)
        if self._started and floor is not None and floor < self._position.get(tp, floor):
            self._seek(tp, floor)
            self._gate.assigned()  # stay awake until the read-back is fetched

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(tp, offset)
        self._position[tp] = offset

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
                    log.warning("lane feed fetch failed", extra={"error": type(exc).__name__})
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
            self._position[tp] = record.offset + 1
            readers = self._next.get(tp)
            if not readers:
                continue
            held = self._held.get(tp, ())
            for reader, next_offset in readers.items():
                if record.offset >= next_offset and reader not in held:
                    shares.setdefault(reader, []).append(record)
                    readers[reader] = record.offset + 1
        for reader, share in shares.items():
            try:
                await reader.receive_from_feed(share)
            except Exception:  # one reader's bug must not starve the others
                log.exception("a reader failed to take its records")
