"""One test per kind of bad input: the right code, index and an explanatory message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from geofence import (
    AdminAreaTarget,
    AutoTarget,
    CircleTarget,
    GeofenceEngine,
    GeofenceError,
    GeofenceLimits,
    GeoJSONTarget,
    Target,
)

OK = CircleTarget(lat=41.0082, lon=28.9784, radius_m=2000.0)


def poly(*rings: list[list[float]]) -> GeoJSONTarget:
    return GeoJSONTarget({"type": "Polygon", "coordinates": list(rings)})


def fail(engine: GeofenceEngine, target: Target) -> GeofenceError:
    """Resolve [valid, bad] so the reported target index is checked too."""
    with pytest.raises(GeofenceError) as info:
        engine.resolve([OK, target])
    assert info.value.target_index == 1
    assert isinstance(info.value, ValueError)
    return info.value


def test_self_intersecting_polygon(engine: GeofenceEngine) -> None:
    bowtie = [[29.0, 41.0], [29.1, 41.1], [29.1, 41.0], [29.0, 41.1], [29.0, 41.0]]
    err = fail(engine, poly(bowtie))
    assert err.code == "polygon_self_intersection"
    assert err.message == "ring 0 intersects itself at (29.05, 41.05)"


def test_self_intersection_in_multipolygon_names_ring_and_polygon(engine: GeofenceEngine) -> None:
    good = [[32.8, 39.9], [32.9, 39.9], [32.9, 40.0], [32.8, 39.9]]
    bowtie = [[29.0, 41.0], [29.1, 41.1], [29.1, 41.0], [29.0, 41.1], [29.0, 41.0]]
    err = fail(engine, GeoJSONTarget({"type": "MultiPolygon", "coordinates": [[good], [bowtie]]}))
    assert err.code == "polygon_self_intersection"
    assert err.message == "ring 0 of polygon 1 intersects itself at (29.05, 41.05)"


def test_ring_not_closed(engine: GeofenceEngine) -> None:
    err = fail(engine, poly([[29.0, 41.0], [29.1, 41.1], [29.1, 41.0], [29.0, 41.05]]))
    assert err.code == "ring_not_closed"
    assert "ring 0 is not closed" in err.message
    assert "(29.0, 41.0)" in err.message
    assert "(29.0, 41.05)" in err.message


def test_too_few_positions(engine: GeofenceEngine) -> None:
    err = fail(engine, poly([[29.0, 41.0], [29.1, 41.1], [29.0, 41.0]]))
    assert err.code == "too_few_positions"
    assert "ring 0 has 3 positions" in err.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_not_finite_polygon(engine: GeofenceEngine, bad: float) -> None:
    err = fail(engine, poly([[29.0, 41.0], [bad, 41.1], [29.1, 41.0], [29.0, 41.0]]))
    assert err.code == "not_finite"
    assert "position 1 of ring 0" in err.message


def test_not_finite_circle(engine: GeofenceEngine) -> None:
    err = fail(engine, CircleTarget(lat=float("nan"), lon=29.0, radius_m=1000.0))
    assert err.code == "not_finite"


def test_too_many_vertices(engine: GeofenceEngine) -> None:
    n = engine.limits.max_input_vertices + 10
    ring = [[29.0 + 0.1 * i / n, 41.0] for i in range(n)] + [[29.05, 41.1], [29.0, 41.0]]
    err = fail(engine, poly(ring))
    assert err.code == "too_many_vertices"
    assert str(engine.limits.max_input_vertices) in err.message


def test_swapped_lat_lon_polygon(engine: GeofenceEngine) -> None:
    # Ankara's square written as [lat, lon]: lands in the Arabian peninsula.
    err = fail(engine, poly([[39.9, 32.8], [39.9, 32.9], [40.0, 32.9], [40.0, 32.8], [39.9, 32.8]]))
    assert err.code == "outside_turkiye"
    assert "swapped" in err.message


def test_swapped_lat_lon_circle(engine: GeofenceEngine) -> None:
    err = fail(engine, CircleTarget(lat=32.86, lon=39.93, radius_m=5000.0))
    assert err.code == "outside_turkiye"
    assert "swapped" in err.message


def test_far_away_is_outside_turkiye_without_swap_hint(engine: GeofenceEngine) -> None:
    err = fail(engine, CircleTarget(lat=48.85, lon=2.35, radius_m=5000.0))  # Paris
    assert err.code == "outside_turkiye"
    assert "swapped" not in err.message


def test_black_sea_is_at_sea(engine: GeofenceEngine) -> None:
    err = fail(engine, CircleTarget(lat=43.0, lon=34.0, radius_m=5000.0))
    assert err.code == "at_sea_or_abroad"
    assert "at sea" in err.message


def test_neighbouring_country_is_abroad(engine: GeofenceEngine) -> None:
    err = fail(engine, CircleTarget(lat=41.72, lon=44.79, radius_m=2000.0))  # Tbilisi
    assert err.code == "at_sea_or_abroad"
    assert "across the border" in err.message


def test_swap_hint_wins_near_the_border(engine: GeofenceEngine) -> None:
    # Aleppo's (36.2, 37.15) read the other way round is Turkish land, so the
    # likelier mistake (swapped coordinates) is reported.
    err = fail(engine, CircleTarget(lat=36.2, lon=37.15, radius_m=2000.0))
    assert err.code == "outside_turkiye"
    assert "swapped" in err.message


def test_area_too_large(engine: GeofenceEngine) -> None:
    with pytest.raises(GeofenceError) as info:
        engine.resolve([CircleTarget(lat=39.0, lon=35.0, radius_m=150000.0)])
    assert info.value.code == "area_too_large"
    assert "60,000 km²" in info.value.message
    assert info.value.target_index == 0


def test_area_too_large_from_union_has_no_single_index(engine: GeofenceEngine) -> None:
    small = GeofenceEngine(GeofenceLimits(max_area_km2=85.0), engine.districts_index, ())
    with pytest.raises(GeofenceError) as info:
        small.resolve([OK, CircleTarget(lat=39.93, lon=32.86, radius_m=5000.0)])
    assert info.value.code == "area_too_large"
    assert info.value.target_index is None


@pytest.mark.parametrize("code", ["TUR999", "TUR034999", "tur0340", "", "İstanbul"])
def test_unknown_area_code(engine: GeofenceEngine, code: str) -> None:
    err = fail(engine, AdminAreaTarget(code))
    assert err.code == "unknown_area_code"
    assert repr(code) in err.message


@pytest.mark.parametrize("radius", [0.0, 99.0, 200001.0, -5.0])
def test_radius_out_of_range(engine: GeofenceEngine, radius: float) -> None:
    err = fail(engine, CircleTarget(lat=41.0, lon=29.0, radius_m=radius))
    assert err.code == "radius_out_of_range"
    assert "100..200000 m" in err.message


def test_hole_outside_shell(engine: GeofenceEngine) -> None:
    shell = [[29.0, 41.0], [29.2, 41.0], [29.2, 41.2], [29.0, 41.2], [29.0, 41.0]]
    hole = [[29.3, 41.05], [29.35, 41.05], [29.35, 41.1], [29.3, 41.05]]
    err = fail(engine, poly(shell, hole))
    assert err.code == "hole_outside_shell"


def test_overlapping_multipolygon_parts(engine: GeofenceEngine) -> None:
    a = [[29.0, 41.0], [29.1, 41.1], [29.1, 41.0], [29.0, 41.0]]
    err = fail(engine, GeoJSONTarget({"type": "MultiPolygon", "coordinates": [[a], [a]]}))
    assert err.code == "polygons_overlap"
    assert "polygons 0 and 1" in err.message


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": [29.0, 41.0]},
        {"type": "Polygon"},
        {"type": "Polygon", "coordinates": [[[29.0, 41.0], "x", [29.1, 41.0], [29.0, 41.0]]]},
    ],
)
def test_malformed_geojson(engine: GeofenceEngine, geometry: dict[str, Any]) -> None:
    err = fail(engine, GeoJSONTarget(geometry))
    assert err.code in {"unsupported_geometry", "invalid_geojson"}


def test_auto_target_in_the_future(engine: GeofenceEngine) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    err = fail(engine, AutoTarget(41.0, 29.0, now + timedelta(hours=1), now, "on_foot"))
    assert err.code == "invalid_time"


def test_no_targets(engine: GeofenceEngine) -> None:
    with pytest.raises(GeofenceError) as info:
        engine.resolve([])
    assert info.value.code == "no_targets"
