"""KVKK erasure: an ended alert keeps its figures, not the person.

An alert is erased once it ended more than ``erasure_retention_days`` ago (0: at the
next run), or - after a consent withdrawal, whether at the end or later - as soon as
its retraction is fully confirmed, whatever the retention.

What goes, in one transaction per alert:
- alerts: subject name, description, photo reference, last-seen place and SMS text
  (set to null); the case reference (replaced by ``[erased]``: it links to the case
  file); the last-seen point rounded to 2 decimals (about 1 km); the target area and
  broadcast polygon (they are drawn around the last-seen point, so they would give the
  point back): the target becomes the districts it covered, the polygons empty
  geometry collections;
- consents: the giver's name (null) and the evidence reference (``[erased]``);
- outbox: the payloads of the alert's dispatch and update events (they carry the
  content) become a minimal JSON with ids only. Retraction payloads hold no personal
  data and stay, so an unpublished retraction is still published.

What stays, for statistics: category, age, created/resolved/expiry times, end reason,
district and province codes and shares, cell counts, area size, every delivery and
attempt row, and the audit trail (which never holds personal data). The erasure is
audited as ``alert.erased`` with the field names, never their values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from schemas.alerts import AlertStatus, ResolutionReason
from services import audit
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Alert, AuditEvent, ConsentRecord, OutboxEvent
from services.lifecycle import CONTENT_EVENT_TYPES
from services.metrics import ALERTS_ERASED

ERASED = "[erased]"
COORDINATE_DECIMALS = 2
EMPTY_GEOMETRY: dict[str, Any] = {"type": "GeometryCollection", "geometries": []}
MAX_ADMIN_CODES = 100
ALERT_FIELDS = (
    "subject_name",
    "description",
    "photo_url",
    "last_seen_place",
    "sms_text",
    "case_reference",
    "last_seen_lat",
    "last_seen_lon",
    "target",
    "area.geometry",
)
CONSENT_FIELDS = ("giver_name", "evidence_reference")


@dataclass(frozen=True, slots=True)
class Erased:
    alert_id: str
    cause: str  # "retention" | "consent_withdrawn"
    outbox_events: int


async def erase_due(
    db: Database, retention_days: float, now: datetime, limit: int = 200
) -> list[Erased]:
    """Erase every alert that is due; one transaction per alert, so one failure stops
    nothing else. Returns what was erased."""
    erased: list[Erased] = []
    for alert_id, cause in await due(db, retention_days, now, limit):
        done = await erase_alert(db, alert_id, cause, now)
        if done is not None:
            erased.append(done)
    return erased


async def due(
    db: Database, retention_days: float, now: datetime, limit: int = 200
) -> list[tuple[str, str]]:
    """(alert id, cause) of ended, not yet erased alerts past retention or withdrawn,
    oldest end first.

    Two queries, each reading only candidates (indexes of migration 0003): ended
    alerts past retention, in end order from the (erased_at, resolved_at) index, and
    alerts whose family withdrew consent (by resolution reason, or by the audit event
    a later withdrawal leaves) once fully retracted. One query with the OR read every
    ended alert of the retention period on each call.
    """
    cutoff = now - timedelta(days=retention_days)
    not_erased = (Alert.status == AlertStatus.resolved.value, Alert.erased_at.is_(None))
    columns = (Alert.id, Alert.resolved_at)
    past_retention = (
        select(*columns)
        .where(*not_erased, Alert.resolved_at <= cutoff)
        .order_by(Alert.resolved_at)
        .limit(limit)
    )
    # Only the reason and erased_at in SQL (the index's columns: with the status and
    # fully_retracted_at there too the planner took another index and read every ended
    # alert); a withdrawal ends the alert, and the retraction is checked below.
    withdrawn_at_end = select(*columns, Alert.fully_retracted_at).where(
        Alert.resolution_reason == ResolutionReason.consent_withdrawn.value,
        Alert.erased_at.is_(None),
    )
    withdrawn_later = select(AuditEvent.alert_id).where(AuditEvent.action == "consent.withdrawn")
    async with db.read() as session:
        old = (await session.execute(past_retention)).all()
        gone = list((await session.execute(withdrawn_at_end)).all())
        later = list(set(await session.scalars(withdrawn_later)))
        if later:
            gone += (
                await session.execute(
                    select(*columns, Alert.fully_retracted_at).where(
                        Alert.id.in_(later), *not_erased
                    )
                )
            ).all()
    causes: dict[str, tuple[datetime | None, str]] = {}
    for alert_id, resolved_at, fully_retracted_at in gone:
        if fully_retracted_at is not None:  # erased once every operator confirmed
            causes[alert_id] = (resolved_at, ResolutionReason.consent_withdrawn.value)
    for alert_id, resolved_at in old:  # past retention: that is the cause, as before
        causes[alert_id] = (resolved_at, "retention")
    ordered = sorted(causes.items(), key=lambda item: (item[1][0] or now, item[0]))
    return [(alert_id, cause) for alert_id, (_, cause) in ordered[:limit]]


async def erase_alert(db: Database, alert_id: str, cause: str, now: datetime) -> Erased | None:
    async with db.write() as session:
        alert = await session.get(Alert, alert_id, with_for_update=True)
        if alert is None or alert.erased_at is not None:
            return None
        if alert.status != AlertStatus.resolved.value:
            return None
        _erase_row(alert, now)
        await session.execute(
            update(ConsentRecord)
            .where(ConsentRecord.alert_id == alert_id)
            .values(giver_name=None, evidence_reference=ERASED)
            .execution_options(synchronize_session=False)
        )
        events = (
            await session.execute(
                select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.event_type).where(
                    OutboxEvent.alert_id == alert_id,
                    OutboxEvent.event_type.in_(CONTENT_EVENT_TYPES),
                )
            )
        ).all()
        for row_id, event_id, event_type in events:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == row_id)
                .values(payload=_minimal_payload(event_type, event_id, alert_id))
                .execution_options(synchronize_session=False)
            )
        await insert_all(
            session,
            [
                audit.entry(
                    alert_id=alert_id,
                    actor="housekeeping",
                    action="alert.erased",
                    now=now,
                    details={
                        "cause": cause,
                        "alert_fields": list(ALERT_FIELDS),
                        "consent_fields": list(CONSENT_FIELDS),
                        "outbox_payloads": len(events),
                    },
                )
            ],
        )
    ALERTS_ERASED.labels(cause).inc()
    return Erased(alert_id=alert_id, cause=cause, outbox_events=len(events))


def _erase_row(alert: Alert, now: datetime) -> None:
    alert.subject_name = None
    alert.description = None
    alert.photo_url = None
    alert.last_seen_place = None
    alert.sms_text = None
    alert.case_reference = ERASED
    alert.last_seen_lat = round(alert.last_seen_lat, COORDINATE_DECIMALS)
    alert.last_seen_lon = round(alert.last_seen_lon, COORDINATE_DECIMALS)
    resolved: dict[str, Any] = dict(alert.area.get("resolved", {}))
    alert.target = _coarse_target(resolved)
    if "broadcast" in resolved:
        resolved["broadcast"] = {**resolved["broadcast"], "geometry": EMPTY_GEOMETRY}
    alert.area = {"resolved": resolved, "target": EMPTY_GEOMETRY}
    alert.erased_at = now


def _coarse_target(resolved: dict[str, Any]) -> dict[str, Any]:
    """The districts the area covered (the provinces when there are too many): still a
    valid target form for reading, and no finer than the statistics."""
    codes = [d["code"] for d in resolved.get("districts", [])]
    if not codes or len(codes) > MAX_ADMIN_CODES:
        codes = [p["code"] for p in resolved.get("provinces", [])][:MAX_ADMIN_CODES]
    return {"type": "admin_area", "codes": codes or ["TUR000"]}


def _minimal_payload(event_type: str, event_id: str, alert_id: str) -> str:
    return json.dumps(
        {"type": event_type, "event_id": event_id, "alert_id": alert_id, "erased": True}
    )
