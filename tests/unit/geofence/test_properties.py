"""Property-based checks of the engine against brute-force oracles."""

from __future__ import annotations

import math

import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence import CircleTarget, GeofenceEngine, GeoJSONTarget, Resolution, Target
from tests.unit.geofence.brute import cells_that_must_be_selected, districts_brute

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def land_point(draw: st.DrawFn, engine: GeofenceEngine) -> tuple[float, float]:
    """A (lat, lon) on Turkish land: a random district's interior point plus jitter."""
    idx = engine.districts_index
    i = draw(st.integers(0, len(idx.districts) - 1))
    p = idx.geometries[i].point_on_surface()
    return p.y + draw(st.floats(-0.01, 0.01)), p.x + draw(st.floats(-0.01, 0.01))


@st.composite
def circles(draw: st.DrawFn, engine: GeofenceEngine, max_radius: float = 30000.0) -> CircleTarget:
    lat, lon = draw(land_point(engine))
    radius = draw(st.floats(200.0, max_radius))
    return CircleTarget(lat=lat, lon=lon, radius_m=radius)


@st.composite
def star_polygons(draw: st.DrawFn, engine: GeofenceEngine) -> GeoJSONTarget:
    """A random simple (star-shaped) polygon of 5-150 vertices, up to ~40 km across."""
    lat, lon = draw(land_point(engine))
    n = draw(st.integers(5, 150))
    scale = draw(st.floats(0.005, 0.2))
    radii = draw(st.lists(st.floats(0.3, 1.0), min_size=n, max_size=n))
    angles = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    k = math.cos(math.radians(lat))
    ring = [
        [round(lon + scale * r * math.cos(a) / k, 6), round(lat + scale * r * math.sin(a), 6)]
        for r, a in zip(radii, angles, strict=True)
    ]
    ring.append(ring[0])
    return GeoJSONTarget({"type": "Polygon", "coordinates": [ring]})


def _check(engine: GeofenceEngine, targets: list[Target], res: Resolution) -> None:
    union = shapely.geometry.shape(res.target_geojson)
    # Districts: identical to testing all 973 one by one.
    idx = engine.districts_index
    codes = [d.code for d in idx.districts]
    assert [d.code for d in res.districts] == districts_brute(idx.geometries, codes, union)
    assert all(0.0 <= d.share_covered <= 1.0 for d in res.districts)
    # Broadcast polygon: covers the target, within the vertex budget.
    bpoly = shapely.geometry.shape(res.broadcast.geometry)
    assert bpoly.geom_type == "Polygon"
    assert bpoly.covers(union)
    assert res.broadcast.vertex_count <= engine.limits.vertex_budget
    assert len(res.broadcast.geometry["coordinates"][0]) == res.broadcast.vertex_count
    # Cells: none missing.
    for cell_index, ops in zip(engine.cells, res.operators, strict=True):
        selected = set(ops.cell_ids)
        must = cells_that_must_be_selected(cell_index.layer, union)
        missing = {cell_index.ids[i] for i in must} - selected
        assert not missing, f"{len(missing)} cells missed, e.g. {sorted(missing)[:3]}"
        assert 0.0 <= ops.coverage_outside_share <= 1.0


@SETTINGS
@given(data=st.data())
def test_random_circles_small_layer(small_engine: GeofenceEngine, data: st.DataObject) -> None:
    target = data.draw(circles(small_engine))
    res = small_engine.resolve([target])
    _check(small_engine, [target], res)


@SETTINGS
@given(data=st.data())
def test_random_polygons_small_layer(small_engine: GeofenceEngine, data: st.DataObject) -> None:
    target = data.draw(star_polygons(small_engine))
    res = small_engine.resolve([target])
    _check(small_engine, [target], res)


@settings(SETTINGS, max_examples=10)
@given(data=st.data())
def test_unions_small_layer(small_engine: GeofenceEngine, data: st.DataObject) -> None:
    targets: list[Target] = [
        data.draw(circles(small_engine, max_radius=15000.0)),
        data.draw(star_polygons(small_engine)),
    ]
    res = small_engine.resolve(targets)
    _check(small_engine, targets, res)


@settings(SETTINGS, max_examples=6)
@given(data=st.data())
def test_random_circles_national_layers(engine: GeofenceEngine, data: st.DataObject) -> None:
    target = data.draw(circles(engine, max_radius=10000.0))
    res = engine.resolve([target])
    _check(engine, [target], res)
