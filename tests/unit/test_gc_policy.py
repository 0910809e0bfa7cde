"""The garbage-collection policy: a backlog's steady promotions start no full collection."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.gc_policy import YOUNG_COLLECTIONS_PER_FULL, settle_after_startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test does to the collector is undone for the rest of the session."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _full_collections_during(work: Callable[[], object]) -> int:
    started = 0

    def count(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start" and info["generation"] == 2:
            started += 1

    gc.callbacks.append(count)
    try:
        work()
    finally:
        gc.callbacks.remove(count)
    return started


def _hold_like_a_backlog() -> list[list[float]]:
    """Long-lived small containers arriving steadily, as parsed dispatch events'
    coordinate lists do while they wait for a connection slot."""
    kept: list[list[float]] = []
    for i in range(300_000):
        kept.append([float(i), 1.0])
    return kept


@pytest.mark.usefixtures("restored_gc")
def test_default_thresholds_collect_fully_during_a_backlog() -> None:
    """The control: with CPython's defaults the same work does start full collections,
    so the next test could fail. The test process's own objects are frozen first, as
    the service's are, so that how many the test run happens to hold does not decide
    (a full collection waits until the promoted exceed a quarter of the old)."""
    gc.collect()
    gc.freeze()
    gc.collect()  # the old generation is empty now, and CPython's count of it too
    gc.set_threshold(700, 10, 10)
    assert _full_collections_during(_hold_like_a_backlog) >= 1


@pytest.mark.usefixtures("restored_gc")
def test_after_startup_a_backlog_starts_no_full_collection() -> None:
    settle_after_startup()
    assert gc.get_threshold()[2] == YOUNG_COLLECTIONS_PER_FULL
    assert gc.get_freeze_count() > 0  # start-up's objects are out of every collection
    assert _full_collections_during(_hold_like_a_backlog) == 0


@pytest.mark.usefixtures("restored_gc")
def test_young_collections_keep_their_defaults() -> None:
    """Cycles that die young are still collected as often as before."""
    before = gc.get_threshold()[:2]
    settle_after_startup()
    assert gc.get_threshold()[:2] == before
