"""While a retraction is on its way, dispatch attempts wait (but never without bound)."""

from __future__ import annotations

import asyncio
import time

import pytest

from operator_adapters.priority import RetractionPriority

pytestmark = pytest.mark.asyncio


async def test_dispatches_go_at_once_when_no_retraction_is_pending() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=5)
    await asyncio.wait_for(priority.dispatch_turn(), 0.5)


async def test_a_pending_retraction_holds_dispatches_until_it_has_an_answer() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=5)
    first, second = priority.begin(), priority.begin()
    waiting = asyncio.create_task(priority.dispatch_turn())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    priority.end(first)
    await asyncio.sleep(0.05)
    assert not waiting.done(), "one retraction is still pending"
    priority.end(second)
    await asyncio.wait_for(waiting, 1)
    assert priority.pending == 0


async def test_a_retraction_that_hangs_holds_dispatches_back_only_for_the_maximum() -> None:
    priority = RetractionPriority(max_hold_s=0.1, max_wait_s=5)
    priority.begin()  # never ends
    started = time.monotonic()
    await asyncio.wait_for(priority.dispatch_turn(), 2)
    assert 0.09 <= time.monotonic() - started < 2
    # Past its hold, a hung retraction no longer delays anyone.
    await asyncio.wait_for(priority.dispatch_turn(), 0.05)


async def test_a_later_retraction_extends_the_hold_to_its_own_maximum() -> None:
    priority = RetractionPriority(max_hold_s=0.2, max_wait_s=5)
    priority.begin()
    waiting = asyncio.create_task(priority.dispatch_turn())
    await asyncio.sleep(0.1)
    later = priority.begin()  # holds until 0.3 s
    await asyncio.sleep(0.15)  # 0.25 s: the first hold is over, the later one is not
    assert not waiting.done()
    priority.end(later)
    await asyncio.wait_for(waiting, 0.5)


async def test_ending_a_token_twice_is_harmless() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=5)
    token = priority.begin()
    priority.end(token)
    priority.end(token)
    await asyncio.wait_for(priority.dispatch_turn(), 0.5)
    assert priority.pending == 0


async def test_a_decided_retraction_holds_until_every_worker_here_has_fetched_it() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=5)
    priority.expect("alert-1", fetches=3, hold_s=5)
    waiting = asyncio.create_task(priority.dispatch_turn())
    for _ in range(2):
        token = priority.begin()  # a worker fetched it and holds on its own
        priority.fetched("alert-1")
        priority.end(token)  # ... and had its answer
        await asyncio.sleep(0.02)
        assert not waiting.done(), "a worker has not fetched it yet"
    token = priority.begin()
    priority.fetched("alert-1")
    priority.end(token)
    await asyncio.wait_for(waiting, 1)
    assert priority.pending == 0


async def test_a_decided_retraction_that_is_never_fetched_stops_holding_after_its_hold() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=5)
    priority.expect("alert-1", fetches=3, hold_s=0.1)
    await asyncio.wait_for(priority.dispatch_turn(), 2)
    priority.fetched("alert-1")  # late: harmless
    priority.fetched("unknown")
    assert priority.pending <= 1


async def test_a_stream_of_retractions_never_holds_one_dispatch_longer_than_its_wait() -> None:
    priority = RetractionPriority(max_hold_s=5, max_wait_s=0.1)
    priority.begin()
    waiting = asyncio.create_task(priority.dispatch_turn())
    started = time.monotonic()
    for _ in range(10):  # a new retraction every 30 ms, each holding for 5 s
        await asyncio.sleep(0.03)
        priority.begin()
        if waiting.done():
            break
    await asyncio.wait_for(waiting, 1)
    # Well under the 0.3 s stream plus a 5 s hold that a wait renewed by each new
    # retraction would take; loose enough for a busy machine's scheduling hiccups.
    assert time.monotonic() - started < 0.6


async def test_expired_holds_and_unfetched_expectations_are_forgotten() -> None:
    now = [0.0]
    priority = RetractionPriority(max_hold_s=1, max_wait_s=5, clock=lambda: now[0])
    priority.begin()  # never ended: its worker crashed
    priority.expect("owned-elsewhere", fetches=1, hold_s=0.5)  # never fetched here
    assert priority.pending == 2
    now[0] = 2.0
    priority.begin()
    assert priority.pending == 1  # only the new one
    priority.fetched("owned-elsewhere")  # late: harmless
    assert priority.pending == 1
