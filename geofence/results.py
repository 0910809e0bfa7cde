"""Result values returned by the engine.

They are frozen and free of Shapely objects so they can be serialised, cached
and compared in tests; geometries are plain GeoJSON mappings in lon/lat order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AreaShare:
    """A district or province the target touches.

    ``share_covered`` is the fraction (0..1) of *that area's* surface inside the
    target, measured equal-area, so dispatchers can tell "clips a corner" from
    "covers the whole district". ``province_code`` is None for provinces.
    """

    code: str
    name: str
    province_code: str | None
    share_covered: float


@dataclass(frozen=True)
class BroadcastPolygon:
    """The polygon handed to operators; it always covers the whole target.

    ``vertex_count`` counts coordinate pairs of the exterior ring *including* the
    closing repeat (the conservative CAP reading of a vertex limit).
    ``overshoot_max_m`` is the directed Hausdorff distance from the broadcast
    polygon's boundary to the target, measured in the national conformal plane at
    the broadcast vertices and edge quarter points (approximate: can miss a
    slightly farther point mid-edge).
    """

    geometry: Mapping[str, Any]
    vertex_count: int
    overshoot_km2: float
    overshoot_max_m: float


@dataclass(frozen=True)
class OperatorCells:
    """The cells of one operator that must carry the alert.

    ``coverage_outside_km2`` is the area of the union of the selected cells'
    coverage discs that lies outside the target (a raster estimate),
    ``coverage_outside_share`` that area divided by the whole union's area.
    ``estimated_population`` is None when the layer carries no population data.
    """

    operator: str
    mcc: int
    mnc: int
    cell_ids: tuple[str, ...]
    coverage_outside_km2: float
    coverage_outside_share: float
    estimated_population: int | None


@dataclass(frozen=True)
class Resolution:
    """Everything the dispatcher needs to address one alert."""

    target_geojson: Mapping[str, Any]
    area_km2: float
    districts: tuple[AreaShare, ...]
    provinces: tuple[AreaShare, ...]
    broadcast: BroadcastPolygon
    operators: tuple[OperatorCells, ...]
