"""The shared lane feeds: every reader gets each record of its partitions once, in
order, from its own offset, whoever else reads the same partition; a reader held by
flow control gets nothing until released, then resumes where it stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from operator_adapters.base import OperatorAdapter
from operator_adapters.lane_feed import LaneFeed
from operator_adapters.worker import AdapterWorker, WorkerPolicy
from services.deliveries import DeliveryRecorder
from tests.unit.adapters.test_fetch_gate import Record

LANE = [TopicPartition("kayip.alert-retractions.v1", p) for p in range(2)]


class Log:
    """A group-less consumer over an in-memory log, fetching from its positions the
    way aiokafka does (``assign`` resets every position, ``seek`` sets one)."""

    def __init__(self, lengths: dict[TopicPartition, int]) -> None:
        self.lengths = dict(lengths)
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.appended = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)
        self.paused = set()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)
        self.appended.set()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp in self.positions
        self.seeks.append((tp, offset))
        self.positions[tp] = offset
        self.appended.set()  # records behind the new position are there to fetch

    def append(self, tp: TopicPartition, count: int = 1) -> None:
        self.lengths[tp] = self.lengths.get(tp, 0) + count
        self.appended.set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        batch: dict[TopicPartition, list[Any]] = {}
        for tp, position in self.positions.items():
            if tp in self.paused:
                continue
            end = min(self.lengths.get(tp, 0), position + max_records)
            if end > position:
                batch[tp] = [Record(tp.topic, tp.partition, o) for o in range(position, end)]
                self.positions[tp] = end
        if not batch:
            self.appended.clear()
            try:
                await asyncio.wait_for(self.appended.wait(), timeout_ms / 1000)
            except TimeoutError:
                pass
        return batch


class Reader:
    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []  # (partition, offset)

    async def receive_from_feed(self, records: Sequence[Any]) -> None:
        self.got.extend((r.partition, r.offset) for r in records)


async def _settle(log: Log) -> None:
    """Let the feed fetch until the log has nothing left for it."""
    for _ in range(50):
        await asyncio.sleep(0.001)
        if all(
            log.positions[tp] >= log.lengths.get(tp, 0)
            for tp in log.positions
            if tp not in log.paused
        ):
            await asyncio.sleep(0.001)
            return
    raise AssertionError("the feed did not catch up")


async def _running(log: Log) -> tuple[LaneFeed, asyncio.Task[None]]:
    feed = LaneFeed(cast(AIOKafkaConsumer, log))
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0)
    return feed, task


async def test_each_reader_gets_its_partitions_from_its_own_offset() -> None:
    log = Log({LANE[0]: 5, LANE[1]: 3})
    feed, task = await _running(log)
    turkcell, vodafone = Reader(), Reader()
    feed.join(turkcell, {LANE[0]: 2, LANE[1]: 0})
    feed.join(vodafone, {LANE[0]: 4})
    await _settle(log)
    assert sorted(turkcell.got) == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2)]
    for partition in (0, 1):  # in offset order within a partition
        offsets = [o for p, o in turkcell.got if p == partition]
        assert offsets == sorted(offsets)
    assert vodafone.got == [(0, 4)]
    log.append(LANE[0])
    await _settle(log)
    assert turkcell.got.count((0, 5)) == 1
    assert vodafone.got[-1] == (0, 5)
    task.cancel()


async def test_a_reader_joining_behind_makes_the_feed_read_back_without_repeats() -> None:
    log = Log({LANE[0]: 6})
    feed, task = await _running(log)
    ahead, behind = Reader(), Reader()
    feed.join(ahead, {LANE[0]: 3})
    await _settle(log)
    assert ahead.got == [(0, 3), (0, 4), (0, 5)]
    feed.join(behind, {LANE[0]: 1})  # e.g. a partition moved here, committed at 1
    await _settle(log)
    assert (LANE[0], 1) in log.seeks
    assert behind.got == [(0, o) for o in range(1, 6)]
    assert ahead.got == [(0, 3), (0, 4), (0, 5)]  # nothing twice
    task.cancel()


async def test_a_reader_that_left_gets_nothing_more_and_the_feed_drops_unread_partitions() -> None:
    log = Log({LANE[0]: 1, LANE[1]: 1})
    feed, task = await _running(log)
    stays, goes = Reader(), Reader()
    feed.join(stays, {LANE[0]: 0})
    feed.join(goes, {LANE[0]: 0, LANE[1]: 0})
    await _settle(log)
    feed.leave(goes, LANE)
    assert log.assignment() == {LANE[0]}
    log.append(LANE[0])
    await _settle(log)
    assert sorted(goes.got) == [(0, 0), (1, 0)]
    assert stays.got == [(0, 0), (0, 1)]
    task.cancel()


async def test_a_held_reader_gets_nothing_and_resumes_where_it_stopped_when_released() -> None:
    log = Log({LANE[0]: 3})
    feed, task = await _running(log)
    slow, fast = Reader(), Reader()
    feed.join(slow, {LANE[0]: 0})
    feed.join(fast, {LANE[0]: 0})
    await _settle(log)
    feed.hold(slow, LANE[0])
    assert feed.held(slow) == {LANE[0]}
    assert not feed.held(fast)
    log.append(LANE[0], 3)
    await _settle(log)
    assert fast.got == [(0, o) for o in range(6)]  # the others go on
    assert slow.got == [(0, o) for o in range(3)]
    assert not log.paused
    feed.hold(fast, LANE[0])  # every reader held: the partition stops
    assert log.paused == {LANE[0]}
    log.append(LANE[0], 2)
    await _settle(log)
    assert log.positions[LANE[0]] == 6
    feed.release(slow, LANE[0])  # behind the consumer: read back to it
    await _settle(log)
    assert (LANE[0], 3) in log.seeks
    assert slow.got == [(0, o) for o in range(8)]
    assert fast.got == [(0, o) for o in range(6)]  # still held
    feed.release(fast, LANE[0])
    await _settle(log)
    assert fast.got == [(0, o) for o in range(8)]
    assert slow.got == [(0, o) for o in range(8)]  # nothing twice
    feed.hold(slow, LANE[0])
    feed.hold(fast, LANE[0])
    assert log.paused == {LANE[0]}
    newcomer = Reader()  # e.g. the partition came back to a worker after a rebalance
    feed.join(newcomer, {LANE[0]: 7})
    assert not log.paused
    await _settle(log)
    assert newcomer.got == [(0, 7)]
    feed.leave(newcomer, [LANE[0]])
    assert log.paused == {LANE[0]}  # the readers left are all held
    task.cancel()


class GroupConsumer:
    """The worker's own consumer, as far as joining and leaving the feed goes."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def committed(self, tp: TopicPartition) -> int | None:
        return 4 if tp.partition == 0 else None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return set()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)


