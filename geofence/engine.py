"""The geofence engine: from alert targets to districts, a broadcast polygon and cells.

All indexes (districts, per-operator cell trees, projection transformers) are
built in :meth:`GeofenceEngine.load`; :meth:`GeofenceEngine.resolve` only queries
them, so a request costs milliseconds and never touches the disk. The only state a
request adds is the per-area-code cache of target-only results (see ``_Outline``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geofence.broadcast import broadcast_polygon, overshoot, ring_positions
from geofence.cells import CellIndex, CellLayer
from geofence.coverage import coverage_outside
from geofence.districts import DistrictIndex
from geofence.errors import GeofenceError
from geofence.geodesy import albers_area_km2, conformal, warm_up
from geofence.limits import GeofenceLimits
from geofence.planar import PlanarTarget
from geofence.results import AreaShare, BroadcastPolygon, OperatorCells, Resolution
from geofence.shapes import target_geometry
from geofence.synthetic import default_layers
from geofence.targets import AdminAreaTarget, Target

#: How far (degrees) beyond Türkiye's bounding box a target may lie and still be
#: called "at sea or abroad" rather than "outside Türkiye" (covers nearby seas
#: and neighbours; anything further away is almost certainly a data error).
_NEIGHBOURHOOD_DEG = 1.0
#: Above this many boundary segments a target is "detailed": the cell prefilter
#: then tests boxes against the geometry instead of only its envelope.
_DETAILED_SEGMENTS = 256


@dataclass(frozen=True, slots=True)
class _Outline:
    """What a request derives from its target alone, before looking at any cell.

    For a single whole district or province (:class:`AdminAreaTarget`) this depends
    only on the area code and the engine's limits, so it is computed on the first
    request for that code and reused: the shares, the simplified broadcast outline
    with its overshoot, and the target projected into the conformal plane. At most
    one entry per district and province (~50 MB if all 1,054 were ever requested,
    mostly projected boundaries); results handed out are rebuilt from it per call.
    """

    area_km2: float
    districts: tuple[AreaShare, ...]
    provinces: tuple[AreaShare, ...]
    planar: PlanarTarget
    broadcast: shapely.Polygon
    overshoot_km2: float
    overshoot_max_m: float


def _single_area_code(targets: Sequence[Target]) -> str | None:
    """The normalised code when ``targets`` is exactly one (validated) admin area."""
    if len(targets) == 1 and isinstance(targets[0], AdminAreaTarget):
        code = targets[0].code
        if isinstance(code, str):
            return code.strip().upper()
    return None


class GeofenceEngine:
    """Resolves alert targets against Türkiye's districts and operators' cells."""

    def __init__(
        self,
        limits: GeofenceLimits,
        districts: DistrictIndex,
        cells: Sequence[CellIndex],
    ) -> None:
        self.limits = limits
        self.districts_index = districts
        self.cells = tuple(cells)
        # Target-only results per administrative area code, filled on first use (see
        # _Outline); at most one entry per district and province.
        self._area_outlines: dict[str, _Outline] = {}
        minx, miny, maxx, maxy = districts.bounds
        self._neighbourhood = shapely.box(
            minx - _NEIGHBOURHOOD_DEG,
            miny - _NEIGHBOURHOOD_DEG,
            maxx + _NEIGHBOURHOOD_DEG,
            maxy + _NEIGHBOURHOOD_DEG,
        )

    def with_limits(self, limits: GeofenceLimits) -> GeofenceEngine:
        """The same indexes under other limits (no rebuild; caches are per limits)."""
        return GeofenceEngine(limits, self.districts_index, self.cells)

    @classmethod
    def load(
        cls,
        limits: GeofenceLimits = GeofenceLimits(),  # noqa: B008 - frozen value, safe default
        cell_layers: Mapping[str, CellLayer] | None = None,
    ) -> GeofenceEngine:
        """Build every index once. ``cell_layers=None`` means the synthetic national layers."""
        warm_up()
        districts = DistrictIndex.load()
        layers = default_layers(districts) if cell_layers is None else dict(cell_layers)
        return cls(limits, districts, [CellIndex(layer) for layer in layers.values()])

    # -- targets ---------------------------------------------------------------

    def _check_on_land(self, geom: BaseGeometry, target: Target, index: int) -> None:
        if isinstance(target, AdminAreaTarget) or self.districts_index.touches_land(geom):
            return
        swapped = shapely.transform(geom, lambda xy: xy[:, ::-1])
        c = geom.centroid
        if self.districts_index.touches_land(swapped):
            raise GeofenceError(
                "outside_turkiye",
                f"target {index} (around lat {c.y:.5f}, lon {c.x:.5f}) is outside Türkiye; "
                "latitude and longitude look swapped - with them exchanged it falls on "
                "Turkish land (GeoJSON positions are [longitude, latitude])",
                index,
            )
        if not self._neighbourhood.intersects(geom):
            raise GeofenceError(
                "outside_turkiye",
                f"target {index} (around lat {c.y:.5f}, lon {c.x:.5f}) is outside Türkiye",
                index,
            )
        raise GeofenceError(
            "at_sea_or_abroad",
            f"target {index} (around lat {c.y:.5f}, lon {c.x:.5f}) touches no Turkish "
            "district: it is entirely at sea or across the border",
            index,
        )

    def target_geometries(self, targets: Sequence[Target]) -> list[BaseGeometry]:
        """Validated lon/lat geometry of each target; raises :class:`GeofenceError`."""
        if not targets:
            raise GeofenceError("no_targets", "at least one target is required")
        geoms: list[BaseGeometry] = []
        for i, target in enumerate(targets):
            try:
                geom = target_geometry(target, self.limits, self.districts_index)
            except GeofenceError as exc:
                raise exc.with_index(i) from None
            self._check_on_land(geom, target, i)
            geoms.append(geom)
        return geoms

    def target_union(self, targets: Sequence[Target]) -> BaseGeometry:
        """Validated union of all targets, lon/lat; raises :class:`GeofenceError`."""
        geoms = self.target_geometries(targets)
        return geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)

    def _check_area(self, geoms: Sequence[BaseGeometry], union: BaseGeometry) -> float:
        area_km2 = float(albers_area_km2(union))
        limit = self.limits.max_area_km2
        if area_km2 <= limit:
            return area_km2
        # Blame a single target when one alone is too big; else the combination.
        culprit: int | None = None
        for i, geom in enumerate(geoms):
            if float(albers_area_km2(geom)) > limit:
                culprit = i
                break
        raise GeofenceError(
            "area_too_large",
            f"the target covers {area_km2:,.0f} km², more than the allowed {limit:,.0f} km²"
            + ("" if culprit is not None else " (all targets together)"),
            culprit,
        )

    # -- public API ------------------------------------------------------------

    def districts_touched(self, geom: BaseGeometry | Mapping[str, Any]) -> tuple[AreaShare, ...]:
        """Districts (sorted by code) intersecting a lon/lat geometry, with share covered."""
        shape = geom if isinstance(geom, BaseGeometry) else shapely.geometry.shape(geom)
        return self.districts_index.shares(shape)[0]

    def resolve(self, targets: Sequence[Target]) -> Resolution:
        """Resolve the union of ``targets``; raises :class:`GeofenceError` on bad input."""
        geoms = self.target_geometries(targets)
        union = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
        code = _single_area_code(targets)
        outline = self._area_outlines.get(code) if code is not None else None
        if outline is None:
            outline = self._outline(geoms, union)
            if code is not None:
                self._area_outlines[code] = outline
        bpoly = outline.broadcast
        broadcast = BroadcastPolygon(
            geometry=shapely.geometry.mapping(bpoly),
            vertex_count=ring_positions(bpoly),
            overshoot_km2=outline.overshoot_km2,
            overshoot_max_m=outline.overshoot_max_m,
        )
        operators = self._operators(union, outline.planar)
        return Resolution(
            target_geojson=shapely.geometry.mapping(union),
            area_km2=outline.area_km2,
            districts=outline.districts,
            provinces=outline.provinces,
            broadcast=broadcast,
            operators=operators,
        )

    def _outline(self, geoms: Sequence[BaseGeometry], union: BaseGeometry) -> _Outline:
        """Everything about the target itself (no cells); raises on an oversized target."""
        area_km2 = self._check_area(geoms, union)
        districts, provinces = self.districts_index.shares(union)
        # One projection of the target serves the overshoot and the cell selection.
        planar = PlanarTarget(conformal().project(union))
        bpoly = broadcast_polygon(union, self.limits.vertex_budget)
        over_km2, over_m = overshoot(union, bpoly, area_km2, planar=planar)
        return _Outline(area_km2, districts, provinces, planar, bpoly, over_km2, over_m)

    def _operators(
        self, union: BaseGeometry, planar: PlanarTarget | None = None
    ) -> tuple[OperatorCells, ...]:
        if not self.cells:
            return ()
        if planar is None:
            planar = PlanarTarget(conformal().project(union))
        detailed = planar.segments.shape[0] > _DETAILED_SEGMENTS
        selections = [index.select(union, planar, detailed) for index in self.cells]
        k_min, k_max = conformal().k_range(union.bounds[1], union.bounds[3])
        outside = coverage_outside(selections, planar, k_mid=(k_min + k_max) / 2.0)
        out: list[OperatorCells] = []
        for index, sel, (outside_km2, outside_share) in zip(
            self.cells, selections, outside, strict=True
        ):
            layer = index.layer
            population = (
                int(round(float(layer.population[sel.rows].sum())))
                if layer.population is not None
                else None
            )
            out.append(
                OperatorCells(
                    operator=layer.operator,
                    mcc=layer.mcc,
                    mnc=layer.mnc,
                    cell_ids=index.cell_ids(sel.rows),
                    coverage_outside_km2=outside_km2,
                    coverage_outside_share=outside_share,
                    estimated_population=population,
                )
            )
        return tuple(out)


_default: GeofenceEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> GeofenceEngine:
    """The process-wide engine with default limits and synthetic layers (built once)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = GeofenceEngine.load()
    return _default
