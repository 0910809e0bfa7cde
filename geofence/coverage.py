"""Estimate how much of the selected cells' coverage spills outside the target.

An exact union of hundreds of discs costs far more than the whole rest of a
request, and operators only need a figure to judge overshoot. So the union is
rasterised on one regular grid per request, shared by all operators, with a
*scanline* fill: each disc is cut into one column span per grid row it crosses
(``|y - cy| <= r`` gives the half-width ``sqrt(r² - (y - cy)²)``), each span
adds +1 at its first column and -1 after its last in a per-operator difference
grid, and one cumulative sum along the rows gives every grid point's cover count.
The target is filled the same way with the even-odd rule from its boundary
segments (one crossing per segment and row it spans). Work is therefore
proportional to disc-rows plus grid points, not disc-area x grid points, and the
whole request is a handful of numpy calls however many operators there are.

Grid spacing ``h`` is the largest of: the bounding box over ``_MAX_GRID`` points,
the total disc height over ``_MAX_SPANS`` spans, and 1 m. A grid point (cell
centre) is covered when it lies within a selected disc, and "outside" when it is
also outside the target; areas are ``count · h² / k²`` (``k`` the conformal
plane's scale there).

Accuracy, measured against an exact polygon union of the discs (32 segments per
quarter circle) for 80 bench targets (circles 0.5-30 km, polygons, districts) x 3
operators: coverage-outside km² median error 0.1 %, 90th percentile 0.2 %,
worst 0.6 %; the outside share within 0.003 (absolute) everywhere. The previous
raster (disc x grid-point pairs, up to 120 x 120 points) measured 0.2 % / 0.6 % /
1.5 % and 0.0064 on the same set at 2-3x the cost. Expect more error when discs
are only a few grid steps wide (huge targets with tiny cells).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from geofence.cells import Selection
from geofence.planar import PlanarTarget

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_MAX_GRID = 128 * 128
_MAX_SPANS = 30000


def _expand_rows(first: IntArray, count: IntArray) -> tuple[IntArray, IntArray]:
    """(owner, row) for every row ``first[i] .. first[i] + count[i] - 1`` of every item."""
    count = np.maximum(count, 0)
    owner = np.repeat(np.arange(count.shape[0]), count)
    starts = np.cumsum(count) - count
    rows = np.repeat(first - starts, count) + np.arange(owner.shape[0])
    return owner, rows


def _disc_cover(
    x: FloatArray,
    y: FloatArray,
    r: FloatArray,
    op: IntArray,
    n_ops: int,
    grid: tuple[float, float, float, int, int],
) -> npt.NDArray[np.bool_]:
    """(n_ops, ny, nx) mask of grid points inside at least one disc of each operator."""
    minx, miny, h, nx, ny = grid
    gy = (y - miny) / h - 0.5  # disc centre in row-index units
    gr = r / h
    j0 = np.maximum(np.ceil(gy - gr).astype(np.int64), 0)
    j1 = np.minimum(np.floor(gy + gr).astype(np.int64), ny - 1)
    owner, row = _expand_rows(j0, j1 - j0 + 1)
    half = np.sqrt(np.maximum(gr[owner] ** 2 - (row - gy[owner]) ** 2, 0.0))
    gx = (x[owner] - minx) / h - 0.5
    i0 = np.maximum(np.ceil(gx - half).astype(np.int64), 0)
    i1 = np.minimum(np.floor(gx + half).astype(np.int64), nx - 1) + 1
    ok = i1 > i0
    base = (op[owner] * ny + row) * (nx + 1)
    size = n_ops * ny * (nx + 1)
    diff = np.bincount(base[ok] + i0[ok], minlength=size) - np.bincount(
        base[ok] + i1[ok], minlength=size
    )
    counts = np.cumsum(diff.reshape(n_ops, ny, nx + 1), axis=2)[:, :, :nx]
    covered: npt.NDArray[np.bool_] = counts > 0
    return covered


def _target_fill(
    segments: FloatArray, grid: tuple[float, float, float, int, int]
) -> npt.NDArray[np.bool_]:
    """(ny, nx) mask of grid points inside the target (even-odd rule over its rings)."""
    minx, miny, h, nx, ny = grid
    ax, ay, bx, by = segments[:, 0], segments[:, 1], segments[:, 2], segments[:, 3]
    lo = np.minimum(ay, by)
    hi = np.maximum(ay, by)
    # Rows whose centre line y_j lies in [lo, hi): half-open, so a vertex shared by
    # two segments is counted once and horizontal segments never count.
    j0 = np.maximum(np.ceil((lo - miny) / h - 0.5).astype(np.int64), 0)
    j1 = np.minimum(np.ceil((hi - miny) / h - 0.5).astype(np.int64), ny)
    seg, row = _expand_rows(j0, j1 - j0)
    yj = miny + (row + 0.5) * h
    t = (yj - ay[seg]) / (by[seg] - ay[seg])
    xc = ax[seg] + t * (bx[seg] - ax[seg])
    # A crossing toggles inside/outside for every column centre right of it.
    col = np.clip(np.floor((xc - minx) / h - 0.5).astype(np.int64) + 1, 0, nx)
    toggles = np.bincount(row * (nx + 1) + col, minlength=ny * (nx + 1))
    parity = np.cumsum(toggles.reshape(ny, nx + 1), axis=1)[:, :nx]
    inside: npt.NDArray[np.bool_] = (parity & 1).astype(np.bool_)
    return inside


def coverage_outside(
    selections: Sequence[Selection], planar: PlanarTarget, k_mid: float = 1.0
) -> list[tuple[float, float]]:
    """Per selection: (km² of coverage outside the target, that as a share of its coverage)."""
    live = [i for i, s in enumerate(selections) if s.x.size]
    out: list[tuple[float, float]] = [(0.0, 0.0) for _ in selections]
    if not live:
        return out
    x = np.concatenate([selections[i].x for i in live])
    y = np.concatenate([selections[i].y for i in live])
    r = np.concatenate([selections[i].range_m for i in live])
    op = np.repeat(
        np.arange(len(live), dtype=np.int64), [selections[i].x.size for i in live]
    ).astype(np.int64)
    minx, maxx = float((x - r).min()), float((x + r).max())
    miny, maxy = float((y - r).min()), float((y + r).max())
    width, height = maxx - minx, maxy - miny
    h = max(
        math.sqrt(width * height / _MAX_GRID),
        float(np.sum(2.0 * r)) / _MAX_SPANS,
        1.0,
    )
    nx = int(math.ceil(width / h)) + 1
    ny = int(math.ceil(height / h)) + 1
    grid = (minx, miny, h, nx, ny)
    covered = _disc_cover(x, y, r, op, len(live), grid)
    outside_target = ~_target_fill(planar.segments, grid)
    total = covered.sum(axis=(1, 2))
    outside = (covered & outside_target[None, :, :]).sum(axis=(1, 2))
    cell_km2 = h * h / 1e6 / (k_mid * k_mid)
    for n, i in enumerate(live):
        if total[n] == 0:
            continue
        outside_km2 = float(outside[n]) * cell_km2
        out[i] = (outside_km2, float(outside[n]) / float(total[n]))
    return out
