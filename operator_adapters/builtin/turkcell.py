"""Turkcell: JSON for its cell broadcast centre, naming the exact cells to broadcast on.

A stub of the real integration: Turkcell's centre targets by cell, so the
payload carries the PLMN and every cell global id the geofence found for
Turkcell, the SMS text and its languages, the expiry, and the alert version
(an UPDATE names the version it replaces, a CANCEL the last version it withdraws).
"""

from __future__ import annotations

from typing import Literal

from operator_adapters.base import MessageSummary, RenderedMessage
from operator_adapters.builtin.rendering import FlatJsonFormat, json_message
from operator_adapters.builtin.signed_http import SignedHttpAdapter
from schemas.events import AlertRetracted, AlertUpdated, DispatchRequested, LinkTestRequested
from schemas.webhooks import (
    TURKCELL_FORMAT,
    TurkcellBroadcast,
    TurkcellCancel,
    TurkcellPlmn,
    TurkcellTest,
)

FORMAT = FlatJsonFormat(
    format_key="format",
    format_value=TURKCELL_FORMAT,
    kind_key="message_type",
    kinds={
        "ALERT": "alert.dispatch",
        "UPDATE": "alert.update",
        "CANCEL": "alert.retraction",
        "TEST": "link.test",
    },
    id_key="alert_id",
    version_key="alert_version",
)


class TurkcellAdapter(SignedHttpAdapter):
    def render_dispatch(self, event: DispatchRequested) -> RenderedMessage:
        return json_message(_broadcast(event, "ALERT", None))

    def render_update(self, event: AlertUpdated) -> RenderedMessage:
        return json_message(_broadcast(event, "UPDATE", event.previous_version))

    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        return json_message(
            TurkcellCancel(
                alert_id=event.alert_id,
                alert_version=event.alert_version,
                cancels_up_to_version=event.alert_version - 1,
                reason=event.reason,
                sent_at=event.occurred_at,
            )
        )

    def render_link_test(self, event: LinkTestRequested) -> RenderedMessage:
        return json_message(TurkcellTest(test_id=event.event_id, sent_at=event.occurred_at))

    @classmethod
    def describe(cls, body: bytes, content_type: str) -> MessageSummary | None:
        return FORMAT.describe(body, content_type)


def _broadcast(
    event: DispatchRequested | AlertUpdated,
    kind: Literal["ALERT", "UPDATE"],
    replaces: int | None,
) -> TurkcellBroadcast:
    targeting = event.targeting
    cells = list(targeting.cell_ids) if targeting else []
    return TurkcellBroadcast(
        message_type=kind,
        alert_id=event.alert_id,
        alert_version=event.alert_version,
        replaces_version=replaces,
        sent_at=event.occurred_at,
        expires_at=event.expires_at,
        sms_text=event.content.sms_text,
        languages=event.content.languages,
        photo_url=event.content.photo_url,
        plmn=TurkcellPlmn(mcc=targeting.mcc, mnc=targeting.mnc) if targeting else None,
        cells=cells,
        cell_count=len(cells),
    )