DISPATCH = TopicPartition("kayip.alert-events.v1", 0)


class FakeFeed:
    def __init__(self) -> None:
        self.joined: dict[TopicPartition, int] = {}
        self.left: set[TopicPartition] = set()
        self.holds: list[tuple[str, TopicPartition]] = []

    def join(self, reader: object, starts: dict[TopicPartition, int]) -> None:
        self.joined.update(starts)

    def leave(self, reader: object, partitions: set[TopicPartition]) -> None:
        self.left |= set(partitions)

    def hold(self, reader: object, tp: TopicPartition) -> None:
        if ("hold", tp) not in self.holds:  # the worker may repeat itself
            self.holds.append(("hold", tp))

    def release(self, reader: object, tp: TopicPartition) -> None:
        if self.holds and self.holds[-1] == ("hold", tp):
            self.holds.append(("release", tp))


def _worker(consumer: GroupConsumer, retractions: FakeFeed, dispatches: FakeFeed) -> AdapterWorker:
    class Adapter:
        operator = "turkcell"

    return AdapterWorker(
        cast(OperatorAdapter, Adapter()),
        cast(AIOKafkaConsumer, consumer),
        cast(DeliveryRecorder, None),
        WorkerPolicy(),
        dispatch_topic=DISPATCH.topic,
        retraction_topic=LANE[0].topic,
        dead_letters=cast(Any, None),
        retraction_feed=cast(LaneFeed, retractions),
        dispatch_feed=cast(LaneFeed, dispatches),
    )


async def test_a_worker_joins_at_committed_offsets_and_drops_revoked_partitions() -> None:
    consumer, feed, dispatches = GroupConsumer(), FakeFeed(), FakeFeed()
    worker = _worker(consumer, feed, dispatches)
    scheduled: list[Any] = []

    async def schedule(records: Sequence[Any]) -> None:
        scheduled.extend(records)

    worker._schedule = schedule  # type: ignore[method-assign]
    await worker.assigned({DISPATCH, *LANE})
    assert feed.joined == {LANE[0]: 4, LANE[1]: 0}  # committed, or from the start
    assert dispatches.joined == {DISPATCH: 4}
    assert consumer.paused == {DISPATCH, *LANE}  # the worker's consumer leaves them to the feeds

    await worker.receive_from_feed([Record(LANE[0].topic, 0, 4), Record(LANE[1].topic, 1, 0)])
    assert [(r.partition, r.offset) for r in scheduled] == [(0, 4), (1, 0)]
    await worker.revoked({LANE[1], DISPATCH})
    assert feed.left == {LANE[1]}
    assert dispatches.left == {DISPATCH}
    await worker.receive_from_feed([Record(LANE[0].topic, 0, 5), Record(LANE[1].topic, 1, 1)])
    assert [(r.partition, r.offset) for r in scheduled][2:] == [(0, 5)]


async def test_a_worker_with_too_much_unfinished_work_is_held_in_the_dispatch_feed_only() -> None:
    from operator_adapters.worker import PAUSE_ABOVE, RESUME_BELOW, _Job

    consumer, retractions, dispatches = GroupConsumer(), FakeFeed(), FakeFeed()
    worker = _worker(consumer, retractions, dispatches)
    backlog = PAUSE_ABOVE + 1
    opened: list[tuple[TopicPartition, int]] = []

    async def schedule(records: Sequence[Any]) -> None:  # every record stays unfinished
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            worker._progress[tp].started(r.offset)
            opened.append((tp, r.offset))

    worker._schedule = schedule  # type: ignore[method-assign]
    await worker.assigned({DISPATCH, LANE[0]})
    await worker.receive_from_feed([Record(LANE[0].topic, 0, o) for o in range(backlog)])
    assert not retractions.holds
    assert not dispatches.holds
    await worker.receive_from_feed([Record(DISPATCH.topic, 0, o) for o in range(4, 4 + backlog)])
    assert dispatches.holds == [("hold", DISPATCH)]
    for tp, offset in opened[backlog:][: backlog - RESUME_BELOW]:  # done, down to the mark
        worker._done(cast(_Job, type("J", (), {"tp": tp, "offset": offset})()))
    assert dispatches.holds == [("hold", DISPATCH)]
    tp, offset = opened[-RESUME_BELOW]
    worker._done(cast(_Job, type("J", (), {"tp": tp, "offset": offset})()))
    assert dispatches.holds == [("hold", DISPATCH), ("release", DISPATCH)]
