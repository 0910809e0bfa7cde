"""Metric-plane distance tests shared by cell selection and overshoot.

GEOS computes point-to-polygon distance one point at a time and needs a Shapely
point object per site, which costs more than the arithmetic. For the usual small
targets (circles, simple polygons) a numpy point-to-segment distance over all
boundary segments is much faster; for detailed targets (provinces, big user
polygons) the prepared-geometry ``dwithin`` of GEOS (indexed facet distance)
wins, so :func:`within_distance` switches on the segment count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NUMPY_MAX_SEGMENTS = 512
_CHUNK_CELLS = 400_000


def boundary_segments(geom_m: BaseGeometry) -> FloatArray:
    """(S, 4) array of ax, ay, bx, by for every edge of every ring."""
    rings = shapely.get_rings(shapely.get_parts(geom_m))
    segs: list[FloatArray] = []
    for ring in rings:
        c = shapely.get_coordinates(ring)
        segs.append(np.hstack([c[:-1], c[1:]]))
    if not segs:
        return np.empty((0, 4), dtype=np.float64)
    return np.vstack(segs)


def distance_to_segments(x: FloatArray, y: FloatArray, segs: FloatArray) -> FloatArray:
    """Euclidean distance from each point to the nearest segment."""
    out = np.empty(x.shape[0], dtype=np.float64)
    ax, ay, bx, by = (segs[:, i][None, :] for i in range(4))
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    len2 = np.where(len2 == 0.0, 1.0, len2)
    step = max(1, _CHUNK_CELLS // max(segs.shape[0], 1))
    for s in range(0, x.shape[0], step):
        px = x[s : s + step, None]
        py = y[s : s + step, None]
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / len2, 0.0, 1.0)
        ex = ax + t * dx - px
        ey = ay + t * dy - py
        out[s : s + step] = np.sqrt((ex * ex + ey * ey).min(axis=1))
    return out


class PlanarTarget:
    """A target in a metric plane, prepared for fast "within distance" queries."""

    def __init__(self, geom_m: BaseGeometry) -> None:
        self.geom = geom_m
        shapely.prepare(geom_m)
        self.segments = boundary_segments(geom_m)

    def within_distance(self, x: FloatArray, y: FloatArray, dist: FloatArray) -> BoolArray:
        """Whether each point lies inside the target or within ``dist`` of it."""
        inside: BoolArray = np.asarray(shapely.contains_xy(self.geom, x, y), dtype=np.bool_)
        out = ~inside
        if not out.any():
            return inside
        if self.segments.shape[0] <= _NUMPY_MAX_SEGMENTS:
            d = distance_to_segments(x[out], y[out], self.segments)
            inside[out] = d <= dist[out]
        else:
            pts = shapely.points(x[out], y[out])
            inside[out] = np.asarray(shapely.dwithin(self.geom, pts, dist[out]), dtype=np.bool_)
        return inside

    def contains_xy(self, x: FloatArray, y: FloatArray) -> Any:
        """Point-in-target test (boundary counts as inside)."""
        return shapely.intersects_xy(self.geom, x, y)
