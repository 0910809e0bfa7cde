"""ORM models. Personal data lives only in ``alerts`` and ``consents``; audit rows never hold it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC on every engine: SQLite would otherwise drop the offset silently."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Alert(Base):
    __tablename__ = "alerts"
    # Housekeeping reads only what is left to do, never the whole history (see
    # migrations/versions/0003_housekeeping_indexes.py).
    __table_args__ = (
        Index("ix_alerts_status_fully_retracted_at", "status", "fully_retracted_at"),
        Index("ix_alerts_erased_at_resolved_at", "erased_at", "resolved_at"),
        Index("ix_alerts_resolution_reason_erased_at", "resolution_reason", "erased_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    case_reference: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    subject_age: Mapped[int] = mapped_column(Integer)
    subject_name: Mapped[str | None] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    photo_url: Mapped[str | None] = mapped_column(Text)
    last_seen_lat: Mapped[float]
    last_seen_lon: Mapped[float]
    last_seen_at: Mapped[datetime]
    last_seen_place: Mapped[str | None] = mapped_column(String(200))
    target: Mapped[dict[str, Any]]
    area: Mapped[dict[str, Any]]
    languages: Mapped[dict[str, Any]]
    sms_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolution_reason: Mapped[str | None] = mapped_column(String(32))
    # Lifecycle (issue 5): when it lapses unless renewed, last change, when every
    # operator confirmed the retraction, and when its personal data was erased.
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime | None]
    fully_retracted_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]


class ConsentRecord(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    giver_relationship: Mapped[str] = mapped_column(String(32))
    giver_name: Mapped[str | None] = mapped_column(String(120))
    given_at: Mapped[datetime]
    channels: Mapped[dict[str, Any]]
    evidence_reference: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"))
    created_at: Mapped[datetime]


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action", "action"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    details: Mapped[dict[str, Any]]


class OutboxEvent(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "published_at", "suppressed_at", "id"),
        Index("ix_outbox_alert_id", "alert_id"),
        Index(
            "ix_outbox_suppressed_at",
            "suppressed_at",
            sqlite_where=text("suppressed_at IS NOT NULL"),
            postgresql_where=text("suppressed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    alert_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    # Set when a retraction decided this event must never be published.
    suppressed_at: Mapped[datetime | None]


class Delivery(Base):
    """What one operator is owed for one alert message, and what happened to it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "operator", "kind", "alert_version"),
        Index("ix_deliveries_status_kind_confirmed_at", "status", "kind", "confirmed_at"),
        # An alert's deliveries by state (a resolve's suppression, "delivered to this
        # operator?"): with the alert id alone SQLite took the (status, kind) index
        # above for those, and read every pending delivery of every alert.
        Index("ix_deliveries_alert_id_status_kind", "alert_id", "status", "kind"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"))
    operator: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    alert_version: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(36))
    webhook_id: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    accepted_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    # Last time a worker touched it: the reconciler re-publishes stale owed deliveries.
    updated_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    dead_lettered_at: Mapped[datetime | None]
    # A retraction is confirmed by a 2xx and, when the operator sends one, a receipt.
    confirmed_at: Mapped[datetime | None]
    receipt_status: Mapped[str | None] = mapped_column(String(16))
    recipients: Mapped[int | None]


class DeliveryAttempt(Base):
    """One try at delivering one message: the timeline the delivery endpoint shows."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(80), index=True)
    alert_id: Mapped[str] = mapped_column(String(36), index=True)
    operator: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(24))
    status_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(200))


class OperatorReceipt(Base):
    """What an operator reported about one delivery. Deduplicated on (operator, receipt_id)."""

    __tablename__ = "operator_receipts"
    __table_args__ = (UniqueConstraint("operator", "receipt_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    operator: Mapped[str] = mapped_column(String(64))
    receipt_id: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(80), index=True)
    alert_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16))
    recipients: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(200))
    reported_at: Mapped[datetime]
    received_at: Mapped[datetime]
    body_sha256: Mapped[str] = mapped_column(String(64))


class LinkTest(Base):
    """One periodic signed test message to one operator, and how it went."""

    __tablename__ = "link_tests"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    operator: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    webhook_id: Mapped[str] = mapped_column(String(80), unique=True)
    requested_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None]
    latency_ms: Mapped[float | None]
    reason: Mapped[str | None] = mapped_column(String(200))


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, for statements built once on the table (bulk
    updates without the ORM's bulk-update path); typed, unlike ``__table__``."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
