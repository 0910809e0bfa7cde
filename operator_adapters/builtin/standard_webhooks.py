"""Generic adapter: a JSON body signed as the Standard Webhooks specification says."""

from __future__ import annotations

from typing import Any, get_args

from operator_adapters.base import MessageSummary, MessageType, RenderedMessage
from operator_adapters.builtin.rendering import describe_json, json_message
from operator_adapters.builtin.signed_http import SignedHttpAdapter, SignedHttpConfig
from schemas.events import AlertRetracted, AlertUpdated, DispatchRequested, LinkTestRequested
from schemas.webhooks import (
    AlertWebhook,
    AlertWebhookData,
    LinkTestWebhook,
    LinkTestWebhookData,
    RetractionWebhook,
    RetractionWebhookData,
    UpdateWebhook,
    UpdateWebhookData,
    WebhookArea,
)

#: Kept for plugins and settings that name it; the generic adapter has no options of its own.
StandardWebhooksConfig = SignedHttpConfig
MESSAGE_TYPES: frozenset[str] = frozenset(get_args(MessageType))


class StandardWebhooksAdapter(SignedHttpAdapter):
    def render_dispatch(self, event: DispatchRequested) -> RenderedMessage:
        payload = AlertWebhook(timestamp=event.occurred_at, data=_alert_data(event))
        return json_message(payload)

    def render_update(self, event: AlertUpdated) -> RenderedMessage:
        data = UpdateWebhookData(
            **_alert_data(event).model_dump(), previous_version=event.previous_version
        )
        payload = UpdateWebhook(timestamp=event.occurred_at, data=data)
        return json_message(payload)

    def render_link_test(self, event: LinkTestRequested) -> RenderedMessage:
        payload = LinkTestWebhook(
            timestamp=event.occurred_at,
            data=LinkTestWebhookData(test_id=event.event_id, operator=event.operator),
        )
        return json_message(payload)

    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        payload = RetractionWebhook(
            timestamp=event.occurred_at,
            data=RetractionWebhookData(
                alert_id=event.alert_id,
                alert_version=event.alert_version,
                references_event_id=None,
                reason=event.reason,
            ),
        )
        return json_message(payload)

    @classmethod
    def describe(cls, body: bytes, content_type: str) -> MessageSummary | None:
        return describe_json(body, content_type, _summary)


def _alert_data(event: DispatchRequested | AlertUpdated) -> AlertWebhookData:
    return AlertWebhookData(
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
    )


def _summary(payload: dict[str, Any]) -> MessageSummary | None:
    data = payload.get("data")
    if payload.get("type") not in MESSAGE_TYPES or not isinstance(data, dict):
        return None
    alert_id, version = data.get("alert_id"), data.get("alert_version")
    return MessageSummary(
        type=payload["type"],
        alert_id=alert_id if isinstance(alert_id, str) else None,
        alert_version=version if isinstance(version, int) else None,
    )
