"""Retractions first: while one is on its way to an operator, dispatches wait.

The retraction lane is separate in Kafka, but in the end both lanes share this
process's event loop, CPU and connections. With a dispatch backlog the loop is
busy rendering, signing and sending dispatches, and a fetched retraction waits its
turn behind them. So a retraction, from the moment it is fetched until its first
attempt has an answer, holds every new dispatch attempt in the process back (those
already on the wire finish). A missing child who has been found matters more than
the next alert's throughput.

The hold is bounded: a retraction whose operator hangs must not stop every other
operator's alerts, so a dispatch waits at most ``max_hold_s`` before it goes anyway.
"""

from __future__ import annotations

import asyncio


class RetractionPriority:
    """Shared by the adapter workers of one process."""

    def __init__(self, max_hold_s: float = 1.0) -> None:
        self._max_hold_s = max_hold_s
        self._pending = 0
        self._clear = asyncio.Event()
        self._clear.set()

    @property
    def pending(self) -> int:
        return self._pending

    def begin(self) -> None:
        """A retraction was fetched and will be sent."""
        self._pending += 1
        self._clear.clear()

    def end(self) -> None:
        """Its first attempt has an answer (or it turned out not to be owed)."""
        self._pending = max(0, self._pending - 1)
        if self._pending == 0:
            self._clear.set()

    async def dispatch_turn(self) -> None:
        """Wait while retractions are pending, at most ``max_hold_s``."""
        if self._clear.is_set():
            return
        try:
            await asyncio.wait_for(self._clear.wait(), self._max_hold_s)
        except TimeoutError:
            pass
