"""Topic names, in one place so every process agrees on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str

    @property
    def alert_events(self) -> str:
        """The dispatch lane: dispatches, updates and link tests, keyed by alert id (link
        tests by ``link:<operator>``), so one alert's messages stay in order."""
        return f"{self.prefix}.alert-events.v1"

    @property
    def retractions(self) -> str:
        """The retraction lane: its own topic, so no dispatch backlog delays a retraction.
        Same key and partition count as ``alert_events``, so with the range assignor a
        worker owns partition *p* of both topics and sees an alert's lanes together."""
        return f"{self.prefix}.alert-retractions.v1"

    @property
    def dead_letters(self) -> str:
        """Deliveries that ran out of retry deadline; for operations to alarm on."""
        return f"{self.prefix}.dead-letters.v1"

    def all(self) -> list[str]:
        return [self.alert_events, self.retractions, self.dead_letters]


def consumer_group(prefix: str, operator: str) -> str:
    """One group per operator: each operator gets every message once."""
    return f"{prefix}.adapter.{operator}"
