"""The FastAPI application. Its lifespan owns the service context unless given one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alert_api.errors import install_error_handlers
from alert_api.routes import alerts, geofence, health, links, operators
from alert_api.simulator import ReceiptSender, create_simulator
from services.context import ServiceContext
from services.settings import Settings

DESCRIPTION = """
Turns a consented missing-person report into a geofenced alert for every GSM
operator, and withdraws it from every operator when the case is resolved.
Authenticate with `Authorization: Bearer <API key>`. Errors are
`application/problem+json` (RFC 9457).
"""


def create_app(settings: Settings, context: ServiceContext | None = None) -> FastAPI:
    """Build the app. With ``context`` given, the caller owns and closes it (``serve``)."""
    receipts = (
        ReceiptSender(api_base_url(settings))
        if settings.simulator_enabled and settings.simulator_send_receipts
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = context is None
        app.state.context = context or ServiceContext.build(settings)
        try:
            yield
        finally:
            if receipts is not None:
                await receipts.aclose()
            if owned:
                await app.state.context.close()

    app = FastAPI(title="kayip-alarm", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    if context is not None:
        app.state.context = context
    install_error_handlers(app)
    app.include_router(alerts.router)
    app.include_router(alerts.statistics_router)
    app.include_router(geofence.router)
    app.include_router(health.router)
    app.include_router(links.router)
    app.include_router(operators.router)
    if settings.simulator_enabled:
        app.mount("/simulator", create_simulator(simulator_secrets(settings), receipts))
    return app


def api_base_url(settings: Settings) -> str:
    """Where this API is reached from the same host (the simulator posts receipts there)."""
    return settings.public_base_url or f"http://{settings.host}:{settings.port}"


def simulator_secrets(settings: Settings) -> dict[str, list[str]]:
    return {name: op.secrets() for name, op in settings.enabled_operators.items()}
