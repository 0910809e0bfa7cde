"""Cell-site layers and the "no cell missed" selection.

A layer is column arrays (numpy) rather than objects: 60,000+ sites per operator
must be generated, indexed and filtered in milliseconds.

Selection is two-stage so it is both fast and provably complete:

1. **Conservative prefilter.** Each site's coverage disc (centre, ``range`` in
   metres) is replaced at start-up by a lon/lat box that contains it: half-height
   ``range / 110,574 m`` (the shortest degree of latitude on WGS84) and
   half-width ``range / (111,320 m · cos φ_far)`` where ``φ_far`` is the disc's
   latitude furthest from the equator, both padded by 1 %. Boxes go into an
   STRtree; a query with the target and the ``intersects`` predicate returns every
   site whose box - hence every site whose disc - can touch the target.
2. **Exact filter.** Site positions are projected once at start-up into the
   national conformal plane (:class:`geofence.geodesy.ConformalPlane`); a site is
   selected when its plane distance to the (projected) target is at most
   ``range · k_max + 1 m``. The margin only ever adds sites; it cannot drop one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.geodesy import conformal
from geofence.planar import PlanarTarget

_M_PER_DEG_LAT_MIN = 110574.0
_M_PER_DEG_LON_EQ = 111320.0
_BOX_PAD = 1.01

OPENCELLID_COLUMNS = (
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "unit",
    "lon",
    "lat",
    "range",
    "samples",
    "changeable",
    "created",
    "updated",
    "averageSignal",
)


@dataclass(frozen=True, eq=False)
class CellLayer:
    """All cell sites of one operator, as parallel numpy columns.

    ``population`` (people served per site) is optional; when present the engine
    sums it for an estimated reach.
    """

    operator: str
    mcc: int
    mnc: int
    area: npt.NDArray[np.int64]
    cell: npt.NDArray[np.int64]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    range_m: npt.NDArray[np.float64]
    radio: tuple[str, ...] | None = None
    population: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return int(self.lon.shape[0])

    def cell_id(self, i: int) -> str:
        """``"<mcc>-<mnc>-<area>-<cell>"`` with the MNC zero-padded to two digits."""
        return self.cell_ids([i])[0]

    def cell_ids(self, indices: Iterable[int]) -> tuple[str, ...]:
        """Cell id strings for selected rows (formatted lazily, not for all 60k)."""
        prefix = f"{self.mcc}-{self.mnc:02d}-"
        idx = np.fromiter(indices, dtype=np.intp)
        area, cell = self.area, self.cell
        return tuple(
            f"{prefix}{a}-{c}" for a, c in zip(area[idx].tolist(), cell[idx].tolist(), strict=True)
        )

    @classmethod
    def from_opencellid_csv(
        cls, path: str | Path, operator: str, mcc: int | None = None, mnc: int | None = None
    ) -> CellLayer:
        """Load an OpenCelliD export, keeping only rows of one MCC/MNC when given.

        Rows with a missing/non-positive range get 1,000 m (OpenCelliD leaves range
        at 0 for cells seen too few times); rows with non-finite positions are
        dropped rather than guessed.
        """
        areas: list[int] = []
        cells: list[int] = []
        lons: list[float] = []
        lats: list[float] = []
        ranges: list[float] = []
        radios: list[str] = []
        seen_mcc: int | None = mcc
        seen_mnc: int | None = mnc
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if not {"mcc", "net", "area", "cell", "lon", "lat", "range"} <= set(header):
                # OpenCelliD's bulk exports have no header line.
                fh.seek(0)
                reader = csv.DictReader(fh, fieldnames=list(OPENCELLID_COLUMNS))
            for row in reader:
                try:
                    row_mcc, row_mnc = int(row["mcc"]), int(row["net"])
                    lon, lat = float(row["lon"]), float(row["lat"])
                    rng = float(row["range"] or 0.0)
                    area, cell = int(row["area"]), int(row["cell"])
                except (TypeError, ValueError):
                    continue
                if mcc is not None and row_mcc != mcc:
                    continue
                if mnc is not None and row_mnc != mnc:
                    continue
                if not (math.isfinite(lon) and math.isfinite(lat)):
                    continue
                seen_mcc = row_mcc if seen_mcc is None else seen_mcc
                seen_mnc = row_mnc if seen_mnc is None else seen_mnc
                areas.append(area)
                cells.append(cell)
                lons.append(lon)
                lats.append(lat)
                ranges.append(rng if math.isfinite(rng) and rng > 0 else 1000.0)
                radios.append(str(row.get("radio") or ""))
        return cls(
            operator=operator,
            mcc=seen_mcc if seen_mcc is not None else 0,
            mnc=seen_mnc if seen_mnc is not None else 0,
            area=np.asarray(areas, dtype=np.int64),
            cell=np.asarray(cells, dtype=np.int64),
            lon=np.asarray(lons, dtype=np.float64),
            lat=np.asarray(lats, dtype=np.float64),
            range_m=np.asarray(ranges, dtype=np.float64),
            radio=tuple(radios),
        )

    def to_opencellid_csv(self, path: str | Path) -> None:
        """Write the layer in OpenCelliD column order (handy for fixtures)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(OPENCELLID_COLUMNS)
            for i in range(len(self)):
                radio = self.radio[i] if self.radio else "LTE"
                writer.writerow(
                    [
                        radio,
                        self.mcc,
                        self.mnc,
                        int(self.area[i]),
                        int(self.cell[i]),
                        0,
                        f"{self.lon[i]:.6f}",
                        f"{self.lat[i]:.6f}",
                        int(math.ceil(self.range_m[i])),
                        1,
                        1,
                        0,
                        0,
                        0,
                    ]
                )


