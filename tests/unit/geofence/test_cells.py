"""Cell layers: synthetic generator, OpenCelliD CSV and per-operator results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geofence import CellLayer, CircleTarget, GeofenceEngine, generate_synthetic_layer


def test_synthetic_is_deterministic_and_big_enough(engine: GeofenceEngine) -> None:
    a = generate_synthetic_layer("x", 1, seed=11, sites=60000)
    b = generate_synthetic_layer("x", 1, seed=11, sites=60000)
    assert len(a) == 60000
    assert np.array_equal(a.lon, b.lon)
    assert np.array_equal(a.range_m, b.range_m)
    c = generate_synthetic_layer("x", 1, seed=12, sites=60000)
    assert not np.array_equal(a.lon, c.lon)


def test_national_layers(engine: GeofenceEngine) -> None:
    layers = {c.layer.operator: c.layer for c in engine.cells}
    assert set(layers) == {"turkcell", "vodafone", "turktelekom"}
    assert [(c.layer.mcc, c.layer.mnc) for c in engine.cells] == [(286, 1), (286, 2), (286, 3)]
    for layer in layers.values():
        assert len(layer) >= 60000
        assert layer.range_m.min() >= 300
        assert layer.range_m.max() <= 15000


def test_dense_in_cities_sparse_in_countryside(engine: GeofenceEngine) -> None:
    layer = engine.cells[0].layer
    idx = engine.districts_index
    tac = {int(d.code[3:]): d for d in idx.districts}
    counts: dict[int, int] = {}
    for a in layer.area.tolist():
        counts[a] = counts.get(a, 0) + 1
    # Every district has sites.
    assert set(counts) == set(tac)
    density = {a: n / tac[a].area_km2 for a, n in counts.items()}
    kadikoy = density[34023]  # ~25 km² Istanbul district
    rural = np.median([density[a] for a in counts if tac[a].area_km2 > 1000])
    assert kadikoy > 50 * rural
    urban_ranges = layer.range_m[layer.area == 34023]
    assert urban_ranges.max() <= 1500


def test_cell_id_format(engine: GeofenceEngine) -> None:
    res = engine.resolve([CircleTarget(39.93, 32.86, 2000.0)])
    for ops in res.operators:
        assert ops.cell_ids
        mcc, mnc, area, cell = ops.cell_ids[0].split("-")
        assert (mcc, mnc) == ("286", f"{ops.mnc:02d}")
        assert area.isdigit()
        assert cell.isdigit()
        assert 0.0 <= ops.coverage_outside_share <= 1.0
        assert ops.coverage_outside_km2 >= 0.0
        assert ops.estimated_population is None


def test_opencellid_csv_roundtrip(tmp_path: Path) -> None:
    layer = generate_synthetic_layer("t", 2, seed=3, sites=6000)
    path = tmp_path / "cells.csv"
    layer.to_opencellid_csv(path)
    back = CellLayer.from_opencellid_csv(path, "t")
    assert (back.mcc, back.mnc, len(back)) == (286, 2, 6000)
    assert np.allclose(back.lon, layer.lon, atol=1e-6)
    assert np.all(back.range_m >= layer.range_m)
    assert back.cell_ids([0]) == layer.cell_ids([0])


def test_opencellid_csv_headerless_and_filtered(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    path.write_text(
        "LTE,286,1,34001,101,0,28.98,41.01,800,5,1,0,0,0\n"
        "LTE,286,2,34001,102,0,28.98,41.01,800,5,1,0,0,0\n"
        "GSM,286,1,34001,103,0,29.00,41.02,0,5,1,0,0,0\n"
        "GSM,286,1,34001,104,0,nan,41.02,500,5,1,0,0,0\n"
    )
    layer = CellLayer.from_opencellid_csv(path, "turkcell", mcc=286, mnc=1)
    assert layer.cell_ids(range(len(layer))) == ("286-01-34001-101", "286-01-34001-103")
    assert layer.range_m.tolist() == [800.0, 1000.0]


def test_custom_layer_engine(engine: GeofenceEngine, tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text(
        "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
        "LTE,286,1,6001,1,0,32.86,39.93,500,5,1,0,0,0\n"
        "LTE,286,1,6001,2,0,32.95,39.93,7000,5,1,0,0,0\n"
        "LTE,286,1,6001,3,0,33.30,39.93,1000,5,1,0,0,0\n"
    )
    layer = CellLayer.from_opencellid_csv(path, "turkcell")
    custom = GeofenceEngine.load(cell_layers={"turkcell": layer})
    res = custom.resolve([CircleTarget(39.93, 32.86, 1000.0)])
    # Site 2 is ~7.7 km east with a 7 km range: its disc reaches the 1 km circle.
    assert res.operators[0].cell_ids == ("286-01-6001-1", "286-01-6001-2")
