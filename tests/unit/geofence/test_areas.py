"""Administrative areas, shares and the districts_touched helper."""

from __future__ import annotations

import pytest
import shapely

from geofence import AdminAreaTarget, CircleTarget, GeofenceEngine, GeoJSONTarget


def test_district_count_and_codes(engine: GeofenceEngine) -> None:
    idx = engine.districts_index
    assert len(idx.districts) == 973
    assert len(idx.provinces) == 81
    assert "TUR034035" in idx.by_code


def test_whole_province_target(engine: GeofenceEngine) -> None:
    res = engine.resolve([AdminAreaTarget("TUR006")])  # Ankara
    ankara = [d for d in res.districts if d.province_code == "TUR006"]
    assert len(ankara) == len(engine.districts_index.provinces["TUR006"].district_indices)
    assert all(d.share_covered == pytest.approx(1.0, abs=1e-6) for d in ankara)
    prov = {p.code: p for p in res.provinces}
    assert prov["TUR006"].share_covered == pytest.approx(1.0, abs=1e-6)
    assert prov["TUR006"].province_code is None
    assert prov["TUR006"].name == "ANKARA"
    # Neighbours only touch along the border.
    assert all(p.share_covered < 1e-3 for c, p in prov.items() if c != "TUR006")
    assert res.area_km2 == pytest.approx(engine.districts_index.provinces["TUR006"].area_km2)


def test_single_district_target(engine: GeofenceEngine) -> None:
    res = engine.resolve([AdminAreaTarget("TUR034035")])
    own = next(d for d in res.districts if d.code == "TUR034035")
    assert own.share_covered == pytest.approx(1.0, abs=1e-6)
    assert own.province_code == "TUR034"


def test_code_is_normalised(engine: GeofenceEngine) -> None:
    res = engine.resolve([AdminAreaTarget(" tur034035 ")])
    assert "TUR034035" in [d.code for d in res.districts]


def test_shares_sum_to_target_area(engine: GeofenceEngine) -> None:
    res = engine.resolve([CircleTarget(41.0082, 28.9784, 8000.0)])
    idx = engine.districts_index
    covered = sum(
        d.share_covered * idx.districts[idx.by_code[d.code]].area_km2 for d in res.districts
    )
    # The circle also covers some sea, so land coverage is at most the circle area.
    assert 0.0 < covered <= res.area_km2 * 1.0001
    assert [d.code for d in res.districts] == sorted(d.code for d in res.districts)


def test_districts_touched_accepts_geojson_and_shapely(engine: GeofenceEngine) -> None:
    geom = shapely.Point(32.86, 39.93).buffer(0.05)
    a = engine.districts_touched(geom)
    b = engine.districts_touched(shapely.geometry.mapping(geom))
    assert a == b
    assert a


def test_union_of_forms(engine: GeofenceEngine) -> None:
    square = {
        "type": "Polygon",
        "coordinates": [[[32.8, 39.9], [32.9, 39.9], [32.9, 40.0], [32.8, 40.0], [32.8, 39.9]]],
    }
    res = engine.resolve(
        [CircleTarget(41.0082, 28.9784, 3000.0), GeoJSONTarget(square), AdminAreaTarget("TUR035")]
    )
    provinces = {p.code for p in res.provinces}
    assert {"TUR034", "TUR006", "TUR035"} <= provinces
    assert res.target_geojson["type"] == "MultiPolygon"
