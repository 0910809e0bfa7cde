"""Topic names, in one place so every process agrees on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str

    @property
    def alert_events(self) -> str:
        """Dispatches and retractions share one topic keyed by alert id, so a
        retraction can never overtake its dispatch within an operator's stream."""
        return f"{self.prefix}.alert-events.v1"

    def all(self) -> list[str]:
        return [self.alert_events]


def consumer_group(prefix: str, operator: str) -> str:
    """One group per operator: each operator gets every message once."""
    return f"{prefix}.adapter.{operator}"
