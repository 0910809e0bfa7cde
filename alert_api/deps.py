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


# The dependencies are ``async def`` although they never await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a thread hop per dependency per request. They
# read the context straight from the request instead of depending on a shared
# dependency for it: FastAPI solves every node of the dependency graph per request.


def _context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


async def get_context(request: Request) -> ServiceContext:
    return _context(request)


async def get_alert_service(request: Request) -> AlertService:
    return _context(request).alerts


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, Client]]:
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Client:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401, "a bearer API key is required", headers={"WWW-Authenticate": "Bearer"}
            )
        client = _context(request).auth.authenticate(credentials.credentials)
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
