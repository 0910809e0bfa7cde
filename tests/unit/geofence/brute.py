"""Independent brute-force oracles for the property tests.

They deliberately share no code with the engine beyond pyproj's geodesic: cells
are checked one by one over the whole layer with ellipsoidal distances to a
densely sampled target boundary.
"""

from __future__ import annotations

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from geofence import CellLayer

GEOD = pyproj.Geod(ellps="WGS84")
STEP_DEG = 0.002  # ~200 m boundary sampling


def boundary_samples(target: BaseGeometry) -> np.ndarray:
    """Points every <= STEP_DEG along every ring of the target."""
    rings = shapely.get_rings(shapely.get_parts(target))
    return np.vstack([shapely.get_coordinates(shapely.segmentize(r, STEP_DEG)) for r in rings])


def cells_that_must_be_selected(layer: CellLayer, target: BaseGeometry) -> set[int]:
    """Rows whose coverage disc certainly intersects the target.

    A site is certainly in when it lies inside the target, or when its geodesic
    distance to some sampled boundary point is within its range (that sampled
    distance is never less than the true distance, so this is sound).
    """
    inside = shapely.intersects_xy(target, layer.lon, layer.lat)
    must = set(np.flatnonzero(inside).tolist())
    samples = boundary_samples(target)
    # Cheap but generous prefilter on degrees (1° lat >= 110.5 km; lon scaled by cos 43°).
    minx, miny, maxx, maxy = target.bounds
    rmax_deg = float(layer.range_m.max()) / 80000.0
    near = np.flatnonzero(
        (layer.lon > minx - rmax_deg)
        & (layer.lon < maxx + rmax_deg)
        & (layer.lat > miny - rmax_deg)
        & (layer.lat < maxy + rmax_deg)
        & ~inside
    )
    for i in near.tolist():
        n = samples.shape[0]
        _, _, d = GEOD.inv(
            np.full(n, layer.lon[i]), np.full(n, layer.lat[i]), samples[:, 0], samples[:, 1]
        )
        if float(np.min(d)) <= layer.range_m[i]:
            must.add(i)
    return must


def districts_brute(
    districts_geoms: np.ndarray, codes: list[str], target: BaseGeometry
) -> list[str]:
    """Codes of every district that intersects the target, by testing all 973."""
    hit = [codes[i] for i, g in enumerate(districts_geoms) if g.intersects(target)]
    return sorted(hit)
