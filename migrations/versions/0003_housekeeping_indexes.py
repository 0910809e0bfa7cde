"""housekeeping indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:45:00

Housekeeping runs every second in the API's process, the reconciler every 5 s; their
queries read every ended alert (and, for the late-publish check, every outbox row
past its payload), so one round cost 7 ms at 500 ended alerts and 64 ms at 5,000 on
SQLite, where they run on the event loop (bench/housekeeping.py, bench/RESULTS.md
"Session 13"). These indexes let each query read only what is left to do:

- outbox (alert_id): an alert's events (a resolve's suppression of unsent
  dispatches, erasure);
- outbox (suppressed_at), partial: suppressions of the last day (late-publish
  repair);
- outbox (published_at, suppressed_at, id), replacing (published_at, id): the
  relay's sweep of events still to publish, without the suppressed ones;
- deliveries (status, kind, confirmed_at): deliveries still owed (the reconciler,
  every 5 s, inside a write transaction: on SQLite it held the write lock while
  reading them all) and retractions not yet confirmed;
- deliveries (alert_id, status, kind), replacing (alert_id): an alert's deliveries
  by state (with the alert id alone, SQLite took the (status, kind) index for a
  resolve's suppression and read every pending delivery of every alert);
- alerts (status, fully_retracted_at), replacing (status): ended alerts not yet
  fully retracted;
- alerts (erased_at, resolved_at), (resolution_reason, erased_at) and audit_events
  (action): alerts due for erasure (past retention, or consent withdrawn).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEXES: list[tuple[str, str, list[str]]] = [
    ("outbox", "ix_outbox_alert_id", ["alert_id"]),
    ("deliveries", "ix_deliveries_status_kind_confirmed_at", ["status", "kind", "confirmed_at"]),
    ("alerts", "ix_alerts_status_fully_retracted_at", ["status", "fully_retracted_at"]),
    ("alerts", "ix_alerts_erased_at_resolved_at", ["erased_at", "resolved_at"]),
    ("alerts", "ix_alerts_resolution_reason_erased_at", ["resolution_reason", "erased_at"]),
    ("audit_events", "ix_audit_events_action", ["action"]),
]
_SUPPRESSED = "suppressed_at IS NOT NULL"


def upgrade() -> None:
    for table, name, columns in _INDEXES:
        op.create_index(name, table, columns, unique=False)
    # Partial: only suppressed events are in it, so an insert or a published mark
    # (nearly every row) costs it nothing.
    op.create_index(
        "ix_outbox_suppressed_at",
        "outbox",
        ["suppressed_at"],
        sqlite_where=sa.text(_SUPPRESSED),
        postgresql_where=sa.text(_SUPPRESSED),
    )
    # (status, fully_retracted_at) serves every query on the status alone.
    op.drop_index("ix_alerts_status", table_name="alerts")
    # An alert's deliveries by state: with (alert_id) alone, SQLite preferred the
    # (status, kind) index for a resolve's suppression of its alert's pending
    # dispatches, and read every pending delivery of every alert.
    op.drop_index("ix_deliveries_alert_id", table_name="deliveries")
    op.create_index(
        "ix_deliveries_alert_id_status_kind", "deliveries", ["alert_id", "status", "kind"]
    )
    # The relay's sweep reads unpublished, unsuppressed events in id order; a
    # suppressed event is never published, so on (published_at, id) alone the sweep
    # read every suppression ever made, once a second.
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "suppressed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "id"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.drop_index("ix_deliveries_alert_id_status_kind", table_name="deliveries")
    op.create_index("ix_deliveries_alert_id", "deliveries", ["alert_id"])
    op.drop_index("ix_outbox_suppressed_at", table_name="outbox")
    for table, name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
