"""Consent rules: SMS broadcast of a person's description needs the family's consent.

KVKK (Law 6698) needs a legal ground for processing; for this service it is
explicit consent, which must cover SMS, come from someone entitled to give it,
and not be dated in the future. A minor's consent comes from a parent or legal
guardian only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.alerts import Consent, ConsentChannel, ConsentRelationship, Subject, SubjectCategory
from services.errors import ValidationFailed

CLOCK_SKEW = timedelta(minutes=5)
GUARDIANS = frozenset({ConsentRelationship.parent, ConsentRelationship.legal_guardian})
MAX_CONSENT_AGE = timedelta(days=30)


def check_subject(subject: Subject) -> None:
    """Category and age must agree, or the template would describe the wrong person."""
    if subject.category is SubjectCategory.child and subject.age >= 18:
        raise ValidationFailed(
            "a child must be under 18; use adult or vulnerable_adult", field="subject.age"
        )
    if subject.category is SubjectCategory.adult and subject.age < 18:
        raise ValidationFailed("an adult must be 18 or older; use child", field="subject.age")


def check_consent(consent: Consent, subject: Subject, now: datetime) -> None:
    """Raise ValidationFailed unless this consent allows an SMS alert for this subject."""
    if ConsentChannel.sms not in consent.channels:
        raise ValidationFailed(
            "the consent does not cover the sms channel; nothing was sent", field="consent.channels"
        )
    if consent.given_at > now + CLOCK_SKEW:
        raise ValidationFailed("consent.given_at is in the future", field="consent.given_at")
    if consent.given_at < now - MAX_CONSENT_AGE:
        raise ValidationFailed(
            "the consent is older than 30 days; record it again", field="consent.given_at"
        )
    is_minor = subject.category is SubjectCategory.child or subject.age < 18
    if is_minor and consent.given_by.relationship not in GUARDIANS:
        raise ValidationFailed(
            "consent for a minor must come from a parent or legal guardian",
            field="consent.given_by.relationship",
        )
    if consent.given_by.relationship is ConsentRelationship.self_ and (
        subject.category is not SubjectCategory.adult
    ):
        raise ValidationFailed(
            "only an adult who is not vulnerable can consent for themself",
            field="consent.given_by.relationship",
        )
