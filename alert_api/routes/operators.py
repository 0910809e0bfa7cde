"""Operator-facing routes: receipts about the deliveries we made to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alert_api.deps import get_context
from operator_adapters.registry import receipt_parsers
from schemas.problems import Problem
from schemas.receipts import ReceiptAck, ReceiptReport
from services.context import ServiceContext
from services.receipts import ReceiptService, Unauthenticated

router = APIRouter(prefix="/v1/operators", tags=["operators"])
receipt_key = HTTPBearer(auto_error=False, description="The operator's own receipt key")

PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (401, 403, 404, 409, 413, 422)
}


def get_receipt_service(
    request: Request, context: Annotated[ServiceContext, Depends(get_context)]
) -> ReceiptService:
    """Built on first use and kept with the app: it needs every operator's adapter."""
    service: ReceiptService | None = getattr(request.app.state, "receipt_service", None)
    if service is None:
        operators = context.settings.operators
        service = ReceiptService(context.db, operators, receipt_parsers(operators))
        request.app.state.receipt_service = service
    return service


@router.post(
    "/{operator}/receipts",
    response_model=ReceiptAck,
    responses=PROBLEMS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReceiptReport.model_json_schema()}},
            "description": (
                "Signed as Standard Webhooks says (webhook-id, webhook-timestamp, "
                "webhook-signature with the operator's signing secret); the webhook-id "
                "is the receipt's identity. The body's webhook_id names our delivery."
            ),
        }
    },
)
async def post_receipt(
    operator: Annotated[str, Path(max_length=64)],
    request: Request,
    service: Annotated[ReceiptService, Depends(get_receipt_service)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(receipt_key)],
) -> ReceiptAck:
    """An operator reports what happened to a delivery (or acknowledges a link test).

    200 also for the same receipt again (``duplicate: true``, nothing changes).
    """
    body = await request.body()
    try:
        return await service.record(
            operator,
            credentials.credentials if credentials else None,
            request.headers,
            body,
            request.headers.get("content-type", "application/json"),
        )
    except Unauthenticated as exc:
        raise HTTPException(401, exc.detail, headers={"WWW-Authenticate": "Bearer"}) from exc
