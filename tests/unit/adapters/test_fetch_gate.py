"""The fetch gate: an idle consumer pauses, a nudge wakes it, and it never sleeps on
records it was promised."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from operator_adapters.fetch_gate import LINGER_S, OWED_FOR_S, RECHECK_MAX_S, FetchGate

DISPATCH = [TopicPartition("kayip.alert.events", p) for p in range(3)]
RETRACTION = [TopicPartition("kayip.retractions", p) for p in range(3)]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


def _got(next_offsets: dict[TopicPartition, int]) -> list[Record]:
    """A poll's records: the last one of each partition just below ``next_offsets``."""
    return [Record(tp.topic, tp.partition, end - 1) for tp, end in next_offsets.items()]


class FakeConsumer:
    """Tracks paused partitions the way aiokafka does (pause/resume are idempotent)."""

    def __init__(self, partitions: list[TopicPartition]) -> None:
        self.assigned = set(partitions)
        self.paused: set[TopicPartition] = set()
        self.answered_at_ms: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        assert set(partitions) <= self.assigned
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        assert set(partitions) <= self.assigned
        self.paused.difference_update(partitions)

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None:
        return self.answered_at_ms.get(partition)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)


def _gate(partitions: list[TopicPartition] | None = None) -> tuple[FetchGate, FakeConsumer, Clock]:
    consumer = FakeConsumer(DISPATCH + RETRACTION if partitions is None else partitions)
    clock = Clock()
    gate = FetchGate(consumer, enabled=True, recheck_s=0.1, clock=clock, wall_ms=clock.ms)
    return gate, consumer, clock


def _idle_until_asleep(gate: FetchGate, clock: Clock) -> None:
    clock.now += LINGER_S
    gate.polled([])
    assert gate.asleep


def test_an_idle_consumer_pauses_every_partition() -> None:
    gate, consumer, clock = _gate()
    gate.polled([])
    assert not gate.asleep  # still inside the linger after start
    _idle_until_asleep(gate, clock)
    assert consumer.paused == consumer.assigned
    assert gate.sleeps == 1


def test_a_nudge_resumes_fetching_at_once() -> None:
    gate, consumer, clock = _gate()
    _idle_until_asleep(gate, clock)
    gate.nudge({DISPATCH[1]: 5})
    assert not gate.asleep
    assert consumer.paused == set()


def test_it_stays_awake_until_the_promised_offsets_arrive() -> None:
    """A fetch already on its way when the records landed comes back empty: sleeping
    then would leave the records to the next recheck."""
    gate, consumer, clock = _gate()
    _idle_until_asleep(gate, clock)
    gate.nudge({DISPATCH[1]: 5, RETRACTION[2]: 9})
    for _ in range(10):  # long past the linger, nothing fetched yet
        clock.now += LINGER_S
        gate.polled([])
        assert not gate.asleep
    gate.polled(_got({DISPATCH[1]: 5}))
    clock.now += LINGER_S
    gate.polled([])
    assert not gate.asleep  # the retraction lane is still owed
    gate.polled(_got({RETRACTION[2]: 9}))
    clock.now += LINGER_S
    gate.polled([])
    assert gate.asleep


def test_a_promise_lapses_for_a_partition_it_no_longer_owns_or_after_a_while() -> None:
    gate, consumer, clock = _gate()
    gate.nudge({DISPATCH[0]: 3, DISPATCH[2]: 4})
    consumer.assigned.discard(DISPATCH[0])  # rebalanced away
    clock.now += LINGER_S
    gate.polled([])
    assert not gate.asleep  # DISPATCH[2] is still owed
    clock.now += OWED_FOR_S
    gate.polled([])
    assert gate.asleep  # a broker that lost its log never reaches the offset


def test_records_keep_it_awake() -> None:
    gate, consumer, clock = _gate()
    for offset in range(1, 20):
        clock.now += LINGER_S / 2
        gate.polled(_got({DISPATCH[0]: offset}))
        assert not gate.asleep
    clock.now += LINGER_S
    gate.polled([])
    assert gate.asleep


def test_asleep_it_rechecks_until_a_fetch_sent_after_the_recheck_is_answered() -> None:
    gate, consumer, clock = _gate()
    _idle_until_asleep(gate, clock)
    assert 1 <= gate.poll_timeout_ms() <= 101  # waits for the recheck, not longer
    clock.now += 0.1
    gate.polled([])
    assert not gate.asleep
    assert consumer.paused == set()
    clock.now += 0.01
    gate.polled([])
    assert not gate.asleep  # its fetch has not been answered yet
    consumer.answered_at_ms[DISPATCH[0]] = clock.ms()
    clock.now += 0.001
    gate.polled([])
    assert gate.asleep
    assert consumer.paused == consumer.assigned


