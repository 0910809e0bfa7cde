"""Operator link health: the latest signed link test per operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from alert_api.deps import ReaderClient, get_context
from schemas.links import LinkStatus
from services.context import ServiceContext
from services.link_tests import link_statuses

router = APIRouter(prefix="/v1/operators", tags=["operators"])


@router.get("/links", response_model=list[LinkStatus])
async def operator_links(
    _client: ReaderClient, context: Annotated[ServiceContext, Depends(get_context)]
) -> list[LinkStatus]:
    return await link_statuses(context.db, sorted(context.settings.enabled_operators))
