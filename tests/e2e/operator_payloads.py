"""Read any operator's payload (generic JSON, Turkcell JSON, CAP XML, compact JSON)
into one plain form, so end-to-end tests can check content whatever the format.

Written independently of the adapters (it parses the wire formats directly), so a
rendering bug cannot hide behind a shared parser.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from standardwebhooks import Webhook

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


def verified_body(secret: str, message: dict[str, Any]) -> str:
    """The body, after the standardwebhooks package accepted its signature."""
    Webhook(secret).verify(message["body"], message["headers"], json_parse=False)
    body: str = message["body"]
    return body


def normalise(body: str) -> dict[str, Any]:
    """alert_id, alert_version, sms_text, district_codes, cell_ids, has_area, reason."""
    if body.lstrip().startswith("<"):
        return _cap(ET.fromstring(body))
    payload = json.loads(body)
    if "data" in payload:
        data = payload["data"]
        area = data.get("area", {})
        return {
            "alert_id": data["alert_id"],
            "alert_version": data["alert_version"],
            "sms_text": data.get("sms_text"),
            "district_codes": area.get("district_codes", []),
            "cell_ids": area.get("cell_ids", []),
            "has_area": bool(area.get("polygon")),
            "reason": data.get("reason"),
        }
    if payload.get("format") == "turkcell-cb/1":
        return {
            "alert_id": payload["alert_id"],
            "alert_version": payload["alert_version"],
            "sms_text": payload.get("sms_text"),
            "district_codes": [],
            "cell_ids": payload.get("cells", []),
            "has_area": bool(payload.get("cells")),
            "reason": payload.get("reason"),
        }
    assert payload["f"] == "ttcb1", payload
    return {
        "alert_id": payload["id"],
        "alert_version": payload["v"],
        "sms_text": payload.get("txt"),
        "district_codes": [],
        "cell_ids": [],
        "has_area": bool(payload.get("g")),
        "reason": payload.get("why"),
    }


def _cap(root: ET.Element) -> dict[str, Any]:
    identifier = root.findtext(f"{CAP}identifier") or ""
    alert_part, version = identifier.removeprefix("KA-").rsplit("-v", 1)
    note = root.findtext(f"{CAP}note") or ""
    return {
        "alert_id": root.findtext(f"{CAP}incidents"),
        "alert_version": int(version),
        "identifier_alert_id": alert_part,
        "sms_text": root.findtext(f"{CAP}info/{CAP}description"),
        "district_codes": [v.text for v in root.iterfind(f".//{CAP}geocode/{CAP}value")],
        "cell_ids": [],
        "has_area": root.find(f".//{CAP}polygon") is not None,
        "reason": note.rsplit(": ", 1)[-1] if note else None,
    }
