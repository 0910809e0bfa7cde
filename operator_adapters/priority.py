"""Retractions first: while one is on its way to an operator, dispatches wait.

The retraction lane is separate in Kafka, but in the end both lanes share this
process's event loop, CPU and connections. With a dispatch backlog the loop is
busy rendering, signing and sending dispatches, and a retraction waits its turn
behind them. So a retraction holds new dispatch attempts in this process back:
from the moment the API here commits it (``expect``) until every worker here has
fetched it, and from each worker's fetch (``begin``) until its first attempt has
an answer (``end``). Dispatches already on the wire finish; a dispatch that holds
a concurrency slot waits in it, so only a handful of tasks wait here and the end
of a hold wakes only those. A missing child who has been found matters more than
the next alert's throughput.

Every hold is bounded: a retraction whose operator hangs must not stop every
other operator's alerts, so each holds for at most ``max_hold_s``. And a dispatch
waits at most ``max_wait_s`` in all, however many retractions follow one another
(a mass resolve must not starve a new alert).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable


class RetractionPriority:
    """Shared by the adapter workers of one process.

    Each retraction holds dispatches back for at most ``max_hold_s`` from the moment
    it was fetched; a stream of retractions (a mass resolve) holds them for as long
    as it lasts, since each one is short. Dispatches that waited then go through
    their operator's concurrency slots as before."""

    def __init__(
        self,
        max_hold_s: float = 1.0,
        max_wait_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_hold_s = max_hold_s
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._holds: dict[int, float] = {}  # token -> until when it holds
        self._tokens = itertools.count()
        self._released = asyncio.Event()
        # alert id -> [token, fetches still to come]: held until every worker fetched it
        self._expected: dict[str, list[int]] = {}

    @property
    def pending(self) -> int:
        return len(self._holds)

    def begin(self, hold_s: float | None = None) -> int:
        """A retraction was fetched and will be sent; returns its token for ``end``."""
        now = self._clock()
        self._forget_expired(now)
        token = next(self._tokens)
        self._holds[token] = now + (self._max_hold_s if hold_s is None else hold_s)
        return token

    def _forget_expired(self, now: float) -> None:
        """Holds past their deadline hold nothing; drop them, and expectations whose
        retraction a worker here never fetched (another process owns its partition)."""
        expired = [t for t, until in self._holds.items() if until <= now]
        for token in expired:
            del self._holds[token]
        if expired:
            gone = set(expired)
            for alert_id in [a for a, (t, _) in self._expected.items() if t in gone]:
                del self._expected[alert_id]

    def expect(self, alert_id: str, fetches: int, hold_s: float = 0.5) -> None:
        """A retraction was decided in this process: hold dispatches already, while the
        relay publishes it and the ``fetches`` workers here fetch it (each takes over
        with ``begin``)."""
        previous = self._expected.pop(alert_id, None)
        if previous is not None:
            self.end(previous[0])
        if fetches > 0:
            self._expected[alert_id] = [self.begin(hold_s), fetches]

    def fetched(self, alert_id: str) -> None:
        """A worker has fetched the alert's retraction and holds dispatches itself."""
        expected = self._expected.get(alert_id)
        if expected is None:
            return
        expected[1] -= 1
        if expected[1] <= 0:
            del self._expected[alert_id]
            self.end(expected[0])

    def end(self, token: int) -> None:
        """Its first attempt has an answer (or it turned out not to be owed)."""
        self._holds.pop(token, None)
        if not self._holds:
            self._released.set()

    async def dispatch_turn(self) -> None:
        """Wait while a retraction holds dispatches back, at most ``max_wait_s``."""
        give_up = self._clock() + self._max_wait_s
        while self._holds:
            until = min(max(self._holds.values()), give_up)
            remaining = until - self._clock()
            if remaining <= 0:
                return
            self._released.clear()
            try:
                await asyncio.wait_for(self._released.wait(), remaining)
            except TimeoutError:
                pass
