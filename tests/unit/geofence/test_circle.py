"""Circle accuracy: within 0.5 % of the radius everywhere, and never undershooting."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from geofence import CircleTarget, GeofenceEngine
from geofence.geodesy import geodesic_circle

GEOD = pyproj.Geod(ellps="WGS84")
# Edirne, Istanbul, Ankara, Antalya, Hatay, Kars, Hakkari (lat, lon): the full span.
PLACES = [
    (41.68, 26.56),
    (41.01, 28.98),
    (39.93, 32.86),
    (36.90, 30.70),
    (36.20, 36.16),
    (40.60, 43.10),
    (37.57, 43.74),
]
RADII = [100.0, 500.0, 5000.0, 30000.0, 120000.0, 200000.0]


@pytest.mark.parametrize(("lat", "lon"), PLACES)
@pytest.mark.parametrize("radius", RADII)
def test_boundary_within_half_percent_and_outside_true_circle(
    lat: float, lon: float, radius: float
) -> None:
    poly = geodesic_circle(lat, lon, radius)
    boundary = shapely.get_coordinates(shapely.segmentize(poly.exterior, 1e-4 * radius / 100))
    n = boundary.shape[0]
    _, _, dist = GEOD.inv(np.full(n, lon), np.full(n, lat), boundary[:, 0], boundary[:, 1])
    # Every point of the polygon boundary is within 0.5 % of the radius...
    assert np.max(np.abs(dist - radius)) <= 0.005 * radius
    # ...and on or outside the true circle (circumscribed: never undershoots).
    assert np.min(dist) >= radius * (1 - 1e-9)


@pytest.mark.parametrize(("lat", "lon"), PLACES)
def test_polygon_covers_sampled_true_circle(lat: float, lon: float) -> None:
    radius = 50000.0
    poly = geodesic_circle(lat, lon, radius)
    az = np.linspace(0.0, 360.0, 3600, endpoint=False)
    lons, lats, _ = GEOD.fwd(np.full(3600, lon), np.full(3600, lat), az, np.full(3600, radius))
    assert shapely.contains_xy(poly, lons, lats).all()


def test_ring_is_closed_counter_clockwise(engine: GeofenceEngine) -> None:
    res = engine.resolve([CircleTarget(39.93, 32.86, 1000.0)])
    ring = res.target_geojson["coordinates"][0]
    assert tuple(ring[0]) == tuple(ring[-1])
    assert shapely.LinearRing(ring).is_ccw


def test_circle_area_matches_geodesic_disc(engine: GeofenceEngine) -> None:
    res = engine.resolve([CircleTarget(39.93, 32.86, 10000.0)])
    true_km2 = np.pi * 10.0**2
    assert true_km2 <= res.area_km2 <= true_km2 * 1.005
