"""Every built-in adapter delivers over real HTTP, signed with every configured
secret, and classifies the answer the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from standardwebhooks import Webhook

from operator_adapters.base import (
    DeliveryError,
    OperatorAdapter,
    PermanentDeliveryError,
    RenderedMessage,
    RetriableDeliveryError,
)
from operator_adapters.builtin.signed_http import retry_after_s
from operator_adapters.http_transport import LeanTransport
from operator_adapters.registry import build_adapter, discover
from services.messaging.broker import free_port
from services.settings import DEV_SIGNING_SECRETS, OperatorConfig
from tests.unit.adapters import events
from tests.unit.adapters.loopback import Answer, Endpoint, serving

ADAPTERS = ["standard_webhooks", "turkcell", "vodafone", "turktelekom"]
CURRENT = DEV_SIGNING_SECRETS["turkcell"]
PREVIOUS = DEV_SIGNING_SECRETS["vodafone"]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Endpoint]:
    async with serving() as served:
        yield served


@pytest.fixture
def endpoint(server: Endpoint) -> Endpoint:
    server.answers.clear()
    server.received.clear()
    return server


@pytest.fixture(params=["lean", "httpcore"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Both wires the service can run (``KAYIP_WEBHOOK_TRANSPORT``) classify alike."""
    transport = LeanTransport() if request.param == "lean" else None
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


def adapter_for(
    name: str, http: httpx.AsyncClient, url: str, timeout_s: float = 2.0
) -> OperatorAdapter:
    config = OperatorConfig(
        adapter=name,
        endpoint_url=url,
        signing_secret=CURRENT,
        previous_signing_secret=PREVIOUS,
        timeout_s=timeout_s,
    )
    return build_adapter("turkcell", config, http, discover())


def rendered(adapter: OperatorAdapter) -> RenderedMessage:
    return adapter.render_dispatch(events.dispatch())


@pytest.mark.parametrize("name", ADAPTERS)
async def test_each_secret_of_a_rotation_verifies_with_the_reference_library(
    name: str, endpoint: Endpoint, http: httpx.AsyncClient
) -> None:
    adapter = adapter_for(name, http, endpoint.url)
    message = rendered(adapter)
    receipt = await adapter.deliver("msg_rotation", message)
    assert receipt.status_code == 200
    [request] = endpoint.received
    assert request.body == message.body
    assert request.headers["content-type"] == message.content_type
    assert request.headers["webhook-id"] == "msg_rotation"
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (CURRENT, PREVIOUS):
        Webhook(secret).verify(request.body, request.headers, json_parse=False)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(DEV_SIGNING_SECRETS["turktelekom"]).verify(
            request.body, request.headers, json_parse=False
        )


RETRIABLE = [408, 425, 429, 500, 502, 503, 504, 507]
PERMANENT = [301, 400, 401, 403, 404, 409, 410, 413, 422]


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("status", RETRIABLE + PERMANENT)
async def test_failed_answers_are_classified(
    name: str, status: int, endpoint: Endpoint, http: httpx.AsyncClient
) -> None:
    """408/425/429/5xx are worth retrying (after Retry-After); any other answer is final."""
    adapter = adapter_for(name, http, endpoint.url)
    endpoint.answers.append(Answer(status, {"retry-after": "7"}))
    with pytest.raises(DeliveryError) as raised:
        await adapter.deliver("msg_failed", rendered(adapter))
    error = raised.value
    assert error.status_code == status
    if status in RETRIABLE:
        assert isinstance(error, RetriableDeliveryError)
        assert error.retry_after_s == 7.0
    else:
        assert isinstance(error, PermanentDeliveryError)
        assert not error.retriable


@pytest.mark.parametrize("name", ADAPTERS)
async def test_a_retry_after_date_is_honoured(
    name: str, endpoint: Endpoint, http: httpx.AsyncClient
) -> None:
    adapter = adapter_for(name, http, endpoint.url)
    when = datetime.now(UTC) + timedelta(seconds=90)
    endpoint.answers.append(Answer(503, {"retry-after": format_datetime(when, usegmt=True)}))
    with pytest.raises(RetriableDeliveryError) as raised:
        await adapter.deliver("msg_date", rendered(adapter))
    assert raised.value.retry_after_s is not None
    assert 80 < raised.value.retry_after_s <= 90


@pytest.mark.parametrize("name", ADAPTERS)
async def test_a_hanging_endpoint_is_a_retriable_timeout(
    name: str, endpoint: Endpoint, http: httpx.AsyncClient
) -> None:
    adapter = adapter_for(name, http, endpoint.url, timeout_s=0.2)
    endpoint.answers.append(Answer(200, delay_s=1.0))
    with pytest.raises(RetriableDeliveryError, match="timeout"):
        await adapter.deliver("msg_hang", rendered(adapter))


@pytest.mark.parametrize("name", ADAPTERS)
async def test_nobody_listening_is_a_retriable_transport_error(
    name: str, http: httpx.AsyncClient
) -> None:
    adapter = adapter_for(name, http, f"http://127.0.0.1:{free_port()}/webhooks")
    with pytest.raises(RetriableDeliveryError, match="transport"):
        await adapter.deliver("msg_down", rendered(adapter))


def test_retry_after_forms() -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120.0
    assert retry_after_s(" 0 ", now) == 0.0
    assert retry_after_s("Wed, 21 Oct 2026 07:30:00 GMT", now) == 120.0
    assert retry_after_s("Wed, 21 Oct 2026 07:00:00 GMT", now) == 0.0  # already past
    assert retry_after_s(None, now) is None
    for nonsense in ("soon", "-5", "1.5", ""):
        assert retry_after_s(nonsense, now) is None
