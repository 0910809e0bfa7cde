"""Our Standard Webhooks signatures interoperate with the reference implementation."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.settings import DEV_SIGNING_SECRETS
from services.webhook_signing import SignatureError, decode_secret, signed_headers, verify

SECRET = DEV_SIGNING_SECRETS["turkcell"]
OTHER = DEV_SIGNING_SECRETS["vodafone"]
BODY = b'{"type":"alert.dispatch","data":{"alert_id":"x"}}'


def test_reference_library_verifies_our_signature() -> None:
    headers = signed_headers([SECRET], "msg_1", BODY)
    assert Webhook(SECRET).verify(BODY, headers) == {
        "type": "alert.dispatch",
        "data": {"alert_id": "x"},
    }


def test_we_verify_the_reference_library_signature() -> None:
    ts = int(time.time())
    from datetime import UTC, datetime

    signature = Webhook(SECRET).sign("msg_2", datetime.fromtimestamp(ts, UTC), BODY.decode())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(ts), "webhook-signature": signature}
    assert verify([SECRET], headers, BODY) == "msg_2"


def test_two_secrets_during_rotation_each_verify() -> None:
    headers = signed_headers([SECRET, OTHER], "msg_3", BODY)
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(SECRET).verify(BODY, headers)
    Webhook(OTHER).verify(BODY, headers)


def test_tampered_body_fails_both_ways() -> None:
    headers = signed_headers([SECRET], "msg_4", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY + b" ", headers)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify([SECRET], headers, BODY + b" ")


def test_stale_timestamp_is_refused() -> None:
    old = int(time.time()) - 3600
    headers = signed_headers([SECRET], "msg_5", BODY, timestamp=old)
    with pytest.raises(SignatureError, match="tolerance"):
        verify([SECRET], headers, BODY)


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify([SECRET], {"webhook-id": "x"}, BODY)


@pytest.mark.parametrize("secret", ["whsec_!!!", "whsec_c2hvcnQ="])
def test_bad_secrets_are_rejected(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        decode_secret(secret)
