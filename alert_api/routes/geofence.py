"""Geofence preview: what an alert with this area would reach, without creating it."""

from __future__ import annotations

from fastapi import APIRouter

from alert_api.deps import AlertServiceDep, ReaderClient
from alert_api.routes.alerts import PROBLEMS
from schemas.areas import GeofencePreview, GeofencePreviewRequest

router = APIRouter(prefix="/v1/geofence", tags=["geofence"])


@router.post("/preview", response_model=GeofencePreview, responses=PROBLEMS)
async def preview(
    body: GeofencePreviewRequest, _client: ReaderClient, service: AlertServiceDep
) -> GeofencePreview:
    return service.preview(body)
