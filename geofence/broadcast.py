"""Reduce a target to a CAP-sized broadcast polygon that never undershoots.

Operators take one polygon with a bounded number of vertices. Alerting people
outside the area is a nuisance; *missing* people inside it defeats the alert, so
the polygon must cover the target and overshoot is only minimised.

Strategy, all in an "equirectangular" plane (lon scaled by cos(lat0)): that map
is affine, so straight edges stay straight and a covers() test there is exactly
the covers() test in lon/lat, while buffers are roughly isotropic in metres.

1. A hole-free single polygon already within budget is used as is.
2. Otherwise simplify with tolerance ``t`` and grow the result outward by ``t``
   with mitred joins (which add no vertices). Douglas-Peucker keeps the original
   within ``t`` of the simplified outline, so the buffer covers it; covers() is
   still verified. ``t`` grows geometrically until the result is one polygon
   within budget.
3. The convex hull (simplified-and-buffered the same way if it is too detailed)
   is a fallback and also competes: the smaller covering candidate wins.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.geodesy import albers_area_km2, conformal
from geofence.planar import PlanarTarget

_MAX_ROUNDS = 60
_GROWTH = 1.5
_REFINE_ROUNDS = 6


def ring_positions(poly: shapely.Polygon) -> int:
    """Coordinate pairs of the exterior ring including the closing repeat."""
    return int(shapely.get_num_coordinates(poly.exterior))


def _fill(geom: BaseGeometry) -> BaseGeometry:
    """Drop holes: a broadcast polygon only needs an outline."""
    if isinstance(geom, shapely.Polygon):
        return shapely.Polygon(geom.exterior)
    if isinstance(geom, shapely.MultiPolygon):
        if not any(p.interiors for p in geom.geoms):
            return geom
        return shapely.union_all([shapely.Polygon(p.exterior) for p in geom.geoms])
    return geom


class _Plane:
    """Affine lon/lat <-> equirectangular map around a reference latitude."""

    def __init__(self, lat0: float) -> None:
        self.k = math.cos(math.radians(lat0))

    def fwd(self, geom: BaseGeometry) -> BaseGeometry:
        k = self.k
        return shapely.transform(geom, lambda xy: xy * np.array([k, 1.0]))

    def inv(self, geom: BaseGeometry) -> BaseGeometry:
        k = self.k
        return shapely.transform(geom, lambda xy: xy / np.array([k, 1.0]))


def _attempt(shape: BaseGeometry, t: float, budget: int) -> shapely.Polygon | None:
    """Simplify by ``t``, grow by ``t``; the result if it is one covering polygon in budget."""
    parts = shapely.get_parts(shape)
    simple = shapely.simplify(parts, t, preserve_topology=False)
    # Parts smaller than t collapse to nothing; their envelope keeps them covered.
    gone = shapely.is_empty(simple) | ~shapely.is_valid(simple)
    simple[gone] = shapely.envelope(parts[gone])
    # Buffering a collection unions the grown parts, so no separate union is needed.
    simplified = simple[0] if len(simple) == 1 else shapely.geometrycollections(simple)
    grown = shapely.simplify(
        shapely.buffer(simplified, t, join_style="mitre", mitre_limit=2.0), 0.0
    )
    if isinstance(grown, shapely.MultiPolygon) and not any(p.interiors for p in grown.geoms):
        # Disjoint hole-free parts stay several parts after filling: no single polygon.
        return None
    grown = _fill(grown)
    if (
        isinstance(grown, shapely.Polygon)
        and not grown.is_empty
        and ring_positions(grown) <= budget
    ):
        # Prepared: the candidate's at most ``budget`` edges get an index, and a
        # covering candidate's boundary seldom meets the target's, so GEOS settles
        # covers() by point-in-polygon tests instead of a full topology build.
        shapely.prepare(grown)
        if grown.covers(shape):
            return grown
    return None


def _shrink_to_budget(shape: BaseGeometry, budget: int, start: float) -> shapely.Polygon | None:
    """Smallest-tolerance simplify-then-buffer polygon of ``shape`` within budget."""
    t = start
    found: shapely.Polygon | None = None
    last_bad = 0.0
    for _ in range(_MAX_ROUNDS):
        found = _attempt(shape, t, budget)
        if found is not None:
            break
        last_bad = t
        t *= _GROWTH
    if found is None:
        return None
    # Bisect between the last failing and the first working tolerance: a few
    # extra rounds buy noticeably less overshoot.
    lo, hi = last_bad, t
    for _ in range(_REFINE_ROUNDS):
        mid = (lo + hi) / 2.0
        cand = _attempt(shape, mid, budget)
        if cand is None:
            lo = mid
        else:
            hi, found = mid, cand
    return found


def broadcast_polygon(target: BaseGeometry, budget: int) -> shapely.Polygon:
    """A single lon/lat polygon with at most ``budget`` ring positions covering ``target``."""
    if budget < 4:
        raise ValueError("vertex budget must allow at least a triangle (4 positions)")
    if isinstance(target, shapely.Polygon) and not target.interiors:
        if ring_positions(target) <= budget:
            return target
    lat0 = (target.bounds[1] + target.bounds[3]) / 2.0
    plane = _Plane(lat0)
    shape = plane.fwd(target)
    minx, miny, maxx, maxy = shape.bounds
    size = max(maxx - minx, maxy - miny, 1e-9)
    start = size * 1e-3

    candidates: list[shapely.Polygon] = []
    # Multi-part targets go through the same loop: as t grows the buffered parts
    # merge into one polygon, which is tighter than a hull across open sea.
    shrunk = _shrink_to_budget(_fill(shape), budget, start)
    if shrunk is not None:
        candidates.append(shrunk)
    hull = shapely.convex_hull(shape)
    if isinstance(hull, shapely.Polygon):
        if ring_positions(hull) <= budget:
            candidates.append(hull)
        else:
            shrunk_hull = _shrink_to_budget(hull, budget, start)
            if shrunk_hull is not None:
                candidates.append(shrunk_hull)
    if not candidates:
        # Last resort that always works: the axis-aligned envelope.
        candidates.append(shapely.box(*shape.bounds))
    best = min(candidates, key=lambda p: p.area)
    result = plane.inv(best)
    if not result.covers(target):
        # Floating-point round trip lost a few ULPs; nudge outward by a micro-degree.
        result = _fill(shapely.buffer(result, 1e-7, join_style="mitre"))
        if not isinstance(result, shapely.Polygon) or ring_positions(result) > budget:
            result = shapely.box(*shapely.buffer(target, 1e-7).bounds)
    if isinstance(result, shapely.Polygon):
        return shapely.orient_polygons(result) if hasattr(shapely, "orient_polygons") else result
    raise AssertionError("broadcast polygon construction returned a non-polygon")


def overshoot(
    target: BaseGeometry,
    broadcast: shapely.Polygon,
    target_area_km2: float,
    planar: PlanarTarget | None = None,
) -> tuple[float, float]:
    """Overshoot as (km², max metres).

    km² is the equal-area difference (the broadcast covers the target, so it is
    the area alerted needlessly). Metres is the directed Hausdorff distance from
    the broadcast boundary to the target, sampled at the broadcast polygon's
    vertices and edge quarter points in the national conformal plane and divided
    by its smallest scale factor there. ``planar`` is ``target`` already in that
    plane (``PlanarTarget(conformal().project(target))``), when the caller has it.

    Samples inside the target are at distance 0; for the others the distance to
    the target is the distance to its boundary, found with an STRtree over the
    boundary segments (GEOS point-to-polygon distance is linear in the target's
    vertices per point, which made provinces cost hundreds of milliseconds).
    """
    if broadcast.equals_exact(target, 0.0) if isinstance(target, shapely.Polygon) else False:
        return 0.0, 0.0
    km2 = max(0.0, float(albers_area_km2(broadcast)) - target_area_km2)
    plane = conformal()
    b_m = plane.project(broadcast.exterior)
    if planar is None:
        planar = PlanarTarget(plane.project(target))
    # Vertices plus edge quarter points: the farthest point from the target is
    # almost always a corner of the broadcast polygon, so this is a tight sample.
    c = shapely.get_coordinates(b_m)
    a, b = c[:-1], c[1:]
    samples = np.vstack([a, a + (b - a) * 0.25, a + (b - a) * 0.5, a + (b - a) * 0.75])
    if not len(samples):
        return km2, 0.0
    outside = ~np.asarray(planar.contains_xy(samples[:, 0], samples[:, 1]), dtype=bool)
    if not outside.any():
        return km2, 0.0
    tree = shapely.STRtree(shapely.linestrings(planar.segments.reshape(-1, 2, 2)))
    _, dist = tree.query_nearest(
        shapely.points(samples[outside]), return_distance=True, all_matches=False
    )
    k_min, _ = plane.k_range(broadcast.bounds[1], broadcast.bounds[3])
    return km2, float(np.max(dist)) / k_min
