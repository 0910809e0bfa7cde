"""Dispatches in flight follow the operator's answer times (operator_adapters/concurrency.py)."""

from __future__ import annotations

import asyncio

import pytest

from operator_adapters.concurrency import PROBE_EVERY_S, PROBE_MAX_S, AdaptiveLimit

SERVICE_S = 0.001  # one request's work at the operator
NETWORK_S = 0.0005


def _queueing_operator(limit: AdaptiveLimit, answers: int) -> None:
    """An operator that answers one request at a time: with ``n`` in flight, an answer
    takes the network time plus ``n`` requests' work. The adapter keeps every slot it
    may use busy (a backlog), as the worker does."""
    for _ in range(answers):
        in_flight = limit.capacity
        limit.observe(NETWORK_S + in_flight * SERVICE_S, in_flight)


def test_an_operator_that_queues_gets_two_or_three_in_flight_not_eight() -> None:
    limit = AdaptiveLimit(8)
    _queueing_operator(limit, 200)
    assert 2 <= int(limit.limit) <= 3


def test_an_operator_that_answers_in_parallel_keeps_every_slot() -> None:
    limit = AdaptiveLimit(8, minimum=1)
    limit.limit = 2.0  # say it had queued earlier
    for _ in range(200):
        limit.observe(0.2, limit.capacity)  # 200 ms whatever the load: far away, not busy
    assert limit.limit == 8.0


def test_no_growth_without_use_and_never_beyond_the_bounds() -> None:
    limit = AdaptiveLimit(8, minimum=3)
    limit.limit = 4.0
    for _ in range(100):
        limit.observe(0.001, in_flight=1)  # fast answers, but only one in flight
    assert limit.limit == 4.0  # nothing shows that more in flight would be served
    for _ in range(500):
        limit.observe(0.001, in_flight=1)
        limit.observe(0.009, in_flight=8)  # eight queued one behind the other
    assert limit.limit == 3.0


def test_fixed_when_not_adaptive() -> None:
    limit = AdaptiveLimit(8, adaptive=False)
    _queueing_operator(limit, 200)
    assert limit.limit == 8.0


def test_an_operator_that_got_slower_is_measured_again_not_starved() -> None:
    """2 ms an answer, then 200 ms: slower than eight queued requests could make it."""
    limit = AdaptiveLimit(8)
    for _ in range(50):
        limit.observe(0.002, limit.capacity)
    assert limit.limit == 8.0
    limit.observe(0.2, 8)
    assert limit.capacity == 1  # a probe: one request alone
    limit.observe(0.2, 1)
    assert limit.base_s == pytest.approx(0.2)
    assert limit.capacity == 8  # not held at one in flight
    for _ in range(100):
        limit.observe(0.2, limit.capacity)
    assert limit.limit == 8.0


def test_rejects_impossible_bounds() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(2, minimum=3)
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(2, minimum=0)


def test_a_steady_queue_does_not_pass_for_the_operators_own_time() -> None:
    """Under a backlog no request goes alone; probes still measure the operator."""
    now = [0.0]
    limit = AdaptiveLimit(8, clock=lambda: now[0])
    assert limit.capacity == 1  # it starts with a probe
    _queueing_operator(limit, 200)
    settled = int(limit.limit)
    probes = limit.probes
    for _ in range(5):
        now[0] += PROBE_EVERY_S
        limit.observe(NETWORK_S + settled * SERVICE_S, settled)  # time for a probe
        assert limit.capacity == 1  # probing: only an unqueued request goes
        _queueing_operator(limit, 200)
    assert limit.probes == probes + 5
    assert limit.base_s == pytest.approx(NETWORK_S + SERVICE_S)
    assert 2 <= int(limit.limit) <= 3


def test_a_probe_without_an_unqueued_answer_ends_after_its_time() -> None:
    now = [0.0]
    limit = AdaptiveLimit(8, clock=lambda: now[0])
    limit.observe(0.2, 5)  # answers of requests sent before the probe began
    assert limit.capacity == 1
    now[0] += PROBE_MAX_S
    assert limit.capacity == 8


async def test_slots_are_handed_out_in_order_and_a_lower_limit_holds_new_ones() -> None:
    limit = AdaptiveLimit(2, adaptive=False)
    order: list[int] = []
    release = asyncio.Event()

    async def request(n: int) -> None:
        async with limit:
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(request(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert order == [0, 1]
    assert limit.in_flight == 2
    limit.limit = 1.0  # the operator started queueing
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert limit.in_flight == 0


async def test_a_higher_limit_wakes_waiters_at_once() -> None:
    limit = AdaptiveLimit(3)
    limit.limit = 1.0
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with limit:
            await release.wait()

    async def waiter() -> None:
        async with limit:
            entered.set()

    first = asyncio.create_task(holder())
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert not entered.is_set()
    for _ in range(20):
        limit.observe(0.2, in_flight=int(limit.limit))  # parallel operator: room for more
    await asyncio.wait_for(entered.wait(), 1.0)
    release.set()
    await asyncio.gather(first, second)
    assert limit.in_flight == 0


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_gives_it_back() -> None:
    limit = AdaptiveLimit(1)
    release = asyncio.Event()
    waiting: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with limit:
            await release.wait()
        waiting[0].cancel()  # the slot was just handed to it, before it could run

    async def waiter() -> None:
        async with limit:
            raise AssertionError("a cancelled waiter must not run")

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(waiter()))
    await asyncio.sleep(0)
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    assert limit.in_flight == 0
    async with limit:  # and the slot is free for the next one
        assert limit.in_flight == 1


async def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    limit = AdaptiveLimit(1)
    release = asyncio.Event()
    after: list[str] = []

    async def holder() -> None:
        async with limit:
            await release.wait()

    async def waiter(name: str) -> None:
        async with limit:
            after.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone = asyncio.create_task(waiter("gone"))
    kept = asyncio.create_task(waiter("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    release.set()
    await asyncio.gather(first, kept)
    assert after == ["kept"]
    assert limit.in_flight == 0
