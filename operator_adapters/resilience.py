"""How a worker treats an operator that fails, hangs or throttles: retry, breaker, rate.

These are per operator and per process: one dead operator's breaker opens and
its deliveries wait in backoff, while the other operators' workers are not
touched at all (they have their own consumers, clients' limits and breakers).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a deadline.

    ``deadline_s`` None means "never give up" (retractions: they alarm instead).
    """

    base_s: float = 0.05
    cap_s: float = 10.0
    deadline_s: float | None = 300.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Full jitter (AWS architecture blog), but never sooner than Retry-After asks."""
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        return max(backoff, retry_after_s or 0.0)

    def out_of_time(self, elapsed_s: float, next_delay_s: float) -> bool:
        return self.deadline_s is not None and elapsed_s + next_delay_s > self.deadline_s


class BreakerOpen(Exception):
    """The operator is failing: calls are refused without touching the network."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"circuit open for {retry_in_s:.2f} s")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after ``open_s``.

    Half-open lets one probe through; its success closes the breaker, its failure
    opens it again. While open, deliveries fail fast into their backoff, so a hung
    operator costs a timer instead of a connection and a timeout per message.
    """

    def __init__(
        self,
        threshold: int = 5,
        open_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.open_s:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Raise :class:`BreakerOpen` unless a call may go out now."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if waited < self.open_s:
            raise BreakerOpen(self.open_s - waited)
        if self._probing:
            raise BreakerOpen(min(self.open_s, 0.1))
        self._probing = True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False


class RateLimiter:
    """Token bucket: at most ``rate_per_s`` calls per second, bursts of ``burst``."""

    def __init__(self, rate_per_s: float | None, burst: int | None = None) -> None:
        self.rate_per_s = rate_per_s
        self._capacity = float(burst or max(1, int(rate_per_s or 1)))
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate_per_s is None:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._updated) * self.rate_per_s
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate_per_s)
