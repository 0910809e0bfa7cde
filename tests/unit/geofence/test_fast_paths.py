"""The performance shortcuts agree with the slow, obvious computations they replace."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geofence import AdminAreaTarget, CircleTarget, GeofenceEngine, GeoJSONTarget
from geofence.broadcast import broadcast_polygon, overshoot
from geofence.coverage import coverage_outside
from geofence.geodesy import albers_area_km2, conformal
from geofence.planar import PlanarTarget

STAR = {
    "type": "Polygon",
    "coordinates": [
        [
            [32.80, 39.90],
            [32.86, 39.95],
            [32.92, 39.90],
            [32.88, 39.97],
            [32.95, 40.02],
            [32.86, 40.00],
            [32.78, 40.03],
            [32.84, 39.97],
            [32.80, 39.90],
        ]
    ],
}


@pytest.mark.parametrize(
    "target",
    [
        CircleTarget(41.0082, 28.9784, 10000.0),
        CircleTarget(39.93, 32.86, 700.0),
        GeoJSONTarget(STAR),
        AdminAreaTarget("TUR034035"),
    ],
)
def test_disc_shortcut_matches_exact_distance_test(
    engine: GeofenceEngine, target: CircleTarget | GeoJSONTarget | AdminAreaTarget
) -> None:
    union = engine.target_union([target])
    planar = PlanarTarget(conformal().project(union))
    assert planar.r_in > 0.0
    index = engine.cells[0]
    minx, miny, maxx, maxy = union.bounds
    near = np.flatnonzero(
        (index.layer.lon > minx - 0.3)
        & (index.layer.lon < maxx + 0.3)
        & (index.layer.lat > miny - 0.3)
        & (index.layer.lat < maxy + 0.3)
    )
    x, y = index.x[near], index.y[near]
    dist = index.layer.range_m[near] * 1.003 + 1.0
    fast = planar.within_distance(x, y, dist)
    exact = shapely.distance(planar.geom, shapely.points(x, y)) <= dist
    assert np.array_equal(fast, exact)
    assert fast.any()
    assert not fast.all()


@pytest.mark.parametrize(
    "target",
    [
        CircleTarget(41.0082, 28.9784, 10000.0),
        CircleTarget(39.0, 35.5, 6000.0),
        GeoJSONTarget(STAR),
    ],
)
def test_coverage_outside_close_to_exact_union(
    engine: GeofenceEngine, target: CircleTarget | GeoJSONTarget
) -> None:
    union = engine.target_union([target])
    planar = PlanarTarget(conformal().project(union))
    sels = [index.select(union, planar, False) for index in engine.cells]
    est = coverage_outside(sels, planar, 1.0)
    for sel, (out_km2, share) in zip(sels, est, strict=True):
        discs = shapely.union_all(
            shapely.buffer(shapely.points(sel.x, sel.y), sel.range_m, quad_segs=32)
        )
        true_out = shapely.difference(discs, planar.geom).area / 1e6
        true_share = true_out / (discs.area / 1e6)
        assert out_km2 == pytest.approx(true_out, rel=0.02)
        assert share == pytest.approx(true_share, abs=0.01)


def test_coverage_outside_empty_and_partial_selections(engine: GeofenceEngine) -> None:
    union = engine.target_union([CircleTarget(39.93, 32.86, 2000.0)])
    planar = PlanarTarget(conformal().project(union))
    sel = engine.cells[0].select(union, planar, False)
    empty = type(sel)(sel.rows[:0], sel.x[:0], sel.y[:0], sel.range_m[:0])
    assert coverage_outside([empty, empty], planar) == [(0.0, 0.0), (0.0, 0.0)]
    out = coverage_outside([empty, sel], planar)
    assert out[0] == (0.0, 0.0)
    assert out[1][0] > 0.0
    assert 0.0 < out[1][1] < 1.0


def test_whole_districts_get_full_share_and_cut_ones_match_overlay(
    engine: GeofenceEngine,
) -> None:
    union = engine.target_union([CircleTarget(41.03, 29.0, 30000.0)])
    idx = engine.districts_index
    shares, _ = idx.shares(union)
    assert any(s.share_covered == 1.0 for s in shares)
    for s in shares:
        geom = idx.geometries[idx.by_code[s.code]]
        exact = float(albers_area_km2(shapely.intersection(geom, union)))
        assert s.share_covered == pytest.approx(
            min(1.0, exact / idx.districts[idx.by_code[s.code]].area_km2), abs=1e-9
        )


@pytest.mark.parametrize("code", ["TUR034", "TUR034035"])
def test_overshoot_metres_match_plain_distance(engine: GeofenceEngine, code: str) -> None:
    target = engine.target_union([AdminAreaTarget(code)])
    area = float(albers_area_km2(target))
    bpoly = broadcast_polygon(target, 100)
    km2, max_m = overshoot(target, bpoly, area)
    plane = conformal()
    c = shapely.get_coordinates(plane.project(bpoly.exterior))
    a, b = c[:-1], c[1:]
    samples = np.vstack([a, a + (b - a) * 0.25, a + (b - a) * 0.5, a + (b - a) * 0.75])
    dist = shapely.distance(shapely.points(samples), plane.project(target))
    k_min, _ = plane.k_range(bpoly.bounds[1], bpoly.bounds[3])
    assert max_m == pytest.approx(float(dist.max()) / k_min, rel=1e-9, abs=1e-6)
    assert km2 > 0.0


def test_area_code_results_are_reused_but_never_shared_mutably(engine: GeofenceEngine) -> None:
    first = engine.resolve([AdminAreaTarget("TUR034035")])
    first.broadcast.geometry["coordinates"] = ()  # type: ignore[index]
    again = engine.resolve([AdminAreaTarget(" tur034035 ")])
    fresh = GeofenceEngine(engine.limits, engine.districts_index, engine.cells).resolve(
        [AdminAreaTarget("TUR034035")]
    )
    assert again.broadcast.geometry["coordinates"]
    assert again == fresh
