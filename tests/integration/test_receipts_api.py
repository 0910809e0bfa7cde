"""Operator receipts: who may report what, duplicates, effects, and the delivery timeline."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from services.context import ServiceContext
from services.db.models import AuditEvent, Delivery, DeliveryAttempt, LinkTest, OperatorReceipt
from services.settings import DEV_SIGNING_SECRETS, dev_receipt_key
from services.webhook_signing import signed_headers
from tests.conftest import READER_KEY, WRITE_ONLY_KEY, auth
from tests.fixtures.payloads import alert_body

pytestmark = pytest.mark.asyncio
T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def receipt(webhook_id: str, status: str, **fields: Any) -> bytes:
    body = {"webhook_id": webhook_id, "status": status, "reported_at": T0.isoformat(), **fields}
    return json.dumps(body).encode()


def signed(
    body: bytes,
    operator: str = "turkcell",
    *,
    receipt_id: str | None = None,
    secret: str | None = None,
    key: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    headers = signed_headers(
        [secret or DEV_SIGNING_SECRETS[operator]],
        receipt_id or f"rcpt_{uuid.uuid4().hex}",
        body,
        timestamp,
    )
    headers["content-type"] = "application/json"
    headers["authorization"] = f"Bearer {key or dev_receipt_key(operator)}"
    return headers


async def post(
    client: httpx.AsyncClient, body: bytes, operator: str = "turkcell", **sign: Any
) -> httpx.Response:
    path_operator = sign.pop("path_operator", operator)
    return await client.post(
        f"/v1/operators/{path_operator}/receipts",
        content=body,
        headers=signed(body, operator, **sign),
    )


def assert_problem(response: httpx.Response, status: int, needle: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert needle.lower() in problem["detail"].lower(), problem["detail"]
    assert "Traceback" not in response.text
    return problem


async def new_alert(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """An alert and, per operator, the webhook-id of its dispatch."""
    created = await client.post("/v1/alerts", json=alert_body(), headers=auth())
    assert created.status_code == 201, created.text
    alert = created.json()
    return alert["id"], {d["operator"]: d["webhook_id"] for d in alert["deliveries"]}


async def delivery(context: ServiceContext, webhook_id: str) -> Delivery:
    async with context.db.read() as session:
        row = await session.scalar(select(Delivery).where(Delivery.webhook_id == webhook_id))
    assert row is not None
    return row


async def receipt_rows(context: ServiceContext, webhook_id: str) -> int:
    async with context.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OperatorReceipt)
            .where(OperatorReceipt.webhook_id == webhook_id)
        )
    return int(count or 0)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- authentication -----------------------------------------------------------------


async def test_who_may_report(client: httpx.AsyncClient, context: ServiceContext) -> None:
    _, webhooks = await new_alert(client)
    body = receipt(webhooks["turkcell"], "accepted")
    url = "/v1/operators/turkcell/receipts"

    unsigned = {"content-type": "application/json"}
    response = await client.post(url, content=body, headers=unsigned)
    assert_problem(response, 401, "receipt key is required")
    assert response.headers["www-authenticate"] == "Bearer"

    assert_problem(await post(client, body, key="not-a-key"), 401, "not valid")
    case_system_key = await post(client, body, key=READER_KEY)  # an API key is not a receipt key
    assert_problem(case_system_key, 401, "not valid")
    before = metric(
        "kayip_operator_receipts_refused_total", operator="turkcell", reason="Forbidden"
    )
    other = await post(client, body, key=dev_receipt_key("vodafone"))
    assert_problem(other, 403, "another operator")
    assert (
        metric("kayip_operator_receipts_refused_total", operator="turkcell", reason="Forbidden")
        == before + 1
    )
    assert_problem(await post(client, body, path_operator="nokia"), 404, "no operator named nokia")

    wrong_secret = await post(client, body, secret=DEV_SIGNING_SECRETS["vodafone"])
    assert_problem(wrong_secret, 401, "no signature matches")
    stale = await post(client, body, timestamp=int(time.time()) - 301)
    assert_problem(stale, 401, "outside the tolerance")
    future = await post(client, body, timestamp=int(time.time()) + 301)
    assert_problem(future, 401, "outside the tolerance")
    headers = signed(body)
    tampered = body.replace(b"accepted", b"delivered")
    assert_problem(await client.post(url, content=tampered, headers=headers), 401, "no signature")
    no_signature = signed(body)
    del no_signature["webhook-signature"]
    assert_problem(await client.post(url, content=body, headers=no_signature), 401, "missing")

    assert await receipt_rows(context, webhooks["turkcell"]) == 0
    assert (await post(client, body)).status_code == 200


async def test_unknown_delivery_and_another_operators_delivery_are_404(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    _, webhooks = await new_alert(client)
    missing = await post(client, receipt("msg_" + "0" * 32, "accepted"))
    assert_problem(missing, 404, "no delivery or link test")
    # Turkcell, properly authenticated, reporting on Vodafone's delivery.
    foreign = await post(client, receipt(webhooks["vodafone"], "delivered", recipients=5))
    assert_problem(foreign, 404, "for operator turkcell")
    assert await receipt_rows(context, webhooks["vodafone"]) == 0
    assert (await delivery(context, webhooks["vodafone"])).receipt_status is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "json"),
        (b"[]", "receipt"),
        (b'{"status": "delivered"}', "webhook_id"),
        (
            b'{"webhook_id": "msg_x", "status": "lost", "reported_at": "2026-03-14T09:00:00Z"}',
            "status",
        ),
        (
            b'{"webhook_id": "msg_x", "status": "accepted", "reported_at": "2026-03-14T09:00:00"}',
            "timezone",
        ),
        (
            b'{"webhook_id": "msg_x", "status": "delivered", "recipients": -1, '
            b'"reported_at": "2026-03-14T09:00:00Z"}',
            "recipients",
        ),
        (
            b'{"webhook_id": "msg_x", "status": "accepted", "reported_at": "2026-03-14T09:00:00Z", '
            b'"colour": "red"}',
            "colour",
        ),
    ],
)
async def test_malformed_receipts_are_422(
    client: httpx.AsyncClient, body: bytes, needle: str
) -> None:
    assert_problem(await post(client, body), 422, needle)


async def test_a_status_that_does_not_fit_the_message_is_422(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    _, webhooks = await new_alert(client)
    problem = assert_problem(
        await post(client, receipt(webhooks["turkcell"], "retracted")), 422, "does not apply"
    )
    assert problem["invalid_params"][0]["name"] == "status"
    assert await receipt_rows(context, webhooks["turkcell"]) == 0


# -- duplicates and replays -------------------------------------------------------------


async def test_the_same_receipt_twice_is_harmless_and_a_changed_one_is_409(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    _, webhooks = await new_alert(client)
    body = receipt(webhooks["turkcell"], "delivered", recipients=1200)
    first = await post(client, body, receipt_id="rcpt_once")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "receipt_id": "rcpt_once",
        "webhook_id": webhooks["turkcell"],
        "status": "delivered",
        "duplicate": False,
        "applied": True,
    }
    # Same receipt again, even freshly signed: recorded once, nothing changes.
    again = await post(client, body, receipt_id="rcpt_once")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["applied"] is False
    assert await receipt_rows(context, webhooks["turkcell"]) == 1
    # The same id with another body: refused, and the first stays as it was.
    changed = receipt(webhooks["turkcell"], "delivered", recipients=999_999)
    assert_problem(await post(client, changed, receipt_id="rcpt_once"), 409, "different body")
    row = await delivery(context, webhooks["turkcell"])
    assert (row.receipt_status, row.recipients) == ("delivered", 1200)
    assert await receipt_rows(context, webhooks["turkcell"]) == 1


# -- effects ----------------------------------------------------------------------------


async def test_latest_meaningful_status_wins(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    _, webhooks = await new_alert(client)
    webhook = webhooks["turktelekom"]

    async def report(status: str, minutes: int, **fields: Any) -> dict[str, Any]:
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        response = await post(
            client, receipt(webhook, status, reported_at=at, **fields), operator="turktelekom"
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert (await report("accepted", 0))["applied"]
    assert (await report("broadcasting", 1, recipients=400))["applied"]
    assert (await report("delivered", 3, recipients=1500))["applied"]
    # Late and less advanced: kept as a record, does not move the status back.
    assert not (await report("accepted", 2))["applied"]
    # Equally advanced but reported earlier than the delivered one: stale.
    assert not (await report("failed", 2, reason="cell outage"))["applied"]
    row = await delivery(context, webhook)
    assert (row.receipt_status, row.recipients) == ("delivered", 1500)
    # A later count of the same status replaces the earlier one.
    assert (await report("delivered", 5, recipients=1800))["applied"]
    assert (await delivery(context, webhook)).recipients == 1800
    assert await receipt_rows(context, webhook) == 6


async def test_retraction_receipts_confirm_and_a_failure_withdraws_the_confirmation(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    alert_id, _ = await new_alert(client)
    resolved = await client.post(
        f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
    )
    assert resolved.status_code == 202
    webhook = next(
        d["webhook_id"]
        for d in resolved.json()["deliveries"]
        if d["operator"] == "vodafone" and d["kind"] == "retraction"
    )
    done = await post(client, receipt(webhook, "retracted"), operator="vodafone")
    assert done.status_code == 200, done.text
    confirmed = await delivery(context, webhook)
    assert confirmed.receipt_status == "retracted"
    assert confirmed.confirmed_at is not None

    later = (T0 + timedelta(minutes=1)).isoformat()
    failed = receipt(webhook, "failed", reason="broadcast centre kept sending", reported_at=later)
    assert (await post(client, failed, operator="vodafone")).json()["applied"] is True
    withdrawn = await delivery(context, webhook)
    assert withdrawn.receipt_status == "failed"
    assert withdrawn.confirmed_at is None
    async with context.db.read() as session:
        audits = list(
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.alert_id == alert_id,
                    AuditEvent.action == "retraction.operator_failed",
                )
            )
        )
    assert len(audits) == 1
    assert audits[0].actor == "operator:vodafone"
    assert audits[0].details["webhook_id"] == webhook
    assert "broadcast centre" not in json.dumps(audits[0].details)  # free text stays out


async def test_a_link_test_is_acknowledged(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    webhook = f"msg_{uuid.uuid4().hex}"
    async with context.db.write() as session:
        session.add(
            LinkTest(
                operator="vodafone",
                event_id=str(uuid.uuid4()),
                webhook_id=webhook,
                requested_at=T0,
                outcome="delivered",
            )
        )
    assert_problem(
        await post(client, receipt(webhook, "delivered"), operator="vodafone"), 422, "link test"
    )
    assert_problem(await post(client, receipt(webhook, "acknowledged")), 404, "no delivery")
    before = metric(
        "kayip_operator_receipts_total",
        operator="vodafone",
        status="acknowledged",
        outcome="recorded",
    )
    ok = await post(client, receipt(webhook, "acknowledged"), operator="vodafone")
    assert ok.status_code == 200, ok.text
    async with context.db.read() as session:
        test = await session.scalar(select(LinkTest).where(LinkTest.webhook_id == webhook))
    assert test is not None
    assert test.acknowledged_at is not None
    assert (
        metric(
            "kayip_operator_receipts_total",
            operator="vodafone",
            status="acknowledged",
            outcome="recorded",
        )
        == before + 1
    )


# -- the delivery timeline ------------------------------------------------------------------


async def test_timeline_shows_attempts_outcomes_and_receipts_in_order(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    alert_id, webhooks = await new_alert(client)
    turkcell = webhooks["turkcell"]
    # What the worker writes: two failed tries and a successful one, then the outcome
    # (ten minutes ago, so that the receipts posted now come after them).
    created = (await delivery(context, turkcell)).accepted_at - timedelta(minutes=10)
    async with context.db.write() as session:
        for attempt, (outcome, code) in enumerate(
            [("retriable", 503), ("retriable", 503), ("delivered", 200)], start=1
        ):
            at = created + timedelta(seconds=attempt)
            session.add(
                DeliveryAttempt(
                    webhook_id=turkcell,
                    alert_id=alert_id,
                    operator="turkcell",
                    attempt=attempt,
                    started_at=at - timedelta(milliseconds=20),
                    finished_at=at,
                    outcome=outcome,
                    status_code=code,
                    reason=None if code == 200 else "http 503",
                )
            )
        row = await session.scalar(select(Delivery).where(Delivery.webhook_id == turkcell))
        assert row is not None
        row.accepted_at = created
        row.status, row.attempts, row.last_status_code = "delivered", 3, 200
        row.delivered_at = created + timedelta(seconds=3)
    reported = (created + timedelta(seconds=4)).isoformat()
    for status, extra in (("accepted", {}), ("delivered", {"recipients": 4321})):
        response = await post(client, receipt(turkcell, status, reported_at=reported, **extra))
        assert response.status_code == 200, response.text

    response = await client.get(f"/v1/alerts/{alert_id}/delivery", headers=auth(READER_KEY))
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert timeline["alert_id"] == alert_id
    assert [o["operator"] for o in timeline["operators"]] == ["turkcell", "turktelekom", "vodafone"]
    cell = timeline["operators"][0]
    events = [(e["event"], e.get("attempt"), e.get("receipt_status")) for e in cell["timeline"]]
    assert events == [
        ("queued", None, None),
        ("attempt", 1, None),
        ("attempt", 2, None),
        ("attempt", 3, None),
        ("delivered", None, None),
        ("receipt", None, "accepted"),
        ("receipt", None, "delivered"),
    ]
    times = [e["at"] for e in cell["timeline"]]
    assert times == sorted(times)
    assert cell["timeline"][1]["status_code"] == 503
    assert cell["timeline"][-1]["recipients"] == 4321
    [message] = cell["messages"]
    assert message["status"] == "delivered"
    assert (message["receipt_status"], message["recipients"]) == ("delivered", 4321)
    assert cell["totals"] == {
        "messages": 1,
        "delivered": 1,
        "failed": 0,
        "pending": 0,
        "suppressed": 0,
        "attempts": 3,
        "receipts": 2,
        "recipients": 4321,
    }
    assert timeline["totals"] == {
        "messages": 3,
        "delivered": 1,
        "failed": 0,
        "pending": 2,
        "suppressed": 0,
        "attempts": 3,
        "receipts": 2,
        "recipients": 4321,
    }
    pending = timeline["operators"][1]
    assert [e["event"] for e in pending["timeline"]] == ["queued"]
    assert pending["totals"]["recipients"] is None


async def test_timeline_access_and_unknown_alerts(client: httpx.AsyncClient) -> None:
    alert_id, _ = await new_alert(client)
    path = f"/v1/alerts/{alert_id}/delivery"
    assert_problem(await client.get(path), 401, "bearer")
    assert_problem(await client.get(path, headers=auth(WRITE_ONLY_KEY)), 403, "alerts:read")
    missing = f"/v1/alerts/{uuid.uuid4()}/delivery"
    assert_problem(await client.get(missing, headers=auth()), 404, "no alert")
    assert_problem(await client.get("/v1/alerts/nope/delivery", headers=auth()), 404, "no alert")
