"""Vodafone: OASIS CAP 1.2 XML, the format public-warning gateways take.

A stub of the real integration. Each alert version is one CAP message with its
own ``identifier``; an update (msgType ``Update``) and a retraction (``Cancel``)
name the message they supersede in ``references`` (``sender,identifier,sent``)
and every message of an alert shares ``incidents`` (the alert id), so a gateway
can collate them even where ``references`` cannot be given (an event produced
before ``previous_occurred_at`` existed). Times follow CAP 1.2 §3.3.2: whole
seconds and an explicit offset, UTC written ``-00:00``. The area is the
broadcast polygon (``lat,lon`` pairs, closed rings) plus the district codes.
"""

from __future__ import annotations

import mimetypes
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from operator_adapters.base import MessageSummary, MessageType, RenderedMessage
from operator_adapters.builtin.rendering import exterior_rings
from operator_adapters.builtin.signed_http import SignedHttpAdapter, SignedHttpConfig
from schemas.events import AlertRetracted, AlertUpdated, DispatchRequested, LinkTestRequested

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_CONTENT_TYPE = "application/xml; charset=utf-8"
#: CAP forbids white space, commas and the XML-restricted ``<`` and ``&`` in ids.
CAP_ID = r"^[^\s,<&]+$"
GEOCODE_DISTRICT = "TR_ADM2"
IDENTIFIER = re.compile(r"^KA-(?P<alert>[0-9a-f-]{36})-v(?P<version>\d+)$")
TEST_IDENTIFIER = re.compile(r"^KA-TEST-(?P<test>[0-9a-f-]{36})$")
HEADLINE_MAX = 160
MESSAGE_TYPES: dict[str, MessageType] = {
    "Alert": "alert.dispatch",
    "Update": "alert.update",
    "Cancel": "alert.retraction",
}
ET.register_namespace("", CAP_NS)  # the default namespace, as CAP documents are written


class VodafoneConfig(SignedHttpConfig):
    """CAP options: who the messages say they come from, and how they classify the event."""

    sender: str = Field(default="kayip-alarm", min_length=1, max_length=200, pattern=CAP_ID)
    sender_name: str = Field(default="Kayıp Alarmı", min_length=1, max_length=200)
    category: Literal["Rescue", "Safety"] = "Rescue"
    event: str = Field(default="Kayıp kişi", min_length=1, max_length=200)
    severity: Literal["Extreme", "Severe", "Moderate", "Minor"] = "Severe"
    certainty: Literal["Observed", "Likely", "Possible"] = "Likely"


