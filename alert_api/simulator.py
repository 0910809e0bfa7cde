"""Operator simulator: stands in for the operators' endpoints in development.

It verifies each webhook's Standard Webhooks signature with that operator's
secret, recognises the payload whatever the adapter's format (generic JSON,
Turkcell's JSON, Vodafone's CAP XML, Türk Telekom's compact JSON: each adapter
can describe its own messages), keeps what arrived in memory, and, like a real
operator, reports back: signed receipts to the API (``accepted`` then
``delivered`` for an alert, ``retracted`` for a retraction, ``acknowledged``
for a link test), sent in background tasks so the webhook answer never waits.
It refuses to exist in production (see Settings) and holds nothing across
restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request

from alert_api.errors import install_error_handlers
from operator_adapters.base import MessageSummary, OperatorAdapter
from operator_adapters.registry import discover
from schemas.receipts import ReceiptReport, ReceiptStatus
from services.settings import dev_receipt_key
from services.webhook_signing import SignatureError, signed_headers, verify

MAX_KEPT = 5000
log = logging.getLogger(__name__)


@dataclass
class ReceivedWebhook:
    webhook_id: str
    type: str
    alert_id: str | None
    alert_version: int | None
    content_type: str
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


class ReceiptSender:
    """Posts a simulated operator's receipts to the API, signed and with its receipt key.

    A receipt that fails to arrive is logged (ids only) and dropped: the simulator
    is a demo, and a real operator's retry policy is its own business.
    """

    def __init__(self, api_base_url: str, delivered_after_s: float = 0.1) -> None:
        self._base = api_base_url.rstrip("/")
        self._delivered_after_s = delivered_after_s
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(
        self, operator: str, secrets: Sequence[str], webhook_id: str, summary: MessageSummary
    ) -> None:
        task = asyncio.create_task(self._report(operator, list(secrets), webhook_id, summary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _report(
        self, operator: str, secrets: list[str], webhook_id: str, summary: MessageSummary
    ) -> None:
        if summary.type == "link.test":
            await self._post(operator, secrets, webhook_id, ReceiptStatus.acknowledged)
        elif summary.type == "alert.retraction":
            await self._post(operator, secrets, webhook_id, ReceiptStatus.retracted)
        else:
            await self._post(operator, secrets, webhook_id, ReceiptStatus.accepted)
            await asyncio.sleep(self._delivered_after_s)
            await self._post(
                operator,
                secrets,
                webhook_id,
                ReceiptStatus.delivered,
                recipients=plausible_recipients(webhook_id),
            )

    async def _post(
        self,
        operator: str,
        secrets: list[str],
        webhook_id: str,
        status: ReceiptStatus,
        recipients: int | None = None,
    ) -> None:
        report = ReceiptReport(
            webhook_id=webhook_id,
            status=status,
            recipients=recipients,
            reported_at=datetime.now(UTC),
        )
        body = report.model_dump_json(exclude_none=True).encode()
        headers = signed_headers(secrets, f"rcpt_{uuid.uuid4().hex}", body)
        headers["content-type"] = "application/json"
        headers["authorization"] = f"Bearer {dev_receipt_key(operator)}"
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        context = {"operator": operator, "webhook_id": webhook_id, "status": status.value}
        try:
            response = await self._http.post(
                f"{self._base}/v1/operators/{operator}/receipts", content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning(
                "simulator receipt not sent", extra={**context, "error": type(exc).__name__}
            )
            return
        if not response.is_success:
            log.warning(
                "simulator receipt refused", extra={**context, "status_code": response.status_code}
            )


def plausible_recipients(webhook_id: str) -> int:
    """A stable, made-up head count between 5,000 and 250,000 for a broadcast."""
    digest = int.from_bytes(hashlib.sha256(webhook_id.encode()).digest()[:4], "big")
    return 5_000 + digest % 245_000


def recognise(
    adapters: Sequence[type[OperatorAdapter]], body: bytes, content_type: str
) -> MessageSummary | None:
    """What the message is about, by the first adapter that knows the format.

    A missing content type is guessed from the first byte, as lenient receivers do.
    """
    if not content_type:
        content_type = "application/xml" if body.lstrip().startswith(b"<") else "application/json"
    for adapter in adapters:
        summary = adapter.describe(body, content_type)
        if summary is not None:
            return summary
    return None


def create_simulator(
    secrets: dict[str, list[str]], receipts: ReceiptSender | None = None
) -> FastAPI:
    """Args:
    secrets: per operator, the secrets its webhooks are signed with.
    receipts: where receipts go; None sends none (Settings.simulator_send_receipts).
    """
    app = FastAPI(title="kayip-alarm operator simulator", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    operators = {name: SimulatedOperator(secrets=s) for name, s in secrets.items()}
    adapters = list(discover().values())
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
        content_type = request.headers.get("content-type", "")
        summary = recognise(adapters, body, content_type)
        if summary is None:
            raise HTTPException(400, "the body is in no format an installed adapter renders")
        duplicate = webhook_id in operator.seen_ids
        operator.seen_ids.add(webhook_id)
        operator.received.append(
            ReceivedWebhook(
                webhook_id=webhook_id,
                type=summary.type,
                alert_id=summary.alert_id,
                alert_version=summary.alert_version,
                content_type=content_type,
                received_at=datetime.now(UTC),
                received_monotonic=time.monotonic(),
                headers={k: v for k, v in request.headers.items() if k.startswith("webhook-")},
                body=body.decode(),
                duplicate=duplicate,
            )
        )
        if receipts is not None and not duplicate:
            receipts.schedule(name, operator.secrets, webhook_id, summary)
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
                "content_type": item.content_type,
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
