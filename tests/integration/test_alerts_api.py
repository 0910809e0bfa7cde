"""The REST API's contract: status codes, problem details, idempotency, nothing half-written."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.context import ServiceContext
from services.db.models import Alert, AuditEvent, ConsentRecord, Delivery, OutboxEvent
from tests.conftest import READER_KEY, WRITE_ONLY_KEY, auth
from tests.fixtures.payloads import DELETE, alert_body

pytestmark = pytest.mark.asyncio


async def _count(context: ServiceContext, model: Any) -> int:
    async with context.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _assert_problem(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert needle.lower() in body["detail"].lower(), body["detail"]


async def test_create_writes_alert_consent_audit_outbox_and_deliveries(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    response = await client.post("/v1/alerts", json=alert_body(), headers=auth())
    assert response.status_code == 201, response.text
    alert = response.json()
    assert alert["status"] == "active"
    assert alert["version"] == 1
    assert response.headers["location"] == f"/v1/alerts/{alert['id']}"
    assert "TUR034035" in {d["code"] for d in alert["area"]["districts"]}
    assert alert["area"]["broadcast"]["vertex_count"] <= 100
    assert {o["operator"] for o in alert["area"]["operators"]} == {
        "turkcell",
        "turktelekom",
        "vodafone",
    }
    assert all(o["cell_count"] > 0 for o in alert["area"]["operators"])
    assert alert["consent_channels"] == ["sms", "public_web"]
    assert "7 yaşında" in alert["sms_text"]
    assert "155" in alert["sms_text"]
    assert "Test Child" not in alert["sms_text"]
    assert sorted(d["operator"] for d in alert["deliveries"]) == [
        "turkcell",
        "turktelekom",
        "vodafone",
    ]
    assert {d["status"] for d in alert["deliveries"]} == {"pending"}
    assert await _count(context, ConsentRecord) == 1
    assert await _count(context, AuditEvent) == 1
    assert await _count(context, OutboxEvent) == 3  # one dispatch event per operator
    assert await _count(context, Delivery) == 3


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"consent": DELETE}, "consent: Field required"),
        ({"consent.channels": ["public_web", "social"]}, "does not cover the sms channel"),
        ({"consent.channels": []}, "consent.channels"),
        ({"consent.channels": ["carrier_pigeon"]}, "consent.channels"),
        ({"consent.given_by.relationship": "sibling"}, "parent or legal guardian"),
        ({"consent.given_at": "2099-01-01T00:00:00Z"}, "in the future"),
        ({"consent.given_at": "2026-01-01T00:00:00"}, "timezone"),
        ({"consent.evidence_reference": ""}, "consent.evidence_reference"),
        ({"consent.given_by.name": DELETE}, "consent.given_by.name"),
    ],
)
async def test_missing_or_invalid_consent_is_422_and_nothing_is_written(
    client: httpx.AsyncClient, context: ServiceContext, overrides: dict[str, Any], needle: str
) -> None:
    response = await client.post("/v1/alerts", json=alert_body(**overrides), headers=auth())
    _assert_problem(response, 422, needle)
    assert await _count(context, Alert) == 0
    assert await _count(context, OutboxEvent) == 0


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"last_seen.lat": 48.8566, "last_seen.lon": 2.3522}, "outside"),  # Paris
        ({"last_seen.lat": 28.9872, "last_seen.lon": 41.0605}, "swap"),  # lat/lon swapped
        ({"last_seen.lat": 42.3, "last_seen.lon": 34.0}, "at sea"),  # Black Sea
        ({"last_seen.lat": "forty-one"}, "last_seen.lat"),
        ({"last_seen.lon": None}, "last_seen.lon"),
        ({"last_seen.lat": 91}, "last_seen.lat"),
        ({"last_seen.lon": -181}, "last_seen.lon"),
        ({"last_seen.at": "2099-01-01T00:00:00Z"}, "in the future"),
    ],
)
async def test_bad_coordinates_are_422(
    client: httpx.AsyncClient, context: ServiceContext, overrides: dict[str, Any], needle: str
) -> None:
    response = await client.post("/v1/alerts", json=alert_body(**overrides), headers=auth())
    _assert_problem(response, 422, needle)
    assert await _count(context, Alert) == 0


async def test_nan_coordinate_is_422(client: httpx.AsyncClient) -> None:
    raw = alert_body()
    text = httpx.Request("POST", "/", json=raw).content.decode().replace("41.0605", "NaN")
    response = await client.post(
        "/v1/alerts", content=text, headers={**auth(), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("radius", "needle"),
    [
        (-5, "greater than 0"),
        (0, "greater than 0"),
        (50, "radius"),
        (5_000_000, "radius"),
        ("wide", "radius_m"),
    ],
)
async def test_negative_or_absurd_radius_is_422(
    client: httpx.AsyncClient, radius: Any, needle: str
) -> None:
    response = await client.post(
        "/v1/alerts", json=alert_body(**{"target_area.radius_m": radius}), headers=auth()
    )
    _assert_problem(response, 422, needle)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"subject.category": "adult", "subject.age": 7}, "18 or older"),
        ({"subject.category": "child", "subject.age": 40}, "under 18"),
        ({"subject.photo_url": "http://example.org/p.jpg"}, "https"),
        ({"subject.unexpected": 1}, "extra"),
        ({"target_area": {"type": "hexagon"}}, "target_area"),
    ],
)
async def test_subject_and_area_rules(
    client: httpx.AsyncClient, overrides: dict[str, Any], needle: str
) -> None:
    response = await client.post("/v1/alerts", json=alert_body(**overrides), headers=auth())
    _assert_problem(response, 422, needle)


async def test_body_that_is_not_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/alerts", content=b"{not json", headers={**auth(), "content-type": "application/json"}
    )
    _assert_problem(response, 422, "json")


async def test_unknown_alert_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    _assert_problem(await client.get(f"/v1/alerts/{missing}", headers=auth()), 404, "no alert")
    _assert_problem(await client.get("/v1/alerts/not-a-uuid", headers=auth()), 404, "no alert")
    resolve = await client.post(
        f"/v1/alerts/{missing}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    _assert_problem(resolve, 404, "no alert")


async def test_auth_failures(client: httpx.AsyncClient, context: ServiceContext) -> None:
    body = alert_body()
    _assert_problem(await client.post("/v1/alerts", json=body), 401, "bearer")
    wrong = await client.post("/v1/alerts", json=body, headers=auth("not-a-key"))
    _assert_problem(wrong, 401, "not valid")
    assert wrong.headers["www-authenticate"] == "Bearer"
    basic = await client.post("/v1/alerts", json=body, headers={"Authorization": "Basic eDp5"})
    _assert_problem(basic, 401, "bearer")
    _assert_problem(
        await client.post("/v1/alerts", json=body, headers=auth(READER_KEY)), 403, "alerts:write"
    )
    _assert_problem(
        await client.get("/v1/alerts", headers=auth(WRITE_ONLY_KEY)), 403, "alerts:read"
    )
    assert await _count(context, Alert) == 0
    assert (await client.get("/v1/alerts", headers=auth(READER_KEY))).status_code == 200


async def test_idempotent_retry_returns_the_same_alert(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    body = alert_body()
    headers = {**auth(), "Idempotency-Key": "case-123-attempt"}
    first = await client.post("/v1/alerts", json=body, headers=headers)
    second = await client.post("/v1/alerts", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert await _count(context, Alert) == 1
    assert await _count(context, OutboxEvent) == 3


async def test_conflicting_retry_is_409(client: httpx.AsyncClient, context: ServiceContext) -> None:
    headers = {**auth(), "Idempotency-Key": "case-123-attempt"}
    assert (await client.post("/v1/alerts", json=alert_body(), headers=headers)).status_code == 201
    other = alert_body(**{"target_area.radius_m": 4000})
    _assert_problem(
        await client.post("/v1/alerts", json=other, headers=headers), 409, "different request body"
    )
    assert await _count(context, Alert) == 1


async def test_concurrent_retries_with_one_key_create_one_alert(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    body = alert_body()
    headers = {**auth(), "Idempotency-Key": "raced"}
    responses = await asyncio.gather(
        *(client.post("/v1/alerts", json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count(context, Alert) == 1


async def test_32_concurrent_writers_all_succeed(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/v1/alerts", json=alert_body(case_reference=f"C-{i}"), headers=auth())
            for i in range(32)
        )
    )
    assert [r.status_code for r in responses] == [201] * 32
    assert await _count(context, Alert) == 32
    assert await _count(context, OutboxEvent) == 32 * 3


async def test_resolve_twice_is_harmless(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_body(), headers=auth())).json()["id"]
    first = await client.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    second = await client.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "cancelled"}, headers=auth()
    )
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["status"] == second.json()["status"] == "resolved"
    assert second.json()["resolution_reason"] == "found_safe"
    assert second.json()["version"] == 2
    assert await _count(context, OutboxEvent) == 3 + 1  # dispatches, then one retraction


async def test_resolve_needs_a_known_reason(client: httpx.AsyncClient) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_body(), headers=auth())).json()["id"]
    response = await client.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "bored"}, headers=auth()
    )
    _assert_problem(response, 422, "reason")


async def test_list_filters_by_status_and_pages(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post("/v1/alerts", json=alert_body(), headers=auth())).json()["id"]
        for _ in range(3)
    ]
    await client.post(f"/v1/alerts/{ids[0]}/resolve", json={"reason": "found_safe"}, headers=auth())
    active = (await client.get("/v1/alerts?status=active", headers=auth())).json()
    assert {a["id"] for a in active["items"]} == set(ids[1:])
    page1 = (await client.get("/v1/alerts?limit=2", headers=auth())).json()
    assert len(page1["items"]) == 2
    assert page1["next_cursor"]
    page2 = (
        await client.get(f"/v1/alerts?limit=2&cursor={page1['next_cursor']}", headers=auth())
    ).json()
    assert {a["id"] for a in page1["items"] + page2["items"]} == set(ids)
    assert page2["next_cursor"] is None
    _assert_problem(await client.get("/v1/alerts?status=lost", headers=auth()), 422, "status")
    _assert_problem(await client.get("/v1/alerts?cursor=zzz", headers=auth()), 422, "cursor")


async def test_health_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    metrics = await client.get("/metrics")
    assert "kayip_dispatch_latency_seconds" in metrics.text
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/alerts/{alert_id}/resolve" in schema["paths"]
