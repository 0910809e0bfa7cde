"""Operational limits, kept in one value so deployments can tune them without code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeofenceLimits:
    """Bounds that protect operators from absurd broadcasts and the engine from abuse.

    ``max_area_km2`` stops a typo from alerting half the country; ``vertex_budget``
    is the CAP polygon ceiling operators accept; ``max_input_vertices`` bounds the
    work a single request can cause; the radius bounds reject circles that are
    either meaningless for cell broadcast (below one urban cell) or national.
    """

    max_area_km2: float = 60000.0
    vertex_budget: int = 100
    max_input_vertices: int = 10000
    min_radius_m: float = 100.0
    max_radius_m: float = 200000.0
