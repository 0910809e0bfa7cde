"""Target areas as a case system sends them, and the resolved area it gets back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_UNION_PARTS = 20


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Point(_Form):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class CircleArea(_Form):
    """``radius_m`` metres around ``center``, or around the last-seen point when omitted."""

    type: Literal["circle"]
    radius_m: float = Field(gt=0, allow_inf_nan=False)
    center: Point | None = None


class PolygonArea(_Form):
    """A GeoJSON Polygon or MultiPolygon (RFC 7946: lon/lat order, closed rings)."""

    type: Literal["polygon"]
    geometry: dict[str, Any]


class AdminArea(_Form):
    """Whole districts (``TUR034035``) and/or provinces (``TUR034``)."""

    type: Literal["admin_area"]
    codes: list[Annotated[str, Field(pattern=r"^TUR\d{3}(\d{3})?$")]] = Field(
        min_length=1, max_length=100
    )


class AutoArea(_Form):
    """A circle around the last-seen point that grows with the time since then (capped)."""

    type: Literal["auto"]
    mode: Literal["on_foot", "vehicle"]


AreaForm = Annotated[CircleArea | PolygonArea | AdminArea | AutoArea, Field(discriminator="type")]


class UnionArea(_Form):
    """Several forms at once; the alert covers their union."""

    type: Literal["union"]
    parts: list[AreaForm] = Field(min_length=1, max_length=MAX_UNION_PARTS)


TargetArea = Annotated[
    CircleArea | PolygonArea | AdminArea | AutoArea | UnionArea, Field(discriminator="type")
]


class AreaShareRead(BaseModel):
    code: str
    name: str
    province_code: str | None
    share_covered: float


class BroadcastRead(BaseModel):
    geometry: dict[str, Any]
    vertex_count: int
    overshoot_km2: float
    overshoot_max_m: float


class OperatorReachRead(BaseModel):
    operator: str
    mcc: int
    mnc: int
    cell_count: int
    coverage_outside_km2: float
    coverage_outside_share: float
    estimated_population: int | None
    cell_ids: list[str] | None = None


class ResolvedArea(BaseModel):
    """What the geofence engine decided for a target area."""

    area_km2: float
    districts: list[AreaShareRead]
    provinces: list[AreaShareRead]
    broadcast: BroadcastRead
    operators: list[OperatorReachRead]


class SeenAt(Point):
    at: AwareDatetime | None = Field(default=None, description="Needed for auto areas.")


class GeofencePreviewRequest(_Form):
    target_area: TargetArea
    last_seen: SeenAt | None = Field(
        default=None, description="Needed for circles without a center and for auto areas."
    )
    include_cells: bool = False


class GeofencePreview(ResolvedArea):
    target: dict[str, Any]
