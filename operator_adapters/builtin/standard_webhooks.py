"""Generic adapter: a JSON body signed as the Standard Webhooks specification says."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from operator_adapters.base import (
    DeliveryReceipt,
    OperatorAdapter,
    PermanentDeliveryError,
    RenderedMessage,
    RetriableDeliveryError,
)
from schemas.events import AlertRetracted, DispatchRequested
from schemas.webhooks import (
    AlertWebhook,
    AlertWebhookData,
    RetractionWebhook,
    RetractionWebhookData,
    WebhookArea,
)
from services.webhook_signing import decode_secret, signed_headers

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class StandardWebhooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_url: str = Field(pattern=r"^https?://")
    signing_secrets: list[str] = Field(min_length=1, max_length=2)
    timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("signing_secrets")
    @classmethod
    def _valid_secrets(cls, value: list[str]) -> list[str]:
        for secret in value:
            decode_secret(secret)
        return value


class StandardWebhooksAdapter(OperatorAdapter):
    config_model = StandardWebhooksConfig
    config: StandardWebhooksConfig

    def render_dispatch(self, event: DispatchRequested) -> RenderedMessage:
        payload = AlertWebhook(
            timestamp=datetime.now(UTC),
            data=AlertWebhookData(
                alert_id=event.alert_id,
                alert_version=event.alert_version,
                sms_text=event.content.sms_text,
                languages=event.content.languages,
                photo_url=event.content.photo_url,
                area=WebhookArea(
                    polygon=event.area.polygon,
                    area_km2=event.area.area_km2,
                    district_codes=[d.code for d in event.area.districts],
                    cell_ids=event.targeting.cell_ids if event.targeting else [],
                ),
            ),
        )
        return RenderedMessage("application/json", payload.model_dump_json().encode())

    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        payload = RetractionWebhook(
            timestamp=datetime.now(UTC),
            data=RetractionWebhookData(
                alert_id=event.alert_id,
                alert_version=event.alert_version,
                references_event_id=None,
                reason=event.reason,
            ),
        )
        return RenderedMessage("application/json", payload.model_dump_json().encode())

    async def deliver(self, webhook_id: str, message: RenderedMessage) -> DeliveryReceipt:
        headers = signed_headers(self.config.signing_secrets, webhook_id, message.body)
        headers["content-type"] = message.content_type
        try:
            response = await self.http.post(
                self.config.endpoint_url,
                content=message.body,
                headers=headers,
                timeout=self.config.timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise RetriableDeliveryError(f"timeout: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise RetriableDeliveryError(f"transport: {type(exc).__name__}") from exc
        if response.is_success:
            return DeliveryReceipt(status_code=response.status_code)
        if response.status_code in RETRIABLE_STATUS:
            raise RetriableDeliveryError(
                f"http {response.status_code}",
                response.status_code,
                _retry_after(response.headers.get("retry-after")),
            )
        raise PermanentDeliveryError(f"http {response.status_code}", response.status_code)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
