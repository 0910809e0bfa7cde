"""Operator simulator: stands in for the operators' endpoints in development.

It verifies each webhook's Standard Webhooks signature with that operator's
secret and keeps what arrived in memory, so a newcomer can watch an alert and
its retraction reach every operator. It refuses to exist in production
(see Settings) and holds nothing across restarts.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from alert_api.errors import install_error_handlers
from services.webhook_signing import SignatureError, verify

MAX_KEPT = 5000


@dataclass
class ReceivedWebhook:
    webhook_id: str
    type: str
    alert_id: str | None
    alert_version: int | None
    received_at: datetime
    received_monotonic: float
    headers: dict[str, str]
    body: str
    duplicate: bool


@dataclass
class SimulatedOperator:
    secrets: list[str]
    received: deque[ReceivedWebhook] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))
    seen_ids: set[str] = field(default_factory=set)
    rejected: int = 0


def create_simulator(secrets: dict[str, list[str]]) -> FastAPI:
    app = FastAPI(title="kayip-alarm operator simulator", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    operators = {name: SimulatedOperator(secrets=s) for name, s in secrets.items()}
    app.state.operators = operators

    def lookup(name: str) -> SimulatedOperator:
        operator = operators.get(name)
        if operator is None:
            raise HTTPException(404, f"no simulated operator named {name}")
        return operator

    @app.post("/operators/{name}/webhooks")
    async def receive(name: str, request: Request) -> dict[str, Any]:
        operator = lookup(name)
        body = await request.body()
        try:
            webhook_id = verify(operator.secrets, dict(request.headers), body)
        except SignatureError as exc:
            operator.rejected += 1
            raise HTTPException(401, f"signature refused: {exc}") from exc
        try:
            payload = json.loads(body)
            data = payload.get("data", {})
        except (ValueError, AttributeError):
            raise HTTPException(400, "body is not JSON") from None
        duplicate = webhook_id in operator.seen_ids
        operator.seen_ids.add(webhook_id)
        operator.received.append(
            ReceivedWebhook(
                webhook_id=webhook_id,
                type=str(payload.get("type")),
                alert_id=data.get("alert_id"),
                alert_version=data.get("alert_version"),
                received_at=datetime.now(UTC),
                received_monotonic=time.monotonic(),
                headers={k: v for k, v in request.headers.items() if k.startswith("webhook-")},
                body=body.decode(),
                duplicate=duplicate,
            )
        )
        return {"accepted": True, "duplicate": duplicate}

    @app.get("/operators")
    async def summary() -> dict[str, Any]:
        return {
            name: {
                "received": len(op.received),
                "rejected": op.rejected,
                "duplicates": sum(1 for r in op.received if r.duplicate),
            }
            for name, op in operators.items()
        }

    @app.get("/operators/{name}/messages")
    async def messages(
        name: str, alert_id: str | None = None, raw: bool = False
    ) -> list[dict[str, Any]]:
        operator = lookup(name)
        out = []
        for item in operator.received:
            if alert_id is not None and item.alert_id != alert_id:
                continue
            entry: dict[str, Any] = {
                "webhook_id": item.webhook_id,
                "type": item.type,
                "alert_id": item.alert_id,
                "alert_version": item.alert_version,
                "received_at": item.received_at.isoformat(),
                "duplicate": item.duplicate,
                "signature_verified": True,
            }
            if raw:
                entry["headers"] = item.headers
                entry["body"] = item.body
            out.append(entry)
        return out

    return app
