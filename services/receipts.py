"""Operator receipts: what an operator reports back about a delivery we made to it.

Who may report, checked in this order:
1. a bearer receipt key (only its SHA-256 is configured): none or unknown → 401;
2. the operator named in the path exists → else 404;
3. the key belongs to that operator → else 403 (an operator cannot report for another);
4. a Standard Webhooks signature over the exact body with that operator's signing
   secret(s), timestamped within 5 minutes → else 401 (bad or stale).

Identity and replay. A receipt's ``webhook-id`` header is its identity (unique
per operator). The same id with the same body (compared by SHA-256) is the same
receipt arriving again, say an operator's retry or a replay within the 5-minute
window: it is answered 200 with ``duplicate: true`` and changes nothing. The same
id with a different body is refused with 409: one id names one receipt, and a
signed second version is an operator bug we must not apply silently. A captured
request replayed after the window is stale (401).

Effects, in one transaction: the receipt row; on the delivery, the reported
status and recipient count, where "latest meaningful status wins" (see
``_supersedes``); on a retraction, ``retracted`` confirms it and ``failed``
withdraws the confirmation and is audited; on a link test, ``acknowledged``
stamps ``acknowledged_at``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.receipts import ReceiptAck, ReceiptReport, ReceiptStatus
from services import audit
from services.db.engine import Database
from services.db.models import Delivery, LinkTest, OperatorReceipt
from services.errors import Conflict, DomainError, NotFound, ValidationFailed
from services.metrics import OPERATOR_RECEIPTS, OPERATOR_RECEIPTS_REFUSED
from services.settings import OperatorConfig, hash_api_key
from services.webhook_signing import SignatureError, verify

log = logging.getLogger(__name__)

ReceiptParser = Callable[[bytes, str], ReceiptReport]
MAX_BODY_BYTES = 64 * 1024
MAX_RECEIPT_ID = 100

S = ReceiptStatus
#: Which statuses make sense for which message.
ALLOWED: dict[str, frozenset[ReceiptStatus]] = {
    "dispatch": frozenset({S.accepted, S.broadcasting, S.delivered, S.failed}),
    "update": frozenset({S.accepted, S.broadcasting, S.delivered, S.failed}),
    "retraction": frozenset({S.accepted, S.retracted, S.failed}),
    "link_test": frozenset({S.acknowledged}),
}
#: How far along a message is; a status never gives way to a less advanced one.
STAGE: dict[ReceiptStatus, int] = {
    S.accepted: 1,
    S.broadcasting: 2,
    S.delivered: 3,
    S.failed: 3,
    S.retracted: 3,
    S.acknowledged: 3,
}


class Unauthenticated(DomainError):
    """No valid receipt key, or no valid signature."""

    status_hint = 401


class Forbidden(DomainError):
    """A valid key of another operator."""

    status_hint = 403


class PayloadTooLarge(DomainError):
    status_hint = 413


@dataclass(frozen=True, slots=True)
class _Recorded:
    ack: ReceiptAck
    alert_id: str | None


class ReceiptService:
    """Authenticates, deduplicates and applies receipts; built once per API process."""

    def __init__(
        self,
        db: Database,
        operators: Mapping[str, OperatorConfig],
        parsers: Mapping[str, ReceiptParser],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._operators = dict(operators)
        self._parsers = dict(parsers)
        self._clock = clock
        self._owner_of_key = {
            config.receipt_key_sha256: name
            for name, config in operators.items()
            if config.receipt_key_sha256 is not None
        }

    async def record(
        self,
        operator: str,
        bearer: str | None,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
    ) -> ReceiptAck:
        """Authenticate one posted receipt and apply it (see the module docstring)."""
        label = operator if operator in self._operators else "unknown"
        try:
            receipt_id = self._authenticate(operator, bearer, headers, body)
            report = self._parse(operator, body, content_type)
            recorded = await self._store(operator, receipt_id, report, body)
        except DomainError as exc:
            OPERATOR_RECEIPTS_REFUSED.labels(label, type(exc).__name__).inc()
            raise
        ack = recorded.ack
        outcome = "duplicate" if ack.duplicate else "recorded"
        OPERATOR_RECEIPTS.labels(operator, ack.status.value, outcome).inc()
        log.info(
            "operator receipt",
            extra={
                "operator": operator,
                "receipt_id": receipt_id,
                "webhook_id": ack.webhook_id,
                "alert_id": recorded.alert_id,
                "status": ack.status.value,
                "outcome": outcome,
                "applied": ack.applied,
            },
        )
        return ack

    # -- steps -----------------------------------------------------------------

    def _authenticate(
        self, operator: str, bearer: str | None, headers: Mapping[str, str], body: bytes
    ) -> str:
        if not bearer:
            raise Unauthenticated("a bearer receipt key is required")
        owner = self._owner_of_key.get(hash_api_key(bearer))
        if owner is None:
            raise Unauthenticated("the receipt key is not valid")
        config = self._operators.get(operator)
        if config is None:
            raise NotFound(f"no operator named {operator}")
        if owner != operator:
            raise Forbidden(
                f"this key belongs to another operator and cannot report for {operator}"
            )
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a receipt body is at most {MAX_BODY_BYTES} bytes")
        try:
            receipt_id = verify(config.secrets(), headers, body)
        except SignatureError as exc:
            raise Unauthenticated(f"signature refused: {exc}") from exc
        if not 0 < len(receipt_id) <= MAX_RECEIPT_ID:
            raise ValidationFailed(
                f"webhook-id must be 1 to {MAX_RECEIPT_ID} characters", field="webhook-id"
            )
        return receipt_id

    def _parse(self, operator: str, body: bytes, content_type: str) -> ReceiptReport:
        parse = self._parsers.get(operator, _default_parser)
        try:
            return parse(body, content_type)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            fields = [".".join(str(p) for p in e["loc"]) or "body" for e in errors]
            detail = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, errors, strict=True))
            raise ValidationFailed(f"not a receipt: {detail}", field=fields[0]) from exc
        except ValueError as exc:
            raise ValidationFailed(f"not a receipt: {exc}", field="body") from exc

    async def _store(
        self, operator: str, receipt_id: str, report: ReceiptReport, body: bytes
    ) -> _Recorded:
        digest = hashlib.sha256(body).hexdigest()
        try:
            async with self._db.write() as session:
                earlier = await _receipt(session, operator, receipt_id)
                if earlier is not None:
                    return _repeat(earlier, digest, report)
                return await self._apply(session, operator, receipt_id, report, digest)
        except IntegrityError:
            # The same receipt raced itself in (PostgreSQL, two API processes).
            async with self._db.read() as session:
                earlier = await _receipt(session, operator, receipt_id)
            if earlier is None:
                raise
            return _repeat(earlier, digest, report)

    async def _apply(
        self,
        session: AsyncSession,
        operator: str,
        receipt_id: str,
        report: ReceiptReport,
        digest: str,
    ) -> _Recorded:
        now = self._clock()
        delivery = await session.scalar(
            select(Delivery).where(Delivery.webhook_id == report.webhook_id).with_for_update()
        )
        alert_id: str | None = None
        if delivery is not None and delivery.operator == operator:
            _check_applies(report.status, delivery.kind)
            alert_id = delivery.alert_id
            applied = await _apply_to_delivery(session, delivery, report, receipt_id, now)
        else:
            link_test = await session.scalar(
                select(LinkTest)
                .where(LinkTest.webhook_id == report.webhook_id, LinkTest.operator == operator)
                .with_for_update()
            )
            if link_test is None:
                raise NotFound(
                    f"no delivery or link test {report.webhook_id} for operator {operator}",
                    field="webhook_id",
                )
            _check_applies(report.status, "link_test")
            applied = link_test.acknowledged_at is None
            if applied:
                link_test.acknowledged_at = now
        session.add(
            OperatorReceipt(
                operator=operator,
                receipt_id=receipt_id,
                webhook_id=report.webhook_id,
                alert_id=alert_id,
                status=report.status.value,
                recipients=report.recipients,
                reason=report.reason,
                reported_at=report.reported_at,
                received_at=now,
                body_sha256=digest,
            )
        )
        await session.flush()
        ack = ReceiptAck(
            receipt_id=receipt_id,
            webhook_id=report.webhook_id,
            status=report.status,
            duplicate=False,
            applied=applied,
        )
        return _Recorded(ack, alert_id)


async def _apply_to_delivery(
    session: AsyncSession,
    delivery: Delivery,
    report: ReceiptReport,
    receipt_id: str,
    now: datetime,
) -> bool:
    if not await _supersedes(session, delivery, report):
        return False
    delivery.receipt_status = report.status.value
    if report.recipients is not None:
        delivery.recipients = report.recipients
    if delivery.kind == "retraction":
        if report.status is S.retracted and delivery.confirmed_at is None:
            delivery.confirmed_at = now
        elif report.status is S.failed:
            delivery.confirmed_at = None
    if report.status is S.failed:
        session.add(
            audit.entry(
                alert_id=delivery.alert_id,
                actor=f"operator:{delivery.operator}",
                action=f"{delivery.kind}.operator_failed",
                now=now,
                details={
                    "operator": delivery.operator,
                    "webhook_id": delivery.webhook_id,
                    "receipt_id": receipt_id,
                },
            )
        )
    return True


async def _supersedes(session: AsyncSession, delivery: Delivery, report: ReceiptReport) -> bool:
    """Latest meaningful status wins.

    A more advanced status always replaces a less advanced one, whatever order
    the receipts arrive in (``accepted`` after ``delivered`` changes nothing). Between
    equally advanced ones (``delivered`` versus ``failed``, or two ``delivered`` with
    new counts) the one the operator reported later wins.
    """
    current = delivery.receipt_status
    if current is None:
        return True
    new_stage, current_stage = STAGE[report.status], STAGE[ReceiptStatus(current)]
    if new_stage != current_stage:
        return new_stage > current_stage
    latest = await session.scalar(
        select(func.max(OperatorReceipt.reported_at)).where(
            OperatorReceipt.operator == delivery.operator,
            OperatorReceipt.webhook_id == delivery.webhook_id,
            OperatorReceipt.status == current,
        )
    )
    return latest is None or report.reported_at >= latest


def _check_applies(status: ReceiptStatus, kind: str) -> None:
    allowed = ALLOWED.get(kind, frozenset())
    if status not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        label = kind.replace("_", " ")
        raise ValidationFailed(
            f"status {status.value} does not apply to a {label} (allowed: {names})",
            field="status",
        )


async def _receipt(session: AsyncSession, operator: str, receipt_id: str) -> OperatorReceipt | None:
    found: OperatorReceipt | None = await session.scalar(
        select(OperatorReceipt).where(
            OperatorReceipt.operator == operator, OperatorReceipt.receipt_id == receipt_id
        )
    )
    return found


def _repeat(earlier: OperatorReceipt, digest: str, report: ReceiptReport) -> _Recorded:
    if earlier.body_sha256 != digest:
        raise Conflict(
            f"receipt {earlier.receipt_id} was already recorded with a different body; "
            "a new receipt needs a new webhook-id"
        )
    ack = ReceiptAck(
        receipt_id=earlier.receipt_id,
        webhook_id=earlier.webhook_id,
        status=report.status,
        duplicate=True,
        applied=False,
    )
    return _Recorded(ack, earlier.alert_id)


def _default_parser(body: bytes, content_type: str) -> ReceiptReport:
    del content_type
    return ReceiptReport.model_validate_json(body)
