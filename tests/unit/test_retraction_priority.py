"""While a retraction is on its way, dispatch attempts wait (but never without bound)."""

from __future__ import annotations

import asyncio
import time

import pytest

from operator_adapters.priority import RetractionPriority

pytestmark = pytest.mark.asyncio


async def test_dispatches_go_at_once_when_no_retraction_is_pending() -> None:
    priority = RetractionPriority(max_hold_s=5)
    started = time.monotonic()
    await priority.dispatch_turn()
    assert time.monotonic() - started < 1


async def test_a_pending_retraction_holds_dispatches_until_it_has_an_answer() -> None:
    priority = RetractionPriority(max_hold_s=5)
    priority.begin()
    priority.begin()
    waiting = asyncio.create_task(priority.dispatch_turn())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    priority.end()
    await asyncio.sleep(0.05)
    assert not waiting.done(), "one retraction is still pending"
    priority.end()
    await asyncio.wait_for(waiting, 1)
    assert priority.pending == 0


async def test_a_retraction_that_hangs_holds_dispatches_back_only_for_the_maximum() -> None:
    priority = RetractionPriority(max_hold_s=0.1)
    priority.begin()
    started = time.monotonic()
    await asyncio.wait_for(priority.dispatch_turn(), 2)
    assert 0.09 <= time.monotonic() - started < 2


async def test_ending_more_often_than_beginning_never_blocks_later_dispatches() -> None:
    priority = RetractionPriority(max_hold_s=5)
    priority.end()
    priority.begin()
    priority.end()
    await asyncio.wait_for(priority.dispatch_turn(), 1)
    assert priority.pending == 0
