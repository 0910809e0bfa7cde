"""Broadcast polygon: budget, coverage and reported overshoot."""

from __future__ import annotations

import pytest
import shapely

from geofence import AdminAreaTarget, CircleTarget, GeofenceEngine, GeofenceLimits
from geofence.broadcast import broadcast_polygon, overshoot
from geofence.geodesy import albers_area_km2, geodesic_circle


def test_circle_within_budget_is_sent_as_is(engine: GeofenceEngine) -> None:
    res = engine.resolve([CircleTarget(39.93, 32.86, 5000.0)])
    assert res.broadcast.geometry == res.target_geojson
    assert res.broadcast.overshoot_km2 == 0.0
    assert res.broadcast.overshoot_max_m == 0.0


@pytest.mark.parametrize("budget", [8, 16, 33])
def test_small_budget_circle(budget: int) -> None:
    circle = geodesic_circle(39.93, 32.86, 5000.0)
    poly = broadcast_polygon(circle, budget)
    assert poly.covers(circle)
    assert len(poly.exterior.coords) <= budget
    km2, max_m = overshoot(circle, poly, float(albers_area_km2(circle)))
    assert km2 > 0
    # A circumscribed n-gon overshoots by r(1/cos(pi/n) - 1); allow slack for the heuristic.
    assert max_m < 5000.0 * 0.6


@pytest.mark.parametrize("code", ["TUR034", "TUR006", "TUR065", "TUR034035"])
def test_provinces_and_districts(engine: GeofenceEngine, code: str) -> None:
    res = engine.resolve([AdminAreaTarget(code)])
    poly = shapely.geometry.shape(res.broadcast.geometry)
    target = shapely.geometry.shape(res.target_geojson)
    assert poly.geom_type == "Polygon"
    assert poly.covers(target)
    assert res.broadcast.vertex_count <= 100
    assert res.broadcast.overshoot_km2 >= 0.0
    assert res.broadcast.overshoot_max_m > 0.0


def test_budget_is_configurable(engine: GeofenceEngine) -> None:
    tight = GeofenceEngine(GeofenceLimits(vertex_budget=20), engine.districts_index, ())
    res = tight.resolve([AdminAreaTarget("TUR006")])
    assert res.broadcast.vertex_count <= 20
    assert shapely.geometry.shape(res.broadcast.geometry).covers(
        shapely.geometry.shape(res.target_geojson)
    )