def disc_boxes(
    lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], range_m: npt.NDArray[np.float64]
) -> npt.NDArray[Any]:
    """Lon/lat boxes that each contain a site's coverage disc (see module docstring)."""
    dlat = range_m / _M_PER_DEG_LAT_MIN * _BOX_PAD
    far_lat = np.minimum(np.abs(lat) + dlat, 89.0)
    dlon = range_m / (_M_PER_DEG_LON_EQ * np.cos(np.radians(far_lat))) * _BOX_PAD
    boxes: npt.NDArray[Any] = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    return boxes


@dataclass(frozen=True, slots=True)
class Selection:
    """Selected rows of one layer plus their plane coordinates (reused for coverage)."""

    rows: npt.NDArray[np.intp]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    range_m: npt.NDArray[np.float64]


class CellIndex:
    """A layer plus its STRtree of coverage boxes and plane coordinates, built once."""

    def __init__(self, layer: CellLayer) -> None:
        self.layer = layer
        self.boxes = disc_boxes(layer.lon, layer.lat, layer.range_m)
        self.tree = shapely.STRtree(self.boxes)
        self.max_range_m = float(layer.range_m.max()) if len(layer) else 0.0
        self.x, self.y = conformal().xy(layer.lon, layer.lat)
        self.ids: npt.NDArray[np.object_] = np.asarray(
            layer.cell_ids(range(len(layer))), dtype=object
        )

    def candidates(self, target: BaseGeometry, detailed: bool) -> npt.NDArray[np.intp]:
        """Rows whose coverage box may touch ``target`` (a superset, never fewer).

        Simple targets are queried part by part on envelopes only (cheapest);
        detailed ones use the exact box/geometry ``intersects`` predicate so a
        province does not drag in every site of its bounding box.
        """
        if detailed:
            return np.asarray(self.tree.query(target, predicate="intersects"), dtype=np.intp)
        parts = shapely.get_parts(target)
        if len(parts) == 1:
            return np.asarray(self.tree.query(target), dtype=np.intp)
        return np.unique(np.asarray(self.tree.query(parts)[1], dtype=np.intp))

    def select(self, target: BaseGeometry, planar: PlanarTarget, detailed: bool) -> Selection:
        """Every site whose coverage disc touches ``target``, sorted by row.

        ``planar`` is ``target`` in the conformal plane (shared by all operators of
        one request). A site is kept when its plane distance to the target is at
        most ``range · k_max + 1 m``, ``k_max`` being the largest scale factor over
        the latitudes involved: plane distances overstate true ones by at most
        ``k_max``, so no touching disc is dropped.
        """
        cand = np.sort(self.candidates(target, detailed))
        if cand.size == 0:
            empty = np.empty(0, dtype=np.float64)
            return Selection(cand, empty, empty, empty)
        x, y, r = self.x[cand], self.y[cand], self.layer.range_m[cand]
        pad = self.max_range_m / _M_PER_DEG_LAT_MIN * _BOX_PAD
        _, k_max = conformal().k_range(target.bounds[1] - pad, target.bounds[3] + pad)
        keep = planar.within_distance(x, y, r * k_max + 1.0)
        return Selection(cand[keep], x[keep], y[keep], r[keep])

    def cell_ids(self, rows: npt.NDArray[np.intp]) -> tuple[str, ...]:
        """Precomputed id strings of the selected rows."""
        return tuple(self.ids[rows].tolist())