def test_a_recheck_gives_up_waiting_for_an_answer() -> None:
    gate, consumer, clock = _gate()
    _idle_until_asleep(gate, clock)
    clock.now += 0.1
    gate.polled([])
    clock.now += RECHECK_MAX_S
    gate.polled([])
    assert gate.asleep  # a broker that does not answer is not waited for forever


def test_new_partitions_keep_it_awake_until_their_first_fetch_is_answered() -> None:
    """Records published before this consumer owned a partition were nudged to
    somebody else (or to nobody): the first fetch finds them."""
    gate, consumer, clock = _gate(DISPATCH)
    _idle_until_asleep(gate, clock)
    consumer.assigned.update(RETRACTION)
    gate.assigned()
    assert not gate.asleep
    assert consumer.paused == set()
    clock.now += RECHECK_MAX_S * 4  # joining a group takes a while: still waiting
    gate.polled([])
    assert not gate.asleep
    consumer.answered_at_ms[RETRACTION[0]] = clock.ms() + 1
    clock.now += 0.002
    gate.polled([])
    assert gate.asleep


def test_partitions_assigned_while_asleep_are_paused_too() -> None:
    gate, consumer, clock = _gate(DISPATCH)
    _idle_until_asleep(gate, clock)
    consumer.assigned.update(RETRACTION)
    clock.now += 0.01
    gate.polled([])
    assert consumer.paused == consumer.assigned


def test_flow_control_and_idling_never_undo_each_other() -> None:
    gate, consumer, clock = _gate()
    gate.hold(DISPATCH[0])
    assert consumer.paused == {DISPATCH[0]}
    clock.now += LINGER_S * 10
    gate.polled([])
    assert not gate.asleep  # a held partition is a backlog: not idle
    gate.nudge({RETRACTION[0]: 1})
    assert consumer.paused == {DISPATCH[0]}  # waking does not resume a held partition
    gate.release(DISPATCH[0])
    assert consumer.paused == set()
    gate.polled(_got({RETRACTION[0]: 1}))
    _idle_until_asleep(gate, clock)
    gate.hold(DISPATCH[1])
    gate.release(DISPATCH[1])  # released while asleep: its backlog waits, so it wakes
    assert not gate.asleep
    assert consumer.paused == set()


def test_a_busy_worker_never_sleeps_and_polls_as_before() -> None:
    """Pausing a busy consumer would drop records it has fetched but not handed out."""
    gate, consumer, clock = _gate()
    for _ in range(10):
        clock.now += LINGER_S * 10
        gate.polled([], busy=True)
        assert not gate.asleep
        assert gate.poll_timeout_ms() == 200
    gate.polled([], busy=False)
    _idle_until_asleep(gate, clock)


def test_disabled_it_never_pauses_and_polls_as_before() -> None:
    consumer = FakeConsumer(DISPATCH)
    clock = Clock()
    gate = FetchGate(consumer, enabled=False, clock=clock, wall_ms=clock.ms)
    for _ in range(5):
        clock.now += 1.0
        gate.polled([])
    gate.nudge({DISPATCH[0]: 1})
    assert not gate.asleep
    assert consumer.paused == set()
    assert gate.poll_timeout_ms() == 200
    gate.hold(DISPATCH[0])
    assert consumer.paused == {DISPATCH[0]}  # flow control still works
    gate.release(DISPATCH[0])
    assert consumer.paused == set()


def test_partitions_fetched_elsewhere_stay_paused_and_are_never_owed() -> None:
    """The retraction lane, when the shared feed fetches it: waking the consumer must
    not resume it (the worker would fetch it twice), and a nudge for it alone neither
    wakes the consumer nor keeps it awake."""
    gate, consumer, clock = _gate()
    gate.fetched_elsewhere(RETRACTION)
    assert consumer.paused == set(RETRACTION)
    _idle_until_asleep(gate, clock)
    gate.nudge({RETRACTION[0]: 7})
    assert gate.asleep
    gate.nudge({DISPATCH[0]: 3})
    assert not gate.asleep
    assert consumer.paused == set(RETRACTION)
    gate.polled(_got({DISPATCH[0]: 3}))
    clock.now += LINGER_S
    gate.polled([])
    assert gate.asleep  # nothing of the retraction lane is owed here
