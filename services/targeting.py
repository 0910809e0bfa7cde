"""From the API's target-area forms to geofence targets, and from a resolution back.

The geofence engine is pure and knows nothing of request fields; this module
keeps the mapping, so an engine error can name the exact field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shapely.geometry import mapping

from geofence import (
    AdminAreaTarget,
    AutoTarget,
    CircleTarget,
    GeofenceEngine,
    GeofenceError,
    GeoJSONTarget,
    Resolution,
    Target,
)
from schemas.areas import (
    AdminArea,
    AreaShareRead,
    AutoArea,
    BroadcastRead,
    CircleArea,
    GeofencePreview,
    GeofencePreviewRequest,
    OperatorReachRead,
    PolygonArea,
    ResolvedArea,
    TargetArea,
    UnionArea,
)
from services.errors import NotFound, ValidationFailed


@dataclass(frozen=True, slots=True)
class Origin:
    lat: float | None
    lon: float | None
    at: datetime | None


def to_targets(area: TargetArea, origin: Origin, now: datetime) -> tuple[list[Target], list[str]]:
    """The engine's targets, and for each the request field it came from."""
    forms = area.parts if isinstance(area, UnionArea) else [area]
    prefix = "target_area.parts" if isinstance(area, UnionArea) else None
    targets: list[Target] = []
    fields: list[str] = []
    for i, form in enumerate(forms):
        field = f"{prefix}.{i}" if prefix else "target_area"
        for target in _form_targets(form, origin, now, field):
            targets.append(target)
            fields.append(field)
    return targets, fields


def _form_targets(
    form: CircleArea | PolygonArea | AdminArea | AutoArea,
    origin: Origin,
    now: datetime,
    field: str,
) -> list[Target]:
    if isinstance(form, CircleArea):
        lat, lon = (form.center.lat, form.center.lon) if form.center else (origin.lat, origin.lon)
        if lat is None or lon is None:
            raise ValidationFailed("a circle needs a center or a last-seen point", field=field)
        return [CircleTarget(lat=lat, lon=lon, radius_m=form.radius_m)]
    if isinstance(form, PolygonArea):
        return [GeoJSONTarget(geometry=form.geometry)]
    if isinstance(form, AdminArea):
        return [AdminAreaTarget(code=code) for code in dict.fromkeys(form.codes)]
    if origin.lat is None or origin.lon is None or origin.at is None:
        raise ValidationFailed("an auto area needs the last-seen point and time", field=field)
    return [
        AutoTarget(lat=origin.lat, lon=origin.lon, last_seen_at=origin.at, now=now, mode=form.mode)
    ]


def resolve(engine: GeofenceEngine, area: TargetArea, origin: Origin, now: datetime) -> Resolution:
    """Resolve or raise ValidationFailed naming the field (never a silently changed area)."""
    targets, fields = to_targets(area, origin, now)
    try:
        return engine.resolve(targets)
    except GeofenceError as exc:
        index = exc.target_index
        field = fields[index] if index is not None and index < len(fields) else "target_area"
        raise ValidationFailed(f"{exc.message} [{exc.code}]", field=field) from exc


def resolved_area(resolution: Resolution, include_cells: bool = False) -> ResolvedArea:
    return ResolvedArea(
        area_km2=round(resolution.area_km2, 6),
        districts=[_share(d) for d in resolution.districts],
        provinces=[_share(p) for p in resolution.provinces],
        broadcast=BroadcastRead(
            geometry=dict(resolution.broadcast.geometry),
            vertex_count=resolution.broadcast.vertex_count,
            overshoot_km2=round(resolution.broadcast.overshoot_km2, 6),
            overshoot_max_m=round(resolution.broadcast.overshoot_max_m, 1),
        ),
        operators=[
            OperatorReachRead(
                operator=o.operator,
                mcc=o.mcc,
                mnc=o.mnc,
                cell_count=len(o.cell_ids),
                coverage_outside_km2=round(o.coverage_outside_km2, 6),
                coverage_outside_share=round(o.coverage_outside_share, 6),
                estimated_population=o.estimated_population,
                cell_ids=list(o.cell_ids) if include_cells else None,
            )
            for o in resolution.operators
        ],
    )


def _share(share: Any) -> AreaShareRead:
    return AreaShareRead(
        code=share.code,
        name=share.name,
        province_code=share.province_code,
        share_covered=round(share.share_covered, 6),
    )


def preview(
    engine: GeofenceEngine, request: GeofencePreviewRequest, now: datetime
) -> GeofencePreview:
    seen = request.last_seen
    origin = Origin(seen.lat, seen.lon, seen.at) if seen else Origin(None, None, None)
    resolution = resolve(engine, request.target_area, origin, now)
    area = resolved_area(resolution, request.include_cells)
    return GeofencePreview(target=dict(resolution.target_geojson), **area.model_dump())


def area_feature_collection(
    engine: GeofenceEngine, alert_id: str, target: Mapping[str, Any], area: ResolvedArea
) -> dict[str, Any]:
    """GeoJSON for a map: the target, the broadcast polygon and each district touched."""
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": dict(target),
            "properties": {"role": "target", "alert_id": alert_id, "area_km2": area.area_km2},
        },
        {
            "type": "Feature",
            "geometry": area.broadcast.geometry,
            "properties": {
                "role": "broadcast",
                "vertex_count": area.broadcast.vertex_count,
                "overshoot_km2": area.broadcast.overshoot_km2,
                "overshoot_max_m": area.broadcast.overshoot_max_m,
            },
        },
    ]
    for district in area.districts:
        geometry = engine.districts_index.area_geometry(district.code)
        if geometry is None:
            raise NotFound(f"district {district.code} is no longer in the boundary data")
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(geometry),
                "properties": {"role": "district", **district.model_dump()},
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "alert_id": alert_id,
            "area_km2": area.area_km2,
            "provinces": [p.model_dump() for p in area.provinces],
            "operators": [o.model_dump(exclude={"cell_ids"}) for o in area.operators],
        },
    }
