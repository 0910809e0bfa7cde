"""Rendering helpers the built-in adapters share: JSON bodies, polygon rings, read-back.

Every built-in payload is a pure function of the event (times come from the
event, never from the clock), so a message rendered again after a restart is
byte for byte the one the operator may already have: same webhook-id, same body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from operator_adapters.base import MessageSummary, MessageType, RenderedMessage

JSON = "application/json"

Ring = list[tuple[float, float]]  # (lon, lat) positions, first == last


def json_message(payload: BaseModel, *, exclude_none: bool = False) -> RenderedMessage:
    return RenderedMessage(JSON, payload.model_dump_json(exclude_none=exclude_none).encode())


def exterior_rings(geometry: dict[str, object]) -> list[Ring]:
    """The outer ring of each part of a GeoJSON Polygon or MultiPolygon, closed.

    Holes are left out: a broadcast area is an outline (the geofence never makes
    holes in it, and an operator broadcasting into a hole does no harm).
    """
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if not isinstance(coordinates, list | tuple):
        raise ValueError("the broadcast polygon has no coordinates")
    parts: Sequence[Any]
    if kind == "Polygon":
        parts = [coordinates]
    elif kind == "MultiPolygon":
        parts = coordinates
    else:
        raise ValueError(f"the broadcast area must be a Polygon or MultiPolygon, not {kind}")
    rings: list[Ring] = []
    for part in parts:
        ring = [(float(p[0]), float(p[1])) for p in part[0]]
        if ring and ring[0] != ring[-1]:
            ring.append(ring[0])
        rings.append(ring)
    return rings


def describe_json(
    body: bytes, content_type: str, read: Callable[[dict[str, Any]], MessageSummary | None]
) -> MessageSummary | None:
    """Parse a JSON body and let ``read`` recognise it; None for anything else."""
    if "json" not in content_type:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    try:
        return read(payload)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class FlatJsonFormat:
    """A JSON format that names itself in one key and keeps the ids at the top level."""

    format_key: str
    format_value: str
    kind_key: str
    kinds: Mapping[str, MessageType]
    id_key: str
    version_key: str

    def describe(self, body: bytes, content_type: str) -> MessageSummary | None:
        return describe_json(body, content_type, self._summary)

    def _summary(self, payload: dict[str, Any]) -> MessageSummary | None:
        if payload.get(self.format_key) != self.format_value:
            return None
        kind = self.kinds[payload[self.kind_key]]
        if kind == "link.test":  # a test is about no alert
            return MessageSummary(type=kind, alert_id=None, alert_version=None)
        return MessageSummary(
            type=kind,
            alert_id=str(payload[self.id_key]),
            alert_version=int(payload[self.version_key]),
        )
