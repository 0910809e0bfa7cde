"""Alert routes: validate, call one service function, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from alert_api.deps import AlertServiceDep, ReaderClient, WriterClient, get_context
from schemas.alerts import (
    AlertCreate,
    AlertList,
    AlertPatch,
    AlertRead,
    AlertRenew,
    AlertResolve,
    AlertStatistics,
    AlertStatus,
)
from schemas.delivery_timeline import DeliveryTimeline
from schemas.problems import Problem
from services.context import ServiceContext
from services.delivery_timeline import delivery_timeline

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


def model_response(
    model: BaseModel, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    """Serialise once with pydantic; the hot paths skip FastAPI's second validation pass."""
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (401, 403, 404, 409, 422)
}

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes retries safe: same key and body return the same alert.",
    ),
]


@router.post("", status_code=201, response_model=AlertRead, responses=PROBLEMS)
async def create_alert(
    body: AlertCreate,
    client: WriterClient,
    service: AlertServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    outcome = await service.create(client.client_id, body, idempotency_key)
    headers = {"Location": f"/v1/alerts/{outcome.alert.id}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return model_response(outcome.alert, 201, headers)


@router.get("", response_model=AlertList, responses=PROBLEMS)
async def list_alerts(
    _client: ReaderClient,
    service: AlertServiceDep,
    status: AlertStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AlertList:
    return await service.list_alerts(status, limit, cursor)


@router.get("/{alert_id}", response_model=AlertRead, responses=PROBLEMS)
async def get_alert(alert_id: str, _client: ReaderClient, service: AlertServiceDep) -> AlertRead:
    return await service.get(alert_id)


@router.get(
    "/{alert_id}/area",
    responses={**PROBLEMS, 200: {"content": {"application/geo+json": {}}}},
    response_class=GeoJSONResponse,
)
async def get_alert_area(
    alert_id: str, _client: ReaderClient, service: AlertServiceDep
) -> GeoJSONResponse:
    return GeoJSONResponse(await service.area_geojson(alert_id))


@router.post("/{alert_id}/resolve", status_code=202, response_model=AlertRead, responses=PROBLEMS)
async def resolve_alert(
    alert_id: str,
    body: AlertResolve,
    client: WriterClient,
    service: AlertServiceDep,
) -> Response:
    outcome = await service.resolve(client.client_id, alert_id, body)
    return model_response(outcome.alert, 200 if outcome.already_resolved else 202)


@router.get("/{alert_id}/delivery", response_model=DeliveryTimeline, responses=PROBLEMS)
async def get_alert_delivery(
    alert_id: str,
    _client: ReaderClient,
    context: Annotated[ServiceContext, Depends(get_context)],
) -> DeliveryTimeline:
    """Per operator: every attempt, how each message ended, the operator's receipts; totals."""
    return await delivery_timeline(context.db, alert_id)


@router.patch("/{alert_id}", response_model=AlertRead, responses=PROBLEMS)
async def update_alert(
    alert_id: str,
    body: AlertPatch,
    client: WriterClient,
    service: AlertServiceDep,
) -> Response:
    """New description or photo, another area, extra languages: a new version to operators.
    A patch that matches the alert already changes nothing and sends nothing."""
    outcome = await service.update(client.client_id, alert_id, body)
    return model_response(outcome.alert, 200)


@router.post("/{alert_id}/renew", response_model=AlertRead, responses=PROBLEMS)
async def renew_alert(
    alert_id: str,
    client: WriterClient,
    service: AlertServiceDep,
    body: AlertRenew | None = None,
) -> Response:
    hours = body.hours if body is not None else None
    return model_response(await service.renew(client.client_id, alert_id, hours), 200)


statistics_router = APIRouter(prefix="/v1/statistics", tags=["statistics"])


@statistics_router.get("", response_model=AlertStatistics, responses=PROBLEMS)
async def get_statistics(_client: ReaderClient, service: AlertServiceDep) -> AlertStatistics:
    """Anonymous counts; they survive the erasure of personal data."""
    return await service.statistics()
