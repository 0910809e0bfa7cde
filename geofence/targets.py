"""Target shapes an alert may be addressed to.

They are plain frozen values so the API layer can build them from JSON and the
engine can hash, log and compare them; all geometry work happens in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class CircleTarget:
    """A geodesic circle: centre in WGS84 degrees, radius in metres on the ellipsoid."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class GeoJSONTarget:
    """An RFC 7946 Polygon or MultiPolygon geometry object (lon/lat order)."""

    geometry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AdminAreaTarget:
    """A whole district (``TUR034035``) or province (``TUR034``) by OCHA p-code."""

    code: str


@dataclass(frozen=True, slots=True)
class AutoTarget:
    """A search circle whose radius follows from how long the person has been missing."""

    lat: float
    lon: float
    last_seen_at: datetime
    now: datetime
    mode: Literal["on_foot", "vehicle"]


Target = CircleTarget | GeoJSONTarget | AdminAreaTarget | AutoTarget
