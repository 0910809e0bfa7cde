"""Consent rules and the Turkish SMS template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.alerts import AlertCreate, SubjectCategory
from services.consent import check_consent, check_subject
from services.errors import ValidationFailed
from services.sms import render_sms
from tests.fixtures.payloads import alert_body

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _body(**overrides: object) -> AlertCreate:
    return AlertCreate.model_validate(alert_body(**overrides))


def test_template_is_turkish_local_time_without_the_name() -> None:
    text = render_sms(
        SubjectCategory.child,
        7,
        "Kırmızı montlu kız çocuğu",
        "Şişli",
        datetime(2026, 11, 21, 6, 30, tzinfo=UTC),
    )
    assert text == (
        "KAYIP ALARMI: 7 yaşında çocuk. Kırmızı montlu kız çocuğu. Son görülme: "
        "Şişli, 21.11.2026 09:30. Görenler 155 Polis İmdat'ı arasın."
    )


def test_template_without_place() -> None:
    text = render_sms(SubjectCategory.adult, 80, "Gri paltolu.", None, NOW)
    assert "Son görülme: konum bilgisi, 21.11.2026 12:00" in text


def test_consent_must_cover_sms() -> None:
    body = _body(**{"consent.channels": ["social"]})
    with pytest.raises(ValidationFailed, match="sms"):
        check_consent(body.consent, body.subject, datetime.now(UTC))


def test_guardian_consents_for_a_minor_adult_for_themself() -> None:
    body = _body(**{"consent.given_by.relationship": "legal_guardian"})
    check_consent(body.consent, body.subject, datetime.now(UTC))
    adult = _body(
        **{"subject.category": "adult", "subject.age": 30, "consent.given_by.relationship": "self"}
    )
    check_consent(adult.consent, adult.subject, datetime.now(UTC))
    vulnerable = _body(
        **{
            "subject.category": "vulnerable_adult",
            "subject.age": 80,
            "consent.given_by.relationship": "self",
        }
    )
    with pytest.raises(ValidationFailed, match="themself"):
        check_consent(vulnerable.consent, vulnerable.subject, datetime.now(UTC))


def test_old_consent_is_refused() -> None:
    body = _body(**{"consent.given_at": (NOW - timedelta(days=31)).isoformat()})
    with pytest.raises(ValidationFailed, match="older than 30 days"):
        check_consent(body.consent, body.subject, NOW)


def test_category_and_age_must_agree() -> None:
    check_subject(_body(**{"subject.category": "vulnerable_adult", "subject.age": 15}).subject)
    with pytest.raises(ValidationFailed, match="under 18"):
        check_subject(_body(**{"subject.age": 18}).subject)
