"""What each operator receives: Turkcell's cell-list JSON, Vodafone's CAP 1.2 XML,
Türk Telekom's compact polygon JSON, and the generic Standard Webhooks JSON."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import Polygon, shape

from operator_adapters.base import MessageSummary, OperatorAdapter, RenderedMessage
from operator_adapters.registry import AdapterConfigError, build_adapter, discover
from services.settings import DEV_SIGNING_SECRETS, OperatorConfig
from tests.unit.adapters import events

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
NS = f"{{{CAP}}}"
# Element order of the CAP 1.2 schema's sequences (CAP-v1.2.xsd).
ALERT_ORDER = [
    "identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction",
    "addresses", "code", "note", "references", "incidents", "info",
]  # fmt: skip
INFO_ORDER = [
    "language", "category", "event", "responseType", "urgency", "severity", "certainty",
    "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
    "description", "instruction", "web", "contact", "parameter", "resource", "area",
]  # fmt: skip
RESOURCE_ORDER = ["resourceDesc", "mimeType", "size", "uri", "derefUri", "digest"]
AREA_ORDER = ["areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"]
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
ALERT = str(events.ALERT_ID)
HTTP = httpx.AsyncClient()  # rendering never sends


def adapter(name: str, **options: object) -> OperatorAdapter:
    config = OperatorConfig(
        adapter=name,
        endpoint_url="http://127.0.0.1:9/unused",
        signing_secret=DEV_SIGNING_SECRETS["turkcell"],
        options=options,
    )
    return build_adapter("test", config, HTTP, discover())


def as_json(message: RenderedMessage) -> dict[str, Any]:
    assert message.content_type == "application/json"
    payload: dict[str, Any] = json.loads(message.body)
    return payload


# -- Turkcell ---------------------------------------------------------------------


def test_turkcell_dispatch_names_every_cell_of_its_network() -> None:
    payload = as_json(adapter("turkcell").render_dispatch(events.dispatch()))
    assert payload == {
        "format": "turkcell-cb/1",
        "message_type": "ALERT",
        "alert_id": ALERT,
        "alert_version": 1,
        "replaces_version": None,
        "sent_at": "2026-03-14T09:26:53.589793Z",
        "expires_at": "2026-03-17T09:26:53.589793Z",
        "sms_text": events.SMS,
        "languages": ["tr", "en"],
        "photo_url": "https://example.org/photos/123.jpg",
        "plmn": {"mcc": 286, "mnc": 1},
        "cells": [f"286-01-3401-{i}" for i in range(100, 105)],
        "cell_count": 5,
    }


def test_turkcell_update_and_cancel_reference_the_versions() -> None:
    turkcell = adapter("turkcell")
    update = as_json(turkcell.render_update(events.update()))
    assert (update["message_type"], update["alert_version"], update["replaces_version"]) == (
        "UPDATE",
        2,
        1,
    )
    assert update["alert_id"] == ALERT
    assert update["cells"]
    cancel = as_json(turkcell.render_retraction(events.retraction()))
    assert cancel == {
        "format": "turkcell-cb/1",
        "message_type": "CANCEL",
        "alert_id": ALERT,
        "alert_version": 3,
        "cancels_up_to_version": 2,
        "reason": "found_safe",
        "sent_at": "2026-03-14T11:26:53.589793Z",
    }


def test_turkcell_without_cells_for_it_sends_an_empty_list() -> None:
    payload = as_json(adapter("turkcell").render_dispatch(events.dispatch(targeting=None)))
    assert (payload["plmn"], payload["cells"], payload["cell_count"]) == (None, [], 0)


def test_turkcell_link_test_carries_nothing_to_broadcast() -> None:
    test = events.link_test()
    payload = as_json(adapter("turkcell").render_link_test(test))
    assert payload == {
        "format": "turkcell-cb/1",
        "message_type": "TEST",
        "test_id": str(test.event_id),
        "sent_at": "2026-03-14T09:26:53.589793Z",
        "broadcast": False,
    }


# -- Vodafone: CAP 1.2 --------------------------------------------------------------


def cap(message: RenderedMessage) -> ET.Element:
    assert message.content_type.startswith("application/xml")
    assert message.body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(message.body)
    assert root.tag == f"{NS}alert"
    return root


def children(element: ET.Element) -> list[str]:
    names = []
    for child in element:
        assert child.tag.startswith(NS), f"{child.tag} is outside the CAP namespace"
        names.append(child.tag.removeprefix(NS))
    return names


def assert_in_schema_order(element: ET.Element, order: list[str]) -> list[str]:
    names = children(element)
    positions = [order.index(n) for n in names]  # ValueError: an element CAP does not have
    assert positions == sorted(positions), f"{names} is not in the order {order}"
    return names


def find(element: ET.Element, tag: str) -> str:
    value = element.findtext(f"{NS}{tag}")
    assert value is not None, tag
    return value


def test_cap_alert_has_the_required_elements_in_schema_order() -> None:
    root = cap(adapter("vodafone").render_dispatch(events.dispatch()))
    assert assert_in_schema_order(root, ALERT_ORDER) == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "incidents", "info",
    ]  # fmt: skip
    assert find(root, "identifier") == f"KA-{ALERT}-v1"
    assert not re.search(r"[\s,<&]", find(root, "identifier"))
    assert find(root, "sender") == "kayip-alarm"
    assert find(root, "sent") == "2026-03-14T09:26:53-00:00"
    assert (find(root, "status"), find(root, "msgType"), find(root, "scope")) == (
        "Actual",
        "Alert",
        "Public",
    )
    assert find(root, "incidents") == ALERT
    [info] = root.findall(f"{NS}info")
    assert assert_in_schema_order(info, INFO_ORDER) == [
        "language", "category", "event", "responseType", "urgency", "severity", "certainty",
        "expires", "senderName", "headline", "description", "resource", "area",
    ]  # fmt: skip
    assert find(info, "category") == "Rescue"
    assert find(info, "urgency") == "Immediate"
    assert find(info, "severity") == "Severe"
    assert find(info, "certainty") == "Likely"
    assert find(info, "description") == events.SMS  # "&" survives the XML escaping
    assert len(find(info, "headline")) <= 160
    for moment in (find(root, "sent"), find(info, "expires")):
        assert CAP_TIME.match(moment), moment
        assert "Z" not in moment
        assert "." not in moment
    assert find(info, "expires") == "2026-03-17T09:26:53-00:00"
    [resource] = info.findall(f"{NS}resource")
    assert assert_in_schema_order(resource, RESOURCE_ORDER) == ["resourceDesc", "mimeType", "uri"]
    assert find(resource, "mimeType") == "image/jpeg"
    assert find(resource, "uri") == "https://example.org/photos/123.jpg"


def test_cap_area_is_a_closed_lat_lon_polygon_with_district_geocodes() -> None:
    root = cap(adapter("vodafone").render_dispatch(events.dispatch()))
    area = root.find(f"{NS}info/{NS}area")
    assert area is not None
    names = assert_in_schema_order(area, AREA_ORDER)
    assert names == ["areaDesc", "polygon", "geocode", "geocode"]
    assert find(area, "areaDesc") == "Şişli, Beşiktaş"
    pairs = [tuple(map(float, p.split(","))) for p in find(area, "polygon").split(" ")]
    assert len(pairs) >= 4
    assert pairs[0] == pairs[-1]
    assert pairs == [(lat, lon) for lon, lat in events.RING]  # lat,lon order, 6 decimals
    geocodes = [(find(g, "valueName"), find(g, "value")) for g in area.findall(f"{NS}geocode")]
    assert geocodes == [("TR_ADM2", "TUR034035"), ("TR_ADM2", "TUR034010")]


def test_cap_multipolygon_gives_one_closed_polygon_per_part() -> None:
    second = [[32.80, 39.90], [32.90, 39.90], [32.90, 39.95], [32.80, 39.90]]
    unclosed = events.RING[:-1]  # a ring that arrives open is closed for CAP
    multi = {"type": "MultiPolygon", "coordinates": [[unclosed], [second]]}
    root = cap(adapter("vodafone").render_dispatch(events.dispatch(area=events.area(multi))))
    polygons = [p.text or "" for p in root.iter(f"{NS}polygon")]
    assert len(polygons) == 2
    for polygon in polygons:
        pairs = polygon.split(" ")
        assert len(pairs) >= 4
        assert pairs[0] == pairs[-1]


def test_cap_update_and_cancel_reference_the_previous_message() -> None:
    vodafone = adapter("vodafone", sender="afad.gov.tr")
    update = cap(vodafone.render_update(events.update()))
    assert find(update, "msgType") == "Update"
    assert find(update, "identifier") == f"KA-{ALERT}-v2"
    assert find(update, "references") == f"afad.gov.tr,KA-{ALERT}-v1,2026-03-14T09:26:53-00:00"
    assert find(update, "incidents") == ALERT
    assert update.find(f"{NS}info/{NS}area/{NS}polygon") is not None

    cancel = cap(vodafone.render_retraction(events.retraction()))
    assert assert_in_schema_order(cancel, ALERT_ORDER) == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "note", "references",
        "incidents",
    ]  # fmt: skip
    assert find(cancel, "msgType") == "Cancel"
    assert find(cancel, "identifier") == f"KA-{ALERT}-v3"
    # The reference is exactly the update's own sender, identifier and sent.
    assert find(cancel, "references") == ",".join(
        [find(update, "sender"), find(update, "identifier"), find(update, "sent")]
    )
    assert find(cancel, "note").endswith("found_safe")


def test_cap_without_the_previous_time_still_names_the_alert() -> None:
    cancel = cap(
        adapter("vodafone").render_retraction(events.retraction(previous_occurred_at=None))
    )
    assert cancel.find(f"{NS}references") is None
    assert find(cancel, "incidents") == ALERT


def test_cap_link_test_is_a_test_message_without_info() -> None:
    test = events.link_test()
    root = cap(adapter("vodafone").render_link_test(test))
    assert find(root, "status") == "Test"
    assert find(root, "identifier") == f"KA-TEST-{test.event_id}"
    assert root.find(f"{NS}info") is None


def test_cap_without_a_photo_has_no_resource() -> None:
    event = events.dispatch(content=events.content(photo_url=None))
    root = cap(adapter("vodafone").render_dispatch(event))
    assert root.find(f".//{NS}resource") is None


def test_cap_options_are_validated_by_the_plugin() -> None:
    root = cap(adapter("vodafone", category="Safety").render_dispatch(events.dispatch()))
    assert root.findtext(f"{NS}info/{NS}category") == "Safety"
    with pytest.raises(AdapterConfigError, match="sender"):
        adapter("vodafone", sender="two words")
    with pytest.raises(AdapterConfigError, match="category"):
        adapter("vodafone", category="Geo")
    with pytest.raises(AdapterConfigError, match="colour"):
        adapter("vodafone", colour="red")


# -- Türk Telekom -------------------------------------------------------------------


def test_turktelekom_is_compact_and_its_polygon_still_covers_the_area() -> None:
    generic = adapter("standard_webhooks").render_dispatch(events.dispatch())
    message = adapter("turktelekom").render_dispatch(events.dispatch())
    payload = as_json(message)
    assert set(payload) == {"f", "k", "id", "v", "ts", "exp", "txt", "lang", "g", "km2", "img"}
    assert (payload["f"], payload["k"], payload["id"], payload["v"]) == ("ttcb1", "A", ALERT, 1)
    assert payload["ts"] == int(events.ISSUED.timestamp())
    assert payload["exp"] == int(events.EXPIRES.timestamp())
    assert payload["txt"] == events.SMS
    [ring] = payload["g"]
    assert ring[0] == ring[-1]
    assert len(ring) >= 4
    assert all(len(str(c).split(".")[-1]) <= 4 for pair in ring for c in pair)
    rounded = Polygon([(lon, lat) for lat, lon in ring])  # [lat, lon] pairs on the wire
    original = shape({"type": "Polygon", "coordinates": [events.RING]})
    assert rounded.is_valid
    assert rounded.covers(original)
    assert len(message.body) < len(generic.body)


def test_turktelekom_coarser_rounding_still_covers() -> None:
    payload = as_json(
        adapter("turktelekom", coordinate_decimals=3).render_dispatch(events.dispatch())
    )
    rings = [Polygon([(lon, lat) for lat, lon in ring]) for ring in payload["g"]]
    original = shape({"type": "Polygon", "coordinates": [events.RING]})
    assert shapely.union_all(rings).covers(original)
    with pytest.raises(AdapterConfigError):
        adapter("turktelekom", coordinate_decimals=1)


def test_turktelekom_update_cancel_and_test() -> None:
    turktelekom = adapter("turktelekom")
    update = as_json(turktelekom.render_update(events.update()))
    assert (update["k"], update["v"], update["pv"]) == ("U", 2, 1)
    assert as_json(turktelekom.render_retraction(events.retraction())) == {
        "f": "ttcb1",
        "k": "C",
        "id": ALERT,
        "v": 3,
        "pv": 2,
        "ts": int(events.RETRACTED.timestamp()),
        "why": "found_safe",
    }
    test = events.link_test()
    assert as_json(turktelekom.render_link_test(test)) == {
        "f": "ttcb1",
        "k": "T",
        "id": str(test.event_id),
        "ts": int(events.ISSUED.timestamp()),
    }


# -- every adapter ------------------------------------------------------------------

NAMES = ["standard_webhooks", "turkcell", "vodafone", "turktelekom"]


def all_messages(name: str) -> list[tuple[RenderedMessage, MessageSummary]]:
    a = adapter(name)
    return [
        (a.render_dispatch(events.dispatch()), MessageSummary("alert.dispatch", ALERT, 1)),
        (a.render_update(events.update()), MessageSummary("alert.update", ALERT, 2)),
        (a.render_retraction(events.retraction()), MessageSummary("alert.retraction", ALERT, 3)),
        (a.render_link_test(events.link_test()), MessageSummary("link.test", None, None)),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_each_adapter_and_only_it_recognises_its_messages(name: str) -> None:
    classes = discover()
    for message, expected in all_messages(name):
        for other, cls in classes.items():
            summary = cls.describe(message.body, message.content_type)
            if other == name:
                assert summary == expected
            else:
                assert summary is None, f"{other} claimed a {name} message"


@pytest.mark.parametrize("name", ["turkcell", "vodafone", "turktelekom"])
def test_rendering_again_gives_the_same_bytes(name: str) -> None:
    """After a restart the operator gets the very message it may already have."""
    dispatch, retraction = events.dispatch(), events.retraction()
    first, second = adapter(name), adapter(name)
    assert first.render_dispatch(dispatch).body == second.render_dispatch(dispatch).body
    assert first.render_retraction(retraction).body == second.render_retraction(retraction).body
