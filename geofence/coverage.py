"""Estimate how much of the selected cells' coverage spills outside the target.

An exact union of hundreds of discs costs far more than the whole rest of a
request, and operators only need a figure to judge overshoot. So the union is
rasterised on one regular grid per request (shared by all operators, so the
point-in-target test is done once): grid spacing ``h`` is chosen so that neither
the grid (≤ ``_MAX_GRID`` points) nor the disc x grid-point pairs summed over all
operators (≤ ``_MAX_PAIRS``) explode. A grid point is covered when it lies within
a selected disc, and "outside" when it is also outside the target; areas are
``count · h² / k²`` (``k`` the conformal plane's scale there). Expect a few
per cent error, more when discs are only a few grid steps wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from geofence.cells import Selection
from geofence.planar import PlanarTarget

_MAX_GRID = 120 * 120
_MAX_PAIRS = 100000


def _raster(
    sel: Selection, minx: float, miny: float, h: float, nx: int, ny: int
) -> npt.NDArray[np.bool_]:
    """Flat mask of grid points covered by at least one disc of ``sel``.

    Discs are grouped by window size (next power of two in grid steps) so each
    group is one broadcast (discs x K x K) with separable squared distances,
    instead of per-pair index arithmetic.
    """
    mask = np.zeros(ny * nx, dtype=np.bool_)
    gx0 = (sel.x - minx) / h - 0.5  # disc centre in grid-index units
    gy0 = (sel.y - miny) / h - 0.5
    rr = sel.range_m / h
    steps = np.ceil(2.0 * rr).astype(np.int64) + 2
    buckets = np.maximum(0, np.ceil(np.log2(steps)).astype(np.int64))
    for b in np.unique(buckets).tolist():
        sel_b = buckets == b
        k = 1 << int(b)
        cx, cy, r = gx0[sel_b], gy0[sel_b], rr[sel_b]
        i0 = np.floor(cx - r).astype(np.int64)
        j0 = np.floor(cy - r).astype(np.int64)
        offs = np.arange(k)
        ix = i0[:, None] + offs[None, :]
        iy = j0[:, None] + offs[None, :]
        dx2 = (ix - cx[:, None]) ** 2
        dy2 = (iy - cy[:, None]) ** 2
        dx2 = np.where((ix >= 0) & (ix < nx), dx2, np.inf)
        dy2 = np.where((iy >= 0) & (iy < ny), dy2, np.inf)
        hit = dy2[:, :, None] + dx2[:, None, :] <= (r * r)[:, None, None]
        d, a, c = np.nonzero(hit)
        mask[iy[d, a] * nx + ix[d, c]] = True
    return mask


def coverage_outside(
    selections: Sequence[Selection], planar: PlanarTarget, k_mid: float = 1.0
) -> list[tuple[float, float]]:
    """Per selection: (km² of coverage outside the target, that as a share of its coverage)."""
    live = [s for s in selections if s.x.size]
    if not live:
        return [(0.0, 0.0) for _ in selections]
    minx = min(float((s.x - s.range_m).min()) for s in live)
    maxx = max(float((s.x + s.range_m).max()) for s in live)
    miny = min(float((s.y - s.range_m).min()) for s in live)
    maxy = max(float((s.y + s.range_m).max()) for s in live)
    width, height = maxx - minx, maxy - miny
    disc_cells = sum(float(np.sum((4.0 * s.range_m) ** 2)) for s in live)
    h = max(math.sqrt(width * height / _MAX_GRID), math.sqrt(disc_cells / _MAX_PAIRS), 1.0)
    nx = int(math.ceil(width / h)) + 1
    ny = int(math.ceil(height / h)) + 1
    covered = [_raster(s, minx, miny, h, nx, ny) if s.x.size else None for s in selections]
    any_mask = np.logical_or.reduce([c for c in covered if c is not None])
    any_cov = np.flatnonzero(any_mask)
    inside = np.zeros(nx * ny, dtype=np.bool_)
    inside[any_cov] = np.asarray(
        planar.contains_xy(
            (minx + (any_cov % nx + 0.5) * h).astype(np.float64),
            (miny + (any_cov // nx + 0.5) * h).astype(np.float64),
        ),
        dtype=np.bool_,
    )
    outside_grid = ~inside
    cell_km2 = h * h / 1e6 / (k_mid * k_mid)
    out: list[tuple[float, float]] = []
    for cov in covered:
        total = int(cov.sum()) if cov is not None else 0
        if cov is None or total == 0:
            out.append((0.0, 0.0))
            continue
        outside_km2 = float(np.count_nonzero(cov & outside_grid)) * cell_km2
        out.append((outside_km2, outside_km2 / (total * cell_km2)))
    return out
