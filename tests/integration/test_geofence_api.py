"""Target areas through the API: every form, the preview, the area map, and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from shapely.geometry import shape

from tests.conftest import WRITE_ONLY_KEY, auth
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio

# A small square in Kadıköy (lon/lat order, closed ring).
KADIKOY = {
    "type": "Polygon",
    "coordinates": [[[29.02, 40.98], [29.05, 40.98], [29.05, 41.0], [29.02, 41.0], [29.02, 40.98]]],
}


async def _create(client: httpx.AsyncClient, area: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/alerts", json=alert_body(target_area=area), headers=auth())


def _codes(alert: dict[str, Any], kind: str = "districts") -> set[str]:
    return {d["code"] for d in alert["area"][kind]}


async def test_polygon_target(client: httpx.AsyncClient) -> None:
    response = await _create(client, {"type": "polygon", "geometry": KADIKOY})
    assert response.status_code == 201, response.text
    assert "TUR034023" in _codes(response.json())  # KADIKÖY


async def test_district_and_province_codes(client: httpx.AsyncClient) -> None:
    district = await _create(client, {"type": "admin_area", "codes": ["TUR034035"]})
    assert district.status_code == 201, district.text
    shares = {d["code"]: d["share_covered"] for d in district.json()["area"]["districts"]}
    assert shares["TUR034035"] == pytest.approx(1.0, abs=1e-6)
    province = await _create(client, {"type": "admin_area", "codes": ["TUR081"]})  # Düzce
    assert province.status_code == 201, province.text
    area = province.json()["area"]
    assert [p["code"] for p in area["provinces"] if p["share_covered"] > 0.99] == ["TUR081"]
    inside = {d["code"] for d in area["districts"] if d["share_covered"] > 0.99}
    assert inside, "a whole province covers its own districts fully"
    assert all(code.startswith("TUR081") for code in inside)


async def test_auto_area_grows_with_time(client: httpx.AsyncClient) -> None:
    response = await _create(client, {"type": "auto", "mode": "on_foot"})
    assert response.status_code == 201, response.text
    assert response.json()["area"]["area_km2"] > 0


async def test_union_of_forms(client: httpx.AsyncClient) -> None:
    area = {
        "type": "union",
        "parts": [
            {"type": "circle", "radius_m": 2000},
            {"type": "circle", "radius_m": 1500, "center": {"lat": 39.92, "lon": 32.85}},  # Ankara
            {"type": "polygon", "geometry": KADIKOY},
        ],
    }
    response = await _create(client, area)
    assert response.status_code == 201, response.text
    provinces = _codes(response.json(), "provinces")
    assert {"TUR034", "TUR006"} <= provinces
    assert response.json()["target_area"]["type"] == "union"


@pytest.mark.parametrize(
    ("area", "field", "needle"),
    [
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[29.0, 41.0], [29.1, 41.1], [29.1, 41.0], [29.0, 41.1], [29.0, 41.0]]
                    ],
                },
            },
            "target_area",
            "self",
        ),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[29.0, 41.0], [29.1, 41.0], [29.1, 41.1], [29.0, 41.1]]],
                },
            },
            "target_area",
            "not closed",
        ),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[29.0, 41.0], [29.1, 41.0], [29.0, 41.0]]],
                },
            },
            "target_area",
            "positions",
        ),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [40.98, 29.02],
                            [40.98, 29.05],
                            [41.0, 29.05],
                            [41.0, 29.02],
                            [40.98, 29.02],
                        ]
                    ],
                },
            },
            "target_area",
            "swap",
        ),
        (
            {"type": "polygon", "geometry": {"type": "Point", "coordinates": [29.0, 41.0]}},
            "target_area",
            "polygon",
        ),
        (
            {"type": "circle", "radius_m": 3000, "center": {"lat": 42.3, "lon": 34.0}},
            "target_area",
            "at sea",
        ),
        (
            {"type": "admin_area", "codes": ["TUR034"] + [f"TUR0{n:02d}" for n in range(35, 81)]},
            "target_area",
            "more than the allowed",
        ),
        ({"type": "admin_area", "codes": ["TUR099"]}, "target_area", "TUR099"),
        (
            {"type": "admin_area", "codes": ["ISTANBUL"]},
            "target_area.admin_area.codes.0",
            "pattern",
        ),
        ({"type": "circle", "radius_m": 50}, "target_area", "radius"),
        ({"type": "circle", "radius_m": 900_000}, "target_area", "radius"),
        (
            {
                "type": "union",
                "parts": [
                    {"type": "circle", "radius_m": 1000},
                    {"type": "admin_area", "codes": ["TUR034999"]},
                ],
            },
            "target_area.parts.1",
            "TUR034999",
        ),
        ({"type": "union", "parts": []}, "target_area.union.parts", "at least 1"),
        ({"type": "square", "side_m": 3}, "target_area", "type"),
    ],
)
async def test_bad_areas_are_422_with_a_clear_message(
    client: httpx.AsyncClient, area: dict[str, Any], field: str, needle: str
) -> None:
    response = await _create(client, area)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert needle.lower() in problem["detail"].lower(), problem["detail"]
    assert any(p["name"].startswith(field) for p in problem["invalid_params"]), problem
    listed = await client.get("/v1/alerts", headers=auth())
    assert listed.json()["items"] == []


async def test_absurdly_many_vertices_is_422(client: httpx.AsyncClient) -> None:
    import math

    n = 20_000
    ring = [
        [29.0 + 0.05 * math.cos(2 * math.pi * i / n), 41.0 + 0.05 * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    ring.append(ring[0])
    response = await _create(
        client, {"type": "polygon", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    )
    assert response.status_code == 422, response.text
    assert "vertices" in response.json()["detail"].lower()


async def test_infinite_coordinate_is_422(client: httpx.AsyncClient) -> None:
    geometry = (
        '{"type":"Polygon","coordinates":[[[29.0,41.0],[Infinity,41.0],[29.1,41.1],[29.0,41.0]]]}'
    )
    body = httpx.Request("POST", "/", json=alert_body()).content.decode()
    body = body.replace(
        '{"type":"circle","radius_m":3000}', '{"type":"polygon","geometry":' + geometry + "}"
    )
    assert '"polygon"' in body
    response = await client.post(
        "/v1/alerts", content=body, headers={**auth(), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


async def test_preview_resolves_without_creating(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/geofence/preview",
        headers=auth(),
        json={
            "target_area": {
                "type": "circle",
                "radius_m": 5000,
                "center": {"lat": 38.42, "lon": 27.14},
            },  # İzmir
            "include_cells": True,
        },
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert "TUR035" in {p["code"] for p in preview["provinces"]}
    assert preview["broadcast"]["vertex_count"] <= 100
    assert shape(preview["broadcast"]["geometry"]).covers(shape(preview["target"]))
    for operator in preview["operators"]:
        assert operator["cell_count"] == len(operator["cell_ids"]) > 0
    assert (await client.get("/v1/alerts", headers=auth())).json()["items"] == []


async def test_preview_needs_a_center_for_a_bare_circle(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/geofence/preview",
        headers=auth(),
        json={"target_area": {"type": "circle", "radius_m": 5000}},
    )
    assert response.status_code == 422
    assert "center" in response.json()["detail"]
    unauthorised = await client.post("/v1/geofence/preview", json={"target_area": {}})
    assert unauthorised.status_code == 401
    wrong_scope = await client.post(
        "/v1/geofence/preview",
        headers=auth(WRITE_ONLY_KEY),
        json={"target_area": {"type": "circle", "radius_m": 5}},
    )
    assert wrong_scope.status_code == 403


async def test_area_endpoint_is_geojson(client: httpx.AsyncClient) -> None:
    alert = (await _create(client, {"type": "circle", "radius_m": 3000})).json()
    response = await client.get(f"/v1/alerts/{alert['id']}/area", headers=auth())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    roles = [f["properties"]["role"] for f in collection["features"]]
    assert roles[:2] == ["target", "broadcast"]
    districts = {f["properties"]["code"] for f in collection["features"][2:]}
    assert districts == _codes(alert)
    target, broadcast = (shape(f["geometry"]) for f in collection["features"][:2])
    assert broadcast.covers(target)
    assert (
        await client.get("/v1/alerts/00000000-0000-0000-0000-000000000000/area", headers=auth())
    ).status_code == 404


async def test_vertex_budget_and_area_limit_come_from_settings(database_url: str) -> None:
    from alert_api.app import create_app
    from services.context import ServiceContext
    from services.db.engine import Database
    from services.db.migrate import upgrade_to_head
    from tests.conftest import make_settings

    settings = make_settings(database_url, geofence_vertex_budget=12, geofence_max_area_km2=50)
    db = Database(settings.database_url)
    await upgrade_to_head(db)
    context = ServiceContext.build(settings, db=db)
    transport = httpx.ASGITransport(app=create_app(settings, context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            small = await _create(client, {"type": "circle", "radius_m": 2000})
            assert small.status_code == 201, small.text
            broadcast = small.json()["area"]["broadcast"]
            assert broadcast["vertex_count"] <= 12
            assert shape(broadcast["geometry"]).covers(
                shape(
                    (
                        await client.get(f"/v1/alerts/{small.json()['id']}/area", headers=auth())
                    ).json()["features"][0]["geometry"]
                )
            )
            large = await _create(client, {"type": "circle", "radius_m": 5000})
            assert large.status_code == 422
            assert "50 km²" in large.json()["detail"]
    finally:
        await context.close()
