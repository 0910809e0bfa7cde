"""Strict parsing of user-supplied GeoJSON polygons.

An alert area is a legal statement of who gets woken up, so a broken polygon is
rejected with an explanation instead of being "fixed" (buffer(0) and friends
silently change the area, sometimes to nothing). Checks run cheapest first and
the vertex cap is enforced while walking the input, so a hostile payload cannot
make us build a huge geometry before we refuse it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geofence.errors import GeofenceError

_POINT_IN_REASON = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)")

_REASON_CODES: tuple[tuple[str, str], ...] = (
    ("Ring Self-intersection", "polygon_self_intersection"),
    ("Self-intersection", "polygon_self_intersection"),
    ("Hole lies outside shell", "hole_outside_shell"),
    ("Nested holes", "nested_holes"),
    ("Nested shells", "polygons_overlap"),
    ("Interior is disconnected", "interior_disconnected"),
    ("Duplicate Rings", "duplicate_rings"),
    ("Too few points", "too_few_positions"),
)


def _where(ring: int, poly: int, multi: bool) -> str:
    return f"ring {ring} of polygon {poly}" if multi else f"ring {ring}"


def _parse_ring(
    raw: Any, ring_i: int, poly_i: int, multi: bool, budget: list[int]
) -> list[tuple[float, float]]:
    where = _where(ring_i, poly_i, multi)
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise GeofenceError("invalid_geojson", f"{where} is not an array of positions")
    budget[0] -= len(raw)
    if budget[0] < 0:
        raise GeofenceError(
            "too_many_vertices",
            f"the geometry has more than {budget[1]} positions; simplify it before sending",
        )
    out: list[tuple[float, float]] = []
    for pos_i, pos in enumerate(raw):
        if (
            not isinstance(pos, Sequence)
            or isinstance(pos, str | bytes)
            or len(pos) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        ):
            raise GeofenceError(
                "invalid_geojson",
                f"position {pos_i} of {where} is not a [longitude, latitude] pair of numbers",
            )
        lon, lat = float(pos[0]), float(pos[1])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise GeofenceError(
                "not_finite",
                f"position {pos_i} of {where} has a non-finite coordinate ({pos[0]}, {pos[1]})",
            )
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise GeofenceError(
                "coordinate_out_of_range",
                f"position {pos_i} of {where} is ({lon}, {lat}), outside longitude -180..180 "
                "/ latitude -90..90",
            )
        out.append((lon, lat))
    if len(out) < 4:
        raise GeofenceError(
            "too_few_positions",
            f"{where} has {len(out)} positions; a linear ring needs at least 4 "
            "(three corners plus the closing position)",
        )
    if out[0] != out[-1]:
        raise GeofenceError(
            "ring_not_closed",
            f"{where} is not closed: it starts at ({out[0][0]}, {out[0][1]}) but ends at "
            f"({out[-1][0]}, {out[-1][1]}); repeat the first position at the end",
        )
    return out


def _explain(geom: BaseGeometry, subject: str) -> GeofenceError | None:
    reason = str(shapely.is_valid_reason(geom))
    if reason == "Valid Geometry":
        return None
    code = "invalid_polygon"
    for prefix, mapped in _REASON_CODES:
        if reason.startswith(prefix):
            code = mapped
            break
    m = _POINT_IN_REASON.search(reason)
    at = f" at ({float(m.group(1)):.6g}, {float(m.group(2)):.6g})" if m else ""
    if code == "polygon_self_intersection":
        text = f"{subject} intersects itself{at}"
    elif code == "hole_outside_shell":
        text = f"{subject} has a hole that lies outside its outer ring{at}"
    elif code == "nested_holes":
        text = f"{subject} has a hole nested inside another hole{at}"
    elif code == "interior_disconnected":
        text = f"{subject} has holes that cut its interior into pieces{at}"
    elif code == "polygons_overlap":
        text = f"{subject} has parts that overlap or are nested{at}"
    elif code == "duplicate_rings":
        text = f"{subject} repeats the same ring twice{at}"
    elif code == "too_few_positions":
        text = f"{subject} has a ring with too few distinct positions{at}"
    else:
        text = f"{subject} is not a valid polygon: {reason}"
    return GeofenceError(code, text)


def _validate_polygon(rings: list[list[tuple[float, float]]], poly_i: int, multi: bool) -> Any:
    for ring_i, ring in enumerate(rings):
        lr = shapely.LinearRing(ring)
        if not lr.is_valid or not lr.is_simple:
            err = _explain(shapely.Polygon(ring), _where(ring_i, poly_i, multi))
            if err is None:
                err = GeofenceError(
                    "polygon_self_intersection", f"{_where(ring_i, poly_i, multi)} is not simple"
                )
            raise err
        if shapely.area(shapely.Polygon(ring)) == 0.0:
            raise GeofenceError(
                "zero_area", f"{_where(ring_i, poly_i, multi)} encloses no area (collinear points)"
            )
    poly = shapely.Polygon(rings[0], rings[1:])
    err = _explain(poly, f"polygon {poly_i}" if multi else "the polygon")
    if err is not None:
        raise err
    return poly


def parse_geojson_polygon(geometry: Mapping[str, Any], max_vertices: int) -> BaseGeometry:
    """Validate a GeoJSON Polygon/MultiPolygon and return it as a Shapely geometry."""
    if not isinstance(geometry, Mapping):
        raise GeofenceError("invalid_geojson", "the geometry must be a GeoJSON object")
    gtype = geometry.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise GeofenceError(
            "unsupported_geometry",
            f"geometry type {gtype!r} is not supported; send a Polygon or MultiPolygon",
        )
    coords = geometry.get("coordinates")
    if not isinstance(coords, Sequence) or isinstance(coords, str | bytes) or not coords:
        raise GeofenceError("invalid_geojson", f"the {gtype} has no coordinates array")
    multi = gtype == "MultiPolygon"
    raw_polys: Sequence[Any] = coords if multi else [coords]
    budget = [max_vertices, max_vertices]
    polys = []
    for poly_i, raw_rings in enumerate(raw_polys):
        if (
            not isinstance(raw_rings, Sequence)
            or isinstance(raw_rings, str | bytes)
            or not raw_rings
        ):
            raise GeofenceError(
                "invalid_geojson", f"polygon {poly_i} is not a non-empty array of rings"
            )
        rings = [
            _parse_ring(r, ring_i, poly_i, multi, budget) for ring_i, r in enumerate(raw_rings)
        ]
        polys.append(_validate_polygon(rings, poly_i, multi))
    if not multi:
        result: BaseGeometry = polys[0]
        return result
    mp = shapely.MultiPolygon(polys)
    if not mp.is_valid:
        tree = shapely.STRtree(polys)
        a_idx, b_idx = tree.query(polys, predicate="intersects")
        for a, b in zip(a_idx.tolist(), b_idx.tolist(), strict=True):
            if a < b:
                shared = shapely.intersection(polys[a], polys[b])
                p = shapely.get_coordinates(shared)
                at = f" at ({p[0][0]:.6g}, {p[0][1]:.6g})" if len(p) else ""
                raise GeofenceError(
                    "polygons_overlap",
                    f"polygons {a} and {b} of the multipolygon overlap or touch along an "
                    f"edge{at}; merge them into one polygon",
                )
        err = _explain(mp, "the multipolygon")
        if err is not None:
            raise err
    return mp
