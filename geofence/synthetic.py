"""Deterministic synthetic national cell layers for development, tests and benches.

Real operator site lists are confidential, so the engine ships with a generator
that has the property that matters for targeting: sites are dense where people
are and sparse where they are not. District size is the proxy for urbanity (a
Turkish district of 25 km² is a city quarter, one of 2,500 km² is mountains):

* every district gets a floor of ``_MIN_SITES`` sites so no land is left without
  coverage;
* districts under ``_URBAN_KM2`` (200 km², 143 of 973, 2 % of the land) are
  urban: together they get ``_URBAN_SHARE`` (40 %) of the remaining sites, in
  equal parts, so the smallest city districts are the densest (a 25 km² Istanbul
  district gets ~170 sites, one every ~400 m);
* rural districts share the other 60 % by ``sqrt(area)``, i.e. ever sparser per
  km² as districts get larger;
* ranges follow the local site spacing ``s = sqrt(area / n)``: ``1.3 s`` (so
  discs overlap several times and leave no gaps), clamped to 300-1,500 m in
  urban districts and 2-15 km in rural ones, with ±20 % seeded jitter;
* positions are uniform inside each district (vectorised rejection sampling).

The same seed always yields the same layer, bit for bit.
"""

from __future__ import annotations

import numpy as np
import shapely

from geofence.cells import CellLayer
from geofence.districts import DistrictIndex

_MIN_SITES = 6
_URBAN_KM2 = 200.0
_URBAN_SHARE = 0.4

#: (operator, mnc, seed) of the three national operators (MCC 286).
NATIONAL_OPERATORS: tuple[tuple[str, int, int], ...] = (
    ("turkcell", 1, 2861),
    ("vodafone", 2, 2862),
    ("turktelekom", 3, 2863),
)

_districts_cache: DistrictIndex | None = None


def _district_index() -> DistrictIndex:
    global _districts_cache
    if _districts_cache is None:
        _districts_cache = DistrictIndex.load()
    return _districts_cache


def _sample_in(
    rng: np.random.Generator, geom: shapely.Geometry, n: int
) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = geom.bounds
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    got = 0
    fill = max(0.05, shapely.area(geom) / max((maxx - minx) * (maxy - miny), 1e-12))
    while got < n:
        k = int((n - got) / fill * 1.3) + 8
        x = rng.uniform(minx, maxx, k)
        y = rng.uniform(miny, maxy, k)
        ok = shapely.contains_xy(geom, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        got += int(ok.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def generate_synthetic_layer(
    operator: str,
    mnc: int,
    seed: int,
    sites: int = 60000,
    districts: DistrictIndex | None = None,
) -> CellLayer:
    """A seeded national layer of ``sites`` sites for MCC 286 / ``mnc``."""
    index = districts if districts is not None else _district_index()
    rng = np.random.default_rng(seed)
    areas = np.array([d.area_km2 for d in index.districts], dtype=np.float64)
    n_d = len(areas)
    spare = max(0, sites - _MIN_SITES * n_d)
    urban = areas < _URBAN_KM2
    rural_w = np.where(urban, 0.0, np.sqrt(areas))
    share = np.where(
        urban,
        spare * _URBAN_SHARE / max(int(urban.sum()), 1),
        spare * (1.0 - _URBAN_SHARE) * rural_w / rural_w.sum(),
    )
    counts = _MIN_SITES + np.floor(share).astype(np.int64)
    # Hand out rounding leftovers to the largest remainders so the total is exact.
    short = sites - int(counts.sum())
    if short > 0:
        order = np.argsort(-(share - np.floor(share)), kind="stable")
        counts[order[:short]] += 1
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    rngs: list[np.ndarray] = []
    tacs: list[np.ndarray] = []
    for i, (d, geom) in enumerate(zip(index.districts, index.geometries, strict=True)):
        n = int(counts[i])
        x, y = _sample_in(rng, geom, n)
        spacing_m = np.sqrt(d.area_km2 / n) * 1000.0
        lo, hi = (300.0, 1500.0) if d.area_km2 < _URBAN_KM2 else (2000.0, 15000.0)
        r = np.clip(1.3 * spacing_m * rng.uniform(0.8, 1.2, n), lo, hi)
        lons.append(x)
        lats.append(y)
        rngs.append(np.round(r))
        tacs.append(np.full(n, int(d.code[3:]), dtype=np.int64))
    total = int(counts.sum())
    return CellLayer(
        operator=operator,
        mcc=286,
        mnc=mnc,
        area=np.concatenate(tacs),
        cell=np.arange(1, total + 1, dtype=np.int64) * 10 + mnc,
        lon=np.round(np.concatenate(lons), 6),
        lat=np.round(np.concatenate(lats), 6),
        range_m=np.concatenate(rngs),
    )


def default_layers(districts: DistrictIndex | None = None) -> dict[str, CellLayer]:
    """The three national synthetic layers (60,000 sites each)."""
    return {
        name: generate_synthetic_layer(name, mnc, seed, districts=districts)
        for name, mnc, seed in NATIONAL_OPERATORS
    }
