"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with
the base64 secret after ``whsec_``; the header holds space-separated ``v1,<b64>``
entries, so two secrets can be valid at once during a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature is missing, malformed, stale or does not match."""


def decode_secret(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValueError("a signing secret must be whsec_ followed by base64") from exc
    if len(key) < 16:
        raise ValueError("a signing secret must hold at least 16 bytes")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<signature>`` entry."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets: Sequence[str], webhook_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(sign(s, webhook_id, ts, body) for s in secrets),
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """Return the webhook-id if any secret's signature matches; raise SignatureError otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise SignatureError("missing or malformed webhook headers") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("the webhook timestamp is outside the tolerance")
    expected = {sign(s, webhook_id, timestamp, body) for s in secrets}
    for candidate in offered:
        if any(hmac.compare_digest(candidate, e) for e in expected):
            return webhook_id
    raise SignatureError("no signature matches")