class VodafoneAdapter(SignedHttpAdapter):
    config_model = VodafoneConfig
    config: VodafoneConfig

    def render_dispatch(self, event: DispatchRequested) -> RenderedMessage:
        alert = self._alert(_identifier(event.alert_id, event.alert_version), event, "Alert")
        _incidents(alert, event.alert_id)
        self._info(alert, event)
        return _message(alert)

    def render_update(self, event: AlertUpdated) -> RenderedMessage:
        alert = self._alert(_identifier(event.alert_id, event.alert_version), event, "Update")
        self._references(alert, event.alert_id, event.previous_version, event.previous_occurred_at)
        _incidents(alert, event.alert_id)
        self._info(alert, event)
        return _message(alert)

    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        alert = self._alert(_identifier(event.alert_id, event.alert_version), event, "Cancel")
        _sub(alert, "note", f"Alert withdrawn: {event.reason}")
        self._references(alert, event.alert_id, event.alert_version - 1, event.previous_occurred_at)
        _incidents(alert, event.alert_id)
        return _message(alert)

    def render_link_test(self, event: LinkTestRequested) -> RenderedMessage:
        alert = self._alert(f"KA-TEST-{event.event_id}", event, "Alert", status="Test")
        _sub(alert, "note", "Link test: acknowledge it, never broadcast it.")
        return _message(alert)

    @classmethod
    def describe(cls, body: bytes, content_type: str) -> MessageSummary | None:
        if "xml" not in content_type:
            return None
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return None
        if root.tag != f"{{{CAP_NS}}}alert":
            return None
        identifier = root.findtext(f"{{{CAP_NS}}}identifier") or ""
        if root.findtext(f"{{{CAP_NS}}}status") == "Test" and TEST_IDENTIFIER.match(identifier):
            return MessageSummary(type="link.test", alert_id=None, alert_version=None)
        found = IDENTIFIER.match(identifier)
        msg_type = MESSAGE_TYPES.get(root.findtext(f"{{{CAP_NS}}}msgType") or "")
        if found is None or msg_type is None:
            return None
        return MessageSummary(
            type=msg_type,
            alert_id=found["alert"],
            alert_version=int(found["version"]),
        )

    # -- CAP blocks, in the order the schema's sequences require -----------------

    def _alert(
        self,
        identifier: str,
        event: DispatchRequested | AlertUpdated | AlertRetracted | LinkTestRequested,
        msg_type: str,
        status: str = "Actual",
    ) -> ET.Element:
        alert = ET.Element(f"{{{CAP_NS}}}alert")
        _sub(alert, "identifier", identifier)
        _sub(alert, "sender", self.config.sender)
        _sub(alert, "sent", cap_time(event.occurred_at))
        _sub(alert, "status", status)
        _sub(alert, "msgType", msg_type)
        _sub(alert, "scope", "Public")
        return alert

    def _references(
        self, alert: ET.Element, alert_id: UUID, version: int, sent: datetime | None
    ) -> None:
        if sent is None or version < 1:
            return
        reference = f"{self.config.sender},{_identifier(alert_id, version)},{cap_time(sent)}"
        _sub(alert, "references", reference)

    def _info(self, alert: ET.Element, event: DispatchRequested | AlertUpdated) -> None:
        config, content = self.config, event.content
        info = _sub(alert, "info")
        _sub(info, "language", "tr-TR")
        _sub(info, "category", config.category)
        _sub(info, "event", config.event)
        _sub(info, "responseType", "Monitor")
        _sub(info, "urgency", "Immediate")
        _sub(info, "severity", config.severity)
        _sub(info, "certainty", config.certainty)
        if event.expires_at is not None:
            _sub(info, "expires", cap_time(event.expires_at))
        _sub(info, "senderName", config.sender_name)
        _sub(info, "headline", _headline(content.sms_text))
        _sub(info, "description", content.sms_text)
        if content.photo_url:
            resource = _sub(info, "resource")
            _sub(resource, "resourceDesc", "Fotoğraf")
            mime, _ = mimetypes.guess_type(content.photo_url)
            _sub(resource, "mimeType", mime or "image/jpeg")
            _sub(resource, "uri", content.photo_url)
        area = _sub(info, "area")
        names = [d.name for d in event.area.districts]
        _sub(area, "areaDesc", ", ".join(names) if names else "Yayın alanı")
        for ring in exterior_rings(event.area.polygon):
            _sub(area, "polygon", cap_polygon(ring))
        for district in event.area.districts:
            geocode = _sub(area, "geocode")
            _sub(geocode, "valueName", GEOCODE_DISTRICT)
            _sub(geocode, "value", district.code)


def cap_time(moment: datetime) -> str:
    """CAP dateTime: whole seconds, explicit offset, UTC as ``-00:00`` (never ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def cap_polygon(ring: Sequence[tuple[float, float]]) -> str:
    """A closed ring of (lon, lat) positions as CAP's ``lat,lon lat,lon ...``."""
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in ring)


def _identifier(alert_id: UUID, version: int) -> str:
    return f"KA-{alert_id}-v{version}"


def _incidents(alert: ET.Element, alert_id: UUID) -> None:
    _sub(alert, "incidents", str(alert_id))


def _headline(sms_text: str) -> str:
    first = sms_text.split(". ", 1)[0].strip()
    return first if len(first) <= HEADLINE_MAX else first[: HEADLINE_MAX - 1] + "…"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _message(alert: ET.Element) -> RenderedMessage:
    body = ET.tostring(alert, encoding="utf-8", xml_declaration=True)
    return RenderedMessage(CAP_CONTENT_TYPE, body)
