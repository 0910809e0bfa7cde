"""How far a missing person can plausibly be, given how long they have been gone.

The model is deliberately simple and conservative (better to alert a few extra
people than to miss the person):

``radius = clamp(floor, speed * elapsed_hours, cap)``

============  ===========  ========  =========  ============================
mode          speed        floor     cap        reasoning
============  ===========  ========  =========  ============================
``on_foot``   5 km/h       1 km      25 km      brisk adult walking pace; the
                                                floor covers "last seen five
                                                minutes ago" uncertainty; after
                                                ~5 h a walker is rarely further
                                                than 25 km (lost-person
                                                statistics put 95 % of walkers
                                                well inside that).
``vehicle``   60 km/h      5 km      120 km     average door-to-door road speed
                                                including towns; the cap keeps
                                                the circle (45,000 km²) under
                                                the 60,000 km² area limit.
============  ===========  ========  =========  ============================

Elapsed time is ``now - last_seen_at``; a last-seen time in the future, or a mix
of naive and timezone-aware datetimes, is rejected as ``invalid_time``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from geofence.errors import GeofenceError


@dataclass(frozen=True, slots=True)
class TravelModel:
    """Speed, floor and cap for one travel mode."""

    speed_kmh: float
    floor_m: float
    cap_m: float


TRAVEL_MODELS: dict[str, TravelModel] = {
    "on_foot": TravelModel(speed_kmh=5.0, floor_m=1000.0, cap_m=25000.0),
    "vehicle": TravelModel(speed_kmh=60.0, floor_m=5000.0, cap_m=120000.0),
}


def auto_radius_m(
    last_seen_at: datetime, now: datetime, mode: Literal["on_foot", "vehicle"] | str
) -> float:
    """Search radius in metres for the time elapsed since the person was last seen."""
    model = TRAVEL_MODELS.get(mode)
    if model is None:
        raise GeofenceError(
            "invalid_mode", f"travel mode {mode!r} is unknown; use 'on_foot' or 'vehicle'"
        )
    try:
        elapsed = now - last_seen_at
    except TypeError as exc:
        raise GeofenceError(
            "invalid_time",
            "last_seen_at and now must both be timezone-aware (or both naive) datetimes",
        ) from exc
    hours = elapsed.total_seconds() / 3600.0
    if hours < 0:
        raise GeofenceError(
            "invalid_time",
            f"last_seen_at ({last_seen_at.isoformat()}) is after now ({now.isoformat()})",
        )
    return min(model.cap_m, max(model.floor_m, model.speed_kmh * hours * 1000.0))
