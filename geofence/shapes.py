"""Turn each target form into a lon/lat Shapely geometry, rejecting bad input.

Only input-level checks live here (numbers, ranges, polygon validity, codes);
checks that need the whole picture (land, area limit) belong to the engine.
"""

from __future__ import annotations

import math

from shapely.geometry.base import BaseGeometry

from geofence.auto_radius import auto_radius_m
from geofence.districts import DistrictIndex
from geofence.errors import GeofenceError
from geofence.geodesy import geodesic_circle
from geofence.geojson_input import parse_geojson_polygon
from geofence.limits import GeofenceLimits
from geofence.targets import AdminAreaTarget, AutoTarget, CircleTarget, GeoJSONTarget, Target


def _check_centre(lat: float, lon: float) -> None:
    if not (isinstance(lat, int | float) and isinstance(lon, int | float)):
        raise GeofenceError("invalid_coordinates", "lat and lon must be numbers")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise GeofenceError("not_finite", f"the centre ({lat}, {lon}) is not a finite position")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise GeofenceError(
            "coordinate_out_of_range",
            f"the centre lat={lat}, lon={lon} is outside latitude -90..90 / longitude -180..180",
        )


def _check_radius(radius_m: float, limits: GeofenceLimits) -> None:
    if not isinstance(radius_m, int | float) or not math.isfinite(radius_m):
        raise GeofenceError("not_finite", f"the radius {radius_m!r} is not a finite number")
    if not (limits.min_radius_m <= radius_m <= limits.max_radius_m):
        raise GeofenceError(
            "radius_out_of_range",
            f"the radius {radius_m:g} m is outside the allowed range "
            f"{limits.min_radius_m:g}..{limits.max_radius_m:g} m",
        )


def circle_geometry(
    lat: float, lon: float, radius_m: float, limits: GeofenceLimits
) -> BaseGeometry:
    """Validated circumscribing geodesic circle."""
    _check_centre(lat, lon)
    _check_radius(radius_m, limits)
    return geodesic_circle(lat, lon, float(radius_m))


def target_geometry(
    target: Target, limits: GeofenceLimits, districts: DistrictIndex
) -> BaseGeometry:
    """The lon/lat geometry of one target (no land or area checks yet)."""
    if isinstance(target, CircleTarget):
        return circle_geometry(target.lat, target.lon, target.radius_m, limits)
    if isinstance(target, AutoTarget):
        _check_centre(target.lat, target.lon)
        radius = auto_radius_m(target.last_seen_at, target.now, target.mode)
        return circle_geometry(target.lat, target.lon, radius, limits)
    if isinstance(target, GeoJSONTarget):
        return parse_geojson_polygon(target.geometry, limits.max_input_vertices)
    if isinstance(target, AdminAreaTarget):
        code = target.code.strip().upper() if isinstance(target.code, str) else ""
        geom = districts.area_geometry(code)
        if geom is None:
            raise GeofenceError(
                "unknown_area_code",
                f"{target.code!r} is not a known district (e.g. TUR034035) or province "
                "(e.g. TUR034) code",
            )
        return geom
    raise GeofenceError("unsupported_target", f"unsupported target type {type(target).__name__}")
