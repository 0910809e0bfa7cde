"""delivery reliability and alert lifecycle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:01:50.137712
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("webhook_id", sa.String(length=80), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_alert_id"), ["alert_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_webhook_id"), ["webhook_id"], unique=False
        )

    op.create_table(
        "link_tests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("webhook_id", sa.String(length=80), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        sa.UniqueConstraint("webhook_id"),
    )
    with op.batch_alter_table("link_tests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_tests_operator"), ["operator"], unique=False)

    op.create_table(
        "operator_receipts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=100), nullable=False),
        sa.Column("webhook_id", sa.String(length=80), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operator", "receipt_id"),
    )
    with op.batch_alter_table("operator_receipts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_receipts_alert_id"), ["alert_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_operator_receipts_webhook_id"), ["webhook_id"], unique=False
        )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("fully_retracted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_expires_at"), ["expires_at"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("receipt_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("recipients", sa.Integer(), nullable=True))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("suppressed_at")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("recipients")
        batch_op.drop_column("receipt_status")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("dead_lettered_at")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("updated_at")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_expires_at"))
        batch_op.drop_column("erased_at")
        batch_op.drop_column("fully_retracted_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("expires_at")

    with op.batch_alter_table("operator_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_receipts_webhook_id"))
        batch_op.drop_index(batch_op.f("ix_operator_receipts_alert_id"))

    op.drop_table("operator_receipts")
    with op.batch_alter_table("link_tests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_tests_operator"))

    op.drop_table("link_tests")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_webhook_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_alert_id"))

    op.drop_table("delivery_attempts")
