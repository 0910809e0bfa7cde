"""Türkiye's districts and provinces, indexed once for the life of the process.

Every question the engine asks about administrative land ("which districts does
this touch, and how much of each?", "is this on Turkish land at all?", "what is
province TUR034?") is answered here from the shipped OCHA ADM2 boundaries. The
STRtree and the equal-area district sizes are built once in :meth:`load`, so a
request only pays for the few districts its target actually touches.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.geodesy import albers_area_km2
from geofence.results import AreaShare

_DATA_FILE = "tr_districts_adm2.geojson.gz"


@dataclass(frozen=True, slots=True)
class District:
    """One ADM2 unit with its province, as shipped."""

    code: str
    name: str
    province_code: str
    province_name: str
    area_km2: float


@dataclass(frozen=True, slots=True)
class Province:
    """One ADM1 unit; its geometry is the union of its districts."""

    code: str
    name: str
    area_km2: float
    district_indices: tuple[int, ...]


def _read_features() -> list[Mapping[str, Any]]:
    ref = resources.files("geofence").joinpath("data", _DATA_FILE)
    with ref.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        collection = json.load(fh)
    features: list[Mapping[str, Any]] = collection["features"]
    return features


class DistrictIndex:
    """Spatial index over all 973 districts plus province roll-ups."""

    def __init__(
        self,
        districts: Sequence[District],
        geometries: Sequence[BaseGeometry],
    ) -> None:
        self.districts: tuple[District, ...] = tuple(districts)
        self.geometries = np.asarray(geometries, dtype=object)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self.by_code: dict[str, int] = {d.code: i for i, d in enumerate(self.districts)}
        self.areas_km2 = np.array([d.area_km2 for d in self.districts], dtype=np.float64)
        grouped: dict[str, list[int]] = {}
        for i, d in enumerate(self.districts):
            grouped.setdefault(d.province_code, []).append(i)
        self.provinces: dict[str, Province] = {}
        for pcode, members in sorted(grouped.items()):
            first = self.districts[members[0]]
            self.provinces[pcode] = Province(
                code=pcode,
                name=first.province_name,
                area_km2=float(sum(self.districts[i].area_km2 for i in members)),
                district_indices=tuple(members),
            )
        self._province_geoms: dict[str, BaseGeometry] = {}
        minx, miny, maxx, maxy = shapely.total_bounds(self.geometries)
        self.bounds: tuple[float, float, float, float] = (
            float(minx),
            float(miny),
            float(maxx),
            float(maxy),
        )

    @classmethod
    def load(cls) -> DistrictIndex:
        """Read the packaged GeoJSON and build the index (about a second)."""
        features = _read_features()
        geoms = [shapely.geometry.shape(f["geometry"]) for f in features]
        areas = albers_area_km2(np.asarray(geoms, dtype=object))
        districts = [
            District(
                code=str(f["properties"]["pcode"]),
                name=str(f["properties"]["name_tr"]),
                province_code=str(f["properties"]["province_pcode"]),
                province_name=str(f["properties"]["province_tr"]),
                area_km2=float(a),
            )
            for f, a in zip(features, areas, strict=True)
        ]
        return cls(districts, geoms)

    def province_geometry(self, code: str) -> BaseGeometry:
        """Union of a province's districts, computed on first use and kept."""
        geom = self._province_geoms.get(code)
        if geom is None:
            members = list(self.provinces[code].district_indices)
            geom = shapely.coverage_union_all(self.geometries[members])
            if not geom.is_valid:
                geom = shapely.union_all(self.geometries[members])
            self._province_geoms[code] = geom
        return geom

    def area_geometry(self, code: str) -> BaseGeometry | None:
        """Geometry of a district or province p-code, or None when unknown."""
        idx = self.by_code.get(code)
        if idx is not None:
            geom: BaseGeometry = self.geometries[idx]
            return geom
        if code in self.provinces:
            return self.province_geometry(code)
        return None

    def touching(self, geom: BaseGeometry) -> np.ndarray[Any, np.dtype[np.intp]]:
        """Indices (sorted) of districts whose land intersects ``geom``."""
        hits = self.tree.query(geom, predicate="intersects")
        return np.sort(np.asarray(hits, dtype=np.intp))

    def touches_land(self, geom: BaseGeometry) -> bool:
        """Whether any district intersects ``geom`` (the "on Turkish land" test)."""
        return bool(len(self.tree.query(geom, predicate="intersects")))

    def shares(self, geom: BaseGeometry) -> tuple[tuple[AreaShare, ...], tuple[AreaShare, ...]]:
        """Districts and provinces touched by ``geom`` with the share of each covered.

        Intersection is exact in lon/lat; areas come from the same equal-area
        projection as the precomputed district sizes, so shares are consistent
        and sum sensibly into provinces. Districts the target covers entirely
        (prepared ``covers``) skip the overlay and count their whole area.
        """
        idx = self.touching(geom)
        if len(idx) == 0:
            return (), ()
        # Districts the target covers entirely need no overlay: their share is their
        # whole (precomputed) area. Only the ones it cuts are intersected.
        if not shapely.is_prepared(geom):
            shapely.prepare(geom)
        geoms = self.geometries[idx]
        # A district target is the very geometry object of its district: no test needed.
        same = np.fromiter((g is geom for g in geoms), dtype=np.bool_, count=len(geoms))
        whole = same.copy()
        if not same.all():
            whole[~same] = np.asarray(shapely.covers(geom, geoms[~same]), dtype=np.bool_)
        inter_km2 = self.areas_km2[idx]
        cut = np.flatnonzero(~whole)
        if cut.size:
            parts = shapely.intersection(geoms[cut], geom)
            inter_km2[cut] = np.asarray(albers_area_km2(parts), dtype=np.float64)
        district_shares: list[AreaShare] = []
        per_province: dict[str, float] = {}
        for i, a in zip(idx.tolist(), inter_km2.tolist(), strict=True):
            d = self.districts[i]
            district_shares.append(
                AreaShare(
                    code=d.code,
                    name=d.name,
                    province_code=d.province_code,
                    share_covered=_clamp01(a / d.area_km2),
                )
            )
            per_province[d.province_code] = per_province.get(d.province_code, 0.0) + a
        district_shares.sort(key=lambda s: s.code)
        province_shares = tuple(
            AreaShare(
                code=p,
                name=self.provinces[p].name,
                province_code=None,
                share_covered=_clamp01(a / self.provinces[p].area_km2),
            )
            for p, a in sorted(per_province.items())
        )
        return tuple(district_shares), province_shares


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
