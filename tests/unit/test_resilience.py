"""Retry schedule, circuit breaker and commit bookkeeping of the adapter worker."""

from __future__ import annotations

import pytest

from operator_adapters.resilience import BreakerOpen, CircuitBreaker, RetryPolicy
from operator_adapters.worker import PartitionProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_full_jitter_stays_under_the_exponential_cap_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=0.1, cap_s=1.0, deadline_s=10)
    for attempt in range(1, 12):
        ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered over the whole range, not fixed
    assert policy.delay(1, retry_after_s=7.0) == 7.0


def test_the_deadline_counts_the_next_wait_and_none_means_never() -> None:
    assert RetryPolicy(deadline_s=10).out_of_time(elapsed_s=9.0, next_delay_s=2.0)
    assert not RetryPolicy(deadline_s=10).out_of_time(elapsed_s=7.0, next_delay_s=2.0)
    assert not RetryPolicy(deadline_s=None).out_of_time(elapsed_s=1e9, next_delay_s=1e9)


def test_the_breaker_opens_after_the_threshold_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, open_s=5.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_in_s == pytest.approx(5.0)
    clock.now = 5.0
    assert breaker.state == "half_open"
    breaker.before_call()  # the probe
    with pytest.raises(BreakerOpen):
        breaker.before_call()  # only one at a time
    breaker.failure()  # the probe failed: open again for a full period
    assert breaker.state == "open"
    clock.now = 10.0
    breaker.before_call()
    breaker.success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2, open_s=1.0, clock=FakeClock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed"


def test_commits_never_skip_an_unfinished_offset() -> None:
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.started(offset)
    progress.finished(12)
    progress.finished(13)
    assert progress.committable is None  # 10 and 11 still running
    progress.finished(10)
    assert progress.committable == 11  # Kafka commits the next offset to read
    progress.finished(11)
    assert progress.committable == 14
    assert len(progress) == 0
