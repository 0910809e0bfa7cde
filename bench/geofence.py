"""Geofence engine benchmark: 1,000 mixed targets against the national layers.

Run: /work/venv/bin/python bench/geofence.py

Prints start-up time, the first (cold) request for each benchmarked province,
p50/p99 per target kind, and compares the engine's cell
selection with a naive per-cell Python loop (same plane and same distance test,
one site at a time over all 180,000 sites). The naive loop runs on a sample of
circle targets and is reported per target (the sample size is printed), so the
ratio is an extrapolation to the whole mix of that kind.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict

import numpy as np
import shapely

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from geofence import (  # noqa: E402
    AdminAreaTarget,
    CircleTarget,
    GeofenceEngine,
    GeofenceError,
    GeoJSONTarget,
    Target,
)
from geofence.geodesy import conformal  # noqa: E402

N_TARGETS = 1000
NAIVE_SAMPLE = 5


def build_targets(engine: GeofenceEngine, rng: np.random.Generator) -> list[tuple[str, Target]]:
    idx = engine.districts_index
    areas = np.array([d.area_km2 for d in idx.districts])
    urban = np.flatnonzero(areas < 200)
    rural = np.flatnonzero(areas > 1000)
    out: list[tuple[str, Target]] = []

    def centre(pool: np.ndarray) -> tuple[float, float]:
        p = idx.geometries[int(rng.choice(pool))].point_on_surface()
        return p.y, p.x

    for _ in range(N_TARGETS):
        u = rng.random()
        if u < 0.45:
            pool, tag = (urban, "urban") if rng.random() < 0.6 else (rural, "rural")
            lat, lon = centre(pool)
            radius = float(np.exp(rng.uniform(math.log(500), math.log(30000))))
            size = "<=10km" if radius <= 10000 else ">10km"
            out.append((f"circle {tag} {size}", CircleTarget(lat, lon, radius)))
        elif u < 0.75:
            lat, lon = centre(urban if rng.random() < 0.5 else rural)
            n = int(rng.integers(6, 200))
            scale = float(rng.uniform(0.01, 0.15))
            ang = np.linspace(0, 2 * math.pi, n, endpoint=False)
            rad = rng.uniform(0.3, 1.0, n)
            k = math.cos(math.radians(lat))
            ring = [
                [lon + scale * r * math.cos(a) / k, lat + scale * r * math.sin(a)]
                for r, a in zip(rad, ang, strict=True)
            ]
            ring.append(ring[0])
            out.append(("polygon", GeoJSONTarget({"type": "Polygon", "coordinates": [ring]})))
        elif u < 0.98:
            out.append(("district", AdminAreaTarget(idx.districts[int(rng.integers(0, 973))].code)))
        else:
            out.append(
                ("province", AdminAreaTarget(str(rng.choice(["TUR006", "TUR034", "TUR035"]))))
            )
    return out


def naive_cells(engine: GeofenceEngine, target: Target) -> tuple[int, float]:
    """Select cells one site at a time in plain Python; (count, seconds)."""
    t0 = time.perf_counter()
    union = engine.target_union([target])
    plane = conformal()
    target_m = plane.project(union)
    _, k_max = plane.k_range(union.bounds[1] - 0.2, union.bounds[3] + 0.2)
    count = 0
    for index in engine.cells:
        xs, ys, rs = index.x.tolist(), index.y.tolist(), index.layer.range_m.tolist()
        for x, y, r in zip(xs, ys, rs, strict=True):
            if target_m.distance(shapely.Point(x, y)) <= r * k_max + 1.0:
                count += 1
    return count, time.perf_counter() - t0


def main() -> None:
    t0 = time.perf_counter()
    engine = GeofenceEngine.load()
    startup = time.perf_counter() - t0
    print(f"start-up (districts + 3 x 60,000-site layers + indexes): {startup:.2f} s")
    rng = np.random.default_rng(20260501)
    targets = build_targets(engine, rng)
    # The engine keeps per-area-code results (shares, broadcast outline, projected
    # target) after the first request for a code, so the "province" row below is
    # mostly warm; time each province's first request separately to show the cold cost.
    cold: list[str] = []
    for code in ("TUR006", "TUR034", "TUR035"):
        s = time.perf_counter()
        engine.resolve([AdminAreaTarget(code)])
        cold.append(f"{code} {(time.perf_counter() - s) * 1e3:.0f} ms")
    print("province, first request per code (cold): " + ", ".join(cold))
    for _, t in targets[:20]:  # warm caches (province unions, allocator)
        try:
            engine.resolve([t])
        except GeofenceError:
            pass
    times: dict[str, list[float]] = defaultdict(list)
    cell_time: dict[str, list[float]] = defaultdict(list)
    rejected = 0
    for kind, t in targets:
        s = time.perf_counter()
        try:
            engine.resolve([t])
        except GeofenceError:
            rejected += 1
            continue
        times[kind].append(time.perf_counter() - s)
        if kind.startswith("circle"):
            union = engine.target_union([t])
            s = time.perf_counter()
            engine._operators(union)
            cell_time[kind].append(time.perf_counter() - s)
    print(f"{len(targets)} targets, {rejected} rejected (e.g. circles mostly at sea)")
    print(f"{'kind':<24}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    all_t: list[float] = []
    for kind in sorted(times):
        a = np.array(times[kind]) * 1e3
        all_t.extend(a.tolist())
        print(
            f"{kind:<24}{a.size:>5}{np.percentile(a, 50):>10.2f}"
            f"{np.percentile(a, 99):>10.2f}{a.max():>10.2f}"
        )
    a = np.array(all_t)
    print(f"{'all':<24}{a.size:>5}{np.percentile(a, 50):>10.2f}{np.percentile(a, 99):>10.2f}")

    circles = [t for k, t in targets if k.startswith("circle") and "<=10km" in k]
    sample = circles[:NAIVE_SAMPLE]
    naive_s: list[float] = []
    for t in sample:
        try:
            n_cells, secs = naive_cells(engine, t)
        except GeofenceError:
            continue
        fast = engine.resolve([t])
        assert n_cells >= sum(len(o.cell_ids) for o in fast.operators) - 0
        naive_s.append(secs)
    fast_cells = np.concatenate([cell_time[k] for k in cell_time if "<=10km" in k])
    ratio = float(np.mean(naive_s)) / float(np.mean(fast_cells))
    print(
        f"naive per-cell loop (sample of {len(naive_s)} circles <=10 km, all 180,000 sites): "
        f"{np.mean(naive_s) * 1e3:.0f} ms per target; engine cell selection + coverage "
        f"{np.mean(fast_cells) * 1e3:.2f} ms -> {ratio:,.0f}x faster (extrapolated from the sample)"
    )


if __name__ == "__main__":
    main()
