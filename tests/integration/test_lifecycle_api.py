"""The lifecycle endpoints' contract: PATCH, renew and statistics, status codes and problems."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import READER_KEY, WRITE_ONLY_KEY, auth
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio


def _assert_problem(response: httpx.Response, status: int, needle: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert needle.lower() in body["detail"].lower(), body["detail"]
    return body


async def _alert(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/alerts", json=alert_body(), headers=auth())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_patch_returns_the_new_version(client: httpx.AsyncClient) -> None:
    alert = await _alert(client)
    assert alert["expires_at"] is not None
    response = await client.patch(
        f"/v1/alerts/{alert['id']}",
        json={
            "description": "Sarı montlu kız çocuğu",
            "photo_url": None,
            "target_area": {"type": "admin_area", "codes": ["TUR034035"]},
            "add_languages": ["en", "ar"],
        },
        headers=auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 2
    assert body["status"] == "active"
    assert "Sarı montlu kız çocuğu." in body["sms_text"]
    assert body["languages"] == ["tr", "en", "ar"]
    assert body["target_area"] == {"type": "admin_area", "codes": ["TUR034035"]}
    shares = {d["code"]: d["share_covered"] for d in body["area"]["districts"]}
    assert shares["TUR034035"] == pytest.approx(1.0, abs=1e-3)
    assert body["area"]["area_km2"] != alert["area"]["area_km2"]
    assert body["updated_at"] is not None
    # No relay runs here: v1 was never published, so it is suppressed and v2 is a dispatch.
    kinds = {(d["kind"], d["alert_version"], d["status"]) for d in body["deliveries"]}
    assert kinds == {("dispatch", 1, "suppressed"), ("dispatch", 2, "pending")}
    fetched = (await client.get(f"/v1/alerts/{alert['id']}", headers=auth())).json()
    assert fetched == body


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({}, "nothing to change"),
        ({"description": None}, "description cannot be null"),
        ({"target_area": None}, "target_area cannot be null"),
        ({"description": "ab"}, "description"),
        ({"photo_url": "http://example.org/p.jpg"}, "https"),
        ({"add_languages": ["english"]}, "add_languages"),
        ({"add_languages": ["en", "de", "fr", "ar", "ru"]}, "at most 5 languages"),
        ({"subject": {"name": "X"}}, "subject"),
        (
            {"target_area": {"type": "circle", "radius_m": 3000, "center": {"lat": 0, "lon": 0}}},
            "outside türkiye",
        ),
        ({"target_area": {"type": "admin_area", "codes": ["TUR999"]}}, "TUR999"),
    ],
)
async def test_patch_rejects_bad_input_with_a_problem(
    client: httpx.AsyncClient, patch: dict[str, Any], needle: str
) -> None:
    alert = await _alert(client)
    response = await client.patch(f"/v1/alerts/{alert['id']}", json=patch, headers=auth())
    _assert_problem(response, 422, needle)
    fetched = (await client.get(f"/v1/alerts/{alert['id']}", headers=auth())).json()
    assert fetched["version"] == 1


async def test_patch_and_renew_of_an_ended_alert_conflict(client: httpx.AsyncClient) -> None:
    alert = await _alert(client)
    resolved = await client.post(
        f"/v1/alerts/{alert['id']}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    assert resolved.status_code == 202
    patch = await client.patch(
        f"/v1/alerts/{alert['id']}", json={"description": "Başka tarif"}, headers=auth()
    )
    _assert_problem(patch, 409, "only an active alert can be updated")
    renew = await client.post(f"/v1/alerts/{alert['id']}/renew", json={}, headers=auth())
    _assert_problem(renew, 409, "only an active alert can be renewed")


async def test_unknown_alerts_and_missing_scopes(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    patch = {"description": "Başka tarif"}
    _assert_problem(
        await client.patch(f"/v1/alerts/{missing}", json=patch, headers=auth()), 404, "no alert"
    )
    _assert_problem(
        await client.post(f"/v1/alerts/{missing}/renew", headers=auth()), 404, "no alert"
    )
    alert = await _alert(client)
    _assert_problem(
        await client.patch(f"/v1/alerts/{alert['id']}", json=patch, headers=auth(READER_KEY)),
        403,
        "alerts:write",
    )
    _assert_problem(
        await client.post(f"/v1/alerts/{alert['id']}/renew", headers=auth(READER_KEY)),
        403,
        "alerts:write",
    )
    _assert_problem(await client.patch(f"/v1/alerts/{alert['id']}", json=patch), 401, "bearer")
    _assert_problem(await client.get("/v1/statistics", headers=auth(WRITE_ONLY_KEY)), 403, "read")


async def test_renew_extends_the_expiry(client: httpx.AsyncClient) -> None:
    alert = await _alert(client)
    first = await client.post(f"/v1/alerts/{alert['id']}/renew", headers=auth())
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    second = await client.post(
        f"/v1/alerts/{alert['id']}/renew", json={"hours": 1.5}, headers=auth()
    )
    assert second.status_code == 200, second.text
    created = datetime.fromisoformat(alert["expires_at"])
    assert datetime.fromisoformat(first.json()["expires_at"]) == created + timedelta(hours=72)
    assert datetime.fromisoformat(second.json()["expires_at"]) == created + timedelta(hours=73.5)
    for bad in ({"hours": 0}, {"hours": -1}, {"hours": 10_000}, {"days": 1}):
        response = await client.post(f"/v1/alerts/{alert['id']}/renew", json=bad, headers=auth())
        _assert_problem(response, 422, "hours" if "hours" in bad else "days")


async def test_statistics_are_anonymous_counts(client: httpx.AsyncClient) -> None:
    first = await _alert(client)
    await _alert(client)
    await client.post(
        f"/v1/alerts/{first['id']}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    response = await client.get("/v1/statistics", headers=auth(READER_KEY))
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["total"] == 2
    assert stats["by_status"] == {"active": 1, "resolved": 1}
    assert stats["by_end_reason"] == {"found_safe": 1}
    assert stats["by_province"] == {"TUR034": 2}
    assert "Test Child" not in response.text


async def test_openapi_lists_the_lifecycle_endpoints(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "patch" in schema["paths"]["/v1/alerts/{alert_id}"]
    assert "post" in schema["paths"]["/v1/alerts/{alert_id}/renew"]
    assert "get" in schema["paths"]["/v1/statistics"]
