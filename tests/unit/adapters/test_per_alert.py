"""The worker's per-alert locks and wake-ups live only while a task uses them."""

from __future__ import annotations

import asyncio

import pytest

from operator_adapters.worker import PerAlert


def test_one_object_while_used_then_forgotten() -> None:
    locks: PerAlert[asyncio.Lock] = PerAlert(asyncio.Lock)
    with locks.use("a") as first:
        with locks.use("a") as second:
            assert second is first  # concurrent users share it
            assert locks.peek("a") is first
        assert locks.peek("a") is first  # one user still holds it
    assert locks.peek("a") is None
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_a_waiter_keeps_the_lock_alive_and_the_map_ends_empty() -> None:
    locks: PerAlert[asyncio.Lock] = PerAlert(asyncio.Lock)
    order: list[str] = []

    async def attempt(name: str, hold_s: float) -> None:
        with locks.use("alert") as lock:
            async with lock:
                order.append(name)
                await asyncio.sleep(hold_s)

    await asyncio.gather(attempt("dispatch", 0.02), attempt("retraction", 0))
    assert order == ["dispatch", "retraction"]  # the second waited for the first
    assert len(locks) == 0

    for i in range(1000):  # many alerts, one after another: nothing accumulates
        await attempt(f"alert-{i}", 0)
    assert len(locks) == 0
