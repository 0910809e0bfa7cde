"""An alert travels end to end on real parts and is withdrawn from every operator."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from services.runtime import Runtime
from tests.conftest import auth
from tests.e2e.operator_payloads import normalise, verified_body
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio
OPERATORS = ("turkcell", "turktelekom", "vodafone")


async def _messages(http: httpx.AsyncClient, operator: str, alert_id: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"/simulator/operators/{operator}/messages", params={"alert_id": alert_id, "raw": "true"}
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


async def _wait_for(
    http: httpx.AsyncClient, alert_id: str, kind: str, timeout_s: float = 10.0
) -> dict[str, dict[str, Any]]:
    """Per operator, the first message of ``kind`` for the alert; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, dict[str, Any]] = {}
        for operator in OPERATORS:
            for message in await _messages(http, operator, alert_id):
                if message["type"] == kind:
                    found.setdefault(operator, message)
        if len(found) == len(OPERATORS) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


def _verify(service: Runtime, operator: str, message: dict[str, Any]) -> dict[str, Any]:
    """The payload in a common form, whatever the operator's format, once its signature checks."""
    secret = service.settings.operators[operator].signing_secret
    assert secret is not None
    return normalise(verified_body(secret.get_secret_value(), message))


async def test_create_then_resolve_reaches_every_operator_signed(
    service: Runtime, http: httpx.AsyncClient
) -> None:
    created = await http.post("/v1/alerts", json=alert_body(), headers=auth())
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]

    dispatched = await _wait_for(http, alert_id, "alert.dispatch")
    assert sorted(dispatched) == list(OPERATORS)
    for operator, message in dispatched.items():
        payload = _verify(service, operator, message)
        assert payload["alert_id"] == alert_id
        assert payload["alert_version"] == 1
        assert "155" in payload["sms_text"]
        assert payload["has_area"], f"{operator} got no area"
        if operator == "vodafone":  # CAP: the districts are geocodes beside the polygon
            assert "TUR034035" in payload["district_codes"]
        if operator == "turkcell":  # Turkcell broadcasts on the cells it is given
            assert payload["cell_ids"], "turkcell got no cells"
            assert all(c.startswith("286-01-") for c in payload["cell_ids"])
        assert message["headers"]["webhook-id"].startswith("msg_")

    resolved = await http.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    assert resolved.status_code == 202, resolved.text
    retracted = await _wait_for(http, alert_id, "alert.retraction")
    assert sorted(retracted) == list(OPERATORS)
    for operator, message in retracted.items():
        payload = _verify(service, operator, message)
        assert payload["alert_id"] == alert_id
        assert payload["alert_version"] == 2
        assert payload["reason"] == "found_safe"
        assert message["webhook_id"] != dispatched[operator]["webhook_id"]

    # The database records every operator's dispatch and retraction as delivered.
    deadline = time.monotonic() + 5
    while True:
        state = (await http.get(f"/v1/alerts/{alert_id}", headers=auth())).json()
        statuses = {(d["operator"], d["kind"]): d["status"] for d in state["deliveries"]}
        if set(statuses.values()) == {"delivered"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert statuses == {
        (op, kind): "delivered" for op in OPERATORS for kind in ("dispatch", "retraction")
    }
    assert state["status"] == "resolved"


async def test_a_tampered_webhook_is_refused_by_the_simulator(
    service: Runtime, http: httpx.AsyncClient
) -> None:
    created = await http.post("/v1/alerts", json=alert_body(), headers=auth())
    message = (await _wait_for(http, created.json()["id"], "alert.dispatch"))["turkcell"]
    tampered = json.loads(message["body"])
    tampered["sms_text"] = "forged"
    response = await http.post(
        "/simulator/operators/turkcell/webhooks",
        content=json.dumps(tampered),
        headers=message["headers"],
    )
    assert response.status_code == 401
    replay = await http.post(
        "/simulator/operators/turkcell/webhooks",
        content=message["body"],
        headers=message["headers"],
    )
    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True


async def test_every_alert_of_a_concurrent_burst_reaches_every_operator(
    service: Runtime, http: httpx.AsyncClient
) -> None:
    responses = await asyncio.gather(
        *(
            http.post("/v1/alerts", json=alert_body(case_reference=f"B-{i}"), headers=auth())
            for i in range(32)
        )
    )
    assert [r.status_code for r in responses] == [201] * 32
    ids = {r.json()["id"] for r in responses}
    deadline = time.monotonic() + 15
    while True:
        seen = {
            op: {
                m["alert_id"]
                for m in (await http.get(f"/simulator/operators/{op}/messages")).json()
            }
            for op in OPERATORS
        }
        if all(ids <= got for got in seen.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for operator in OPERATORS:
        assert ids <= seen[operator], f"{operator} missed {len(ids - seen[operator])} alerts"


async def test_logs_carry_ids_but_no_personal_data(
    service: Runtime, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from services.logging_setup import JsonFormatter

    caplog.set_level(logging.DEBUG)
    body = alert_body(
        **{
            "subject.name": "Zeynep Kayıpoğlu",
            "subject.description": "Sarı yağmurluklu, pembe botlu kız çocuğu",
            "subject.photo_url": "https://example.org/photos/zeynep.jpg",
            "consent.given_by.name": "Hatice Kayıpoğlu",
        }
    )
    alert_id = (await http.post("/v1/alerts", json=body, headers=auth())).json()["id"]
    assert len(await _wait_for(http, alert_id, "alert.dispatch")) == 3
    await http.post(f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth())
    assert len(await _wait_for(http, alert_id, "alert.retraction")) == 3
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any(alert_id in line for line in lines), "logs should name the alert id"
    for secret in ("Zeynep", "Kayıpoğlu", "Hatice", "Sarı yağmurluklu", "zeynep.jpg"):
        assert not [line for line in lines if secret in line], secret
