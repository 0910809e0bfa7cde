"""Signed HTTP delivery shared by every built-in adapter.

Operators differ in what they want to read (JSON, CAP XML, compact JSON) but not
in how it travels: one POST signed as the Standard Webhooks specification says,
with every configured secret (two during a rotation), and one rule for which
answers are worth retrying. Keeping that here means a fix to the rule reaches
every operator at once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from operator_adapters.base import (
    DeliveryReceipt,
    OperatorAdapter,
    PermanentDeliveryError,
    RenderedMessage,
    RetriableDeliveryError,
)
from services.webhook_signing import decode_secret, signed_headers

#: Besides every 5xx: the server timed out, wants replay protection, or throttles us.
RETRIABLE_4XX = frozenset({408, 425, 429})


class SignedHttpConfig(BaseModel):
    """What every HTTP operator needs; a plugin's own options extend this model."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str = Field(pattern=r"^https?://")
    signing_secrets: list[str] = Field(min_length=1, max_length=2)
    timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("signing_secrets")
    @classmethod
    def _valid_secrets(cls, value: list[str]) -> list[str]:
        for secret in value:
            decode_secret(secret)
        return value


class SignedHttpAdapter(OperatorAdapter):
    """An adapter whose messages travel as one signed POST each; subclasses render."""

    config_model = SignedHttpConfig
    config: SignedHttpConfig

    async def deliver(self, webhook_id: str, message: RenderedMessage) -> DeliveryReceipt:
        return await post_signed(self.http, self.config, webhook_id, message)


@functools.lru_cache(maxsize=64)
def _endpoint(url: str) -> httpx.URL:
    """The endpoint parsed once, not on every POST (httpx parses a string URL each time:
    a third of what is left of its own cost per request, measured)."""
    return httpx.URL(url)


async def post_signed(
    http: httpx.AsyncClient, config: SignedHttpConfig, webhook_id: str, message: RenderedMessage
) -> DeliveryReceipt:
    """POST one message signed with every secret; classify the answer.

    Raises:
        RetriableDeliveryError: timeout, transport error, 408/425/429 or any 5xx
            (with Retry-After honoured when the server sent one).
        PermanentDeliveryError: any other non-2xx answer.
    """
    headers = signed_headers(config.signing_secrets, webhook_id, message.body)
    headers["content-type"] = message.content_type
    try:
        response = await http.post(
            _endpoint(config.endpoint_url),
            content=message.body,
            headers=headers,
            timeout=config.timeout_s,
        )
    except httpx.TimeoutException as exc:
        raise RetriableDeliveryError(f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise RetriableDeliveryError(f"transport: {type(exc).__name__}") from exc
    if response.is_success:
        return DeliveryReceipt(status_code=response.status_code)
    code = response.status_code
    if code in RETRIABLE_4XX or 500 <= code <= 599:
        raise RetriableDeliveryError(
            f"http {code}", code, retry_after_s(response.headers.get("retry-after"))
        )
    raise PermanentDeliveryError(f"http {code}", code)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3).

    Both forms are read: delta-seconds (``120``) and an HTTP-date
    (``Wed, 21 Oct 2026 07:28:00 GMT``); a date in the past means "now" (0).
    Anything else is ignored (None) rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC) if now is None else now
    return max(0.0, (when - current).total_seconds())
