"""Dependency aliases: the service context and the authenticated client."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.alerts import AlertService
from services.auth import Client
from services.context import ServiceContext

bearer = HTTPBearer(auto_error=False, description="API key issued to a case system")


def get_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


def get_alert_service(context: Annotated[ServiceContext, Depends(get_context)]) -> AlertService:
    return context.alerts


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, Client]]:
    async def dependency(
        context: Annotated[ServiceContext, Depends(get_context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Client:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401, "a bearer API key is required", headers={"WWW-Authenticate": "Bearer"}
            )
        client = context.auth.authenticate(credentials.credentials)
        if client is None:
            raise HTTPException(
                401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
            )
        if scope not in client.scopes:
            raise HTTPException(403, f"this API key lacks the {scope} scope")
        return client

    return dependency


AlertServiceDep = Annotated[AlertService, Depends(get_alert_service)]
WriterClient = Annotated[Client, Depends(require_scope("alerts:write"))]
ReaderClient = Annotated[Client, Depends(require_scope("alerts:read"))]
