"""Alert lifecycle: create (consented, geofenced), read, list, resolve.

Each state change writes the alert, its audit event, the per-operator delivery
records and the outbox event in one transaction, then wakes the relay.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from geofence import GeofenceEngine, Resolution
from schemas.alerts import (
    AlertCreate,
    AlertList,
    AlertRead,
    AlertResolve,
    AlertStatus,
    ConsentChannel,
    DeliveryStatus,
    OperatorDeliveryRead,
)
from schemas.areas import GeofencePreview, GeofencePreviewRequest, ResolvedArea, TargetArea
from schemas.events import (
    AlertContent,
    AlertRetracted,
    AreaSummary,
    DispatchRequested,
    DistrictSummary,
    OperatorTargeting,
)
from services import audit, outbox, targeting
from services.consent import CLOCK_SKEW, check_consent, check_subject
from services.db.bulk import insert_all
from services.db.engine import Database
from services.db.models import Alert, Base, ConsentRecord, Delivery, IdempotencyKey, OutboxEvent
from services.errors import Conflict, NotFound, ValidationFailed
from services.messaging.topics import Topics
from services.metrics import ALERTS_CREATED, ALERTS_RESOLVED
from services.outbox import PendingEvent
from services.outbox_listener import notify_in_transaction
from services.sms import render_sms

MAX_LAST_SEEN_AGE = timedelta(days=30)
TARGET_AREA: TypeAdapter[TargetArea] = TypeAdapter(TargetArea)
WEBHOOK_ID_NAMESPACE = uuid.UUID("6f1c0c52-5a4e-4d8a-9d0f-2c7f3c1b9e11")


def webhook_id_for(event_id: str, operator: str) -> str:
    """Stable across retries and restarts, so an operator can deduplicate."""
    return f"msg_{uuid.uuid5(WEBHOOK_ID_NAMESPACE, f'{event_id}:{operator}').hex}"


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    alert: AlertRead
    replayed: bool


@dataclass(frozen=True, slots=True)
class ResolveOutcome:
    alert: AlertRead
    already_resolved: bool


class AlertService:
    """The alert lifecycle; built once per process by the composition root."""

    def __init__(
        self,
        db: Database,
        geofence: GeofenceEngine,
        topics: Topics,
        operators: Sequence[str],
        on_commit: Callable[[Sequence[PendingEvent]], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._geofence = geofence
        self._topics = topics
        self._operators = list(operators)
        self._on_commit = on_commit
        self._clock = clock

    async def create(
        self, client_id: str, body: AlertCreate, idempotency_key: str | None
    ) -> CreateOutcome:
        now = self._clock()
        request_hash = ""
        if idempotency_key is not None:
            request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
            replay = await self._replay(client_id, idempotency_key, request_hash)
            if replay is not None:
                return CreateOutcome(alert=replay, replayed=True)
        self._check_rules(body, now)
        resolution = self._resolve_area(body, now)
        try:
            created, events = await self._insert(
                client_id, body, resolution, idempotency_key, request_hash, now
            )
        except IntegrityError:
            # A concurrent request with the same idempotency key won the race.
            if idempotency_key is None:
                raise
            replay = await self._replay(client_id, idempotency_key, request_hash)
            if replay is None:
                raise
            return CreateOutcome(alert=replay, replayed=True)
        self._on_commit(events)
        ALERTS_CREATED.labels(body.subject.category.value).inc()
        return CreateOutcome(alert=created, replayed=False)

    async def get(self, alert_id: str) -> AlertRead:
        async with self._db.read() as session:
            alert = await session.get(Alert, _parse_id(alert_id))
            if alert is None:
                raise NotFound(f"no alert with id {alert_id}")
            deliveries = await _deliveries_of(session, [alert.id])
            channels = await _consent_channels_of(session, [alert.id])
        return _to_read(alert, deliveries.get(alert.id, []), channels.get(alert.id, []))

    async def area_geojson(self, alert_id: str) -> dict[str, Any]:
        """The alert's target, broadcast polygon and districts as a FeatureCollection."""
        async with self._db.read() as session:
            alert = await session.get(Alert, _parse_id(alert_id))
            if alert is None:
                raise NotFound(f"no alert with id {alert_id}")
        area = ResolvedArea.model_validate(alert.area["resolved"])
        return targeting.area_feature_collection(
            self._geofence, alert.id, alert.area["target"], area
        )

    def preview(self, request: GeofencePreviewRequest) -> GeofencePreview:
        """The same resolution an alert would get, without creating one."""
        return targeting.preview(self._geofence, request, self._clock())

    async def list_alerts(
        self, status: AlertStatus | None, limit: int, cursor: str | None
    ) -> AlertList:
        query = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(Alert.status == status.value)
        if cursor is not None:
            created_at, last_id = _decode_cursor(cursor)
            query = query.where(tuple_(Alert.created_at, Alert.id) < (created_at, last_id))
        async with self._db.read() as session:
            alerts = list((await session.scalars(query)).all())
            page, more = alerts[:limit], len(alerts) > limit
            ids = [a.id for a in page]
            deliveries = await _deliveries_of(session, ids)
            channels = await _consent_channels_of(session, ids)
        items = [_to_read(a, deliveries.get(a.id, []), channels.get(a.id, [])) for a in page]
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return AlertList(items=items, next_cursor=next_cursor)

    async def resolve(self, client_id: str, alert_id: str, body: AlertResolve) -> ResolveOutcome:
        now = self._clock()
        key = _parse_id(alert_id)
        events: list[PendingEvent] = []
        async with self._db.write() as session:
            alert = await session.get(Alert, key, with_for_update=True)
            if alert is None:
                raise NotFound(f"no alert with id {alert_id}")
            already = alert.status == AlertStatus.resolved.value
            if not already:
                events = await self._retract(session, alert, body.reason.value, client_id, now)
        if not already:
            self._on_commit(events)
            ALERTS_RESOLVED.labels(body.reason.value).inc()
        return ResolveOutcome(alert=await self.get(alert_id), already_resolved=already)

    # -- internals -------------------------------------------------------------

    def _check_rules(self, body: AlertCreate, now: datetime) -> None:
        check_subject(body.subject)
        check_consent(body.consent, body.subject, now)
        if body.last_seen.at > now + CLOCK_SKEW:
            raise ValidationFailed("last_seen.at is in the future", field="last_seen.at")
        if body.last_seen.at < now - MAX_LAST_SEEN_AGE:
            raise ValidationFailed("last_seen.at is more than 30 days ago", field="last_seen.at")

    def _resolve_area(self, body: AlertCreate, now: datetime) -> Resolution:
        seen = body.last_seen
        origin = targeting.Origin(seen.lat, seen.lon, seen.at)
        return targeting.resolve(self._geofence, body.target_area, origin, now)

    async def _replay(self, client_id: str, key: str, request_hash: str) -> AlertRead | None:
        async with self._db.read() as session:
            row = await session.get(IdempotencyKey, (client_id, key))
        if row is None:
            return None
        if row.request_sha256 != request_hash:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return await self.get(row.alert_id)

    async def _insert(
        self,
        client_id: str,
        body: AlertCreate,
        resolution: Resolution,
        idempotency_key: str | None,
        request_hash: str,
        now: datetime,
    ) -> tuple[AlertRead, list[PendingEvent]]:
        """Write every row of a new alert in one transaction; return it and its events."""
        alert_id = str(uuid.uuid4())
        subject, seen, consent = body.subject, body.last_seen, body.consent
        sms_text = render_sms(
            subject.category, subject.age, subject.description, seen.place, seen.at
        )
        area = targeting.resolved_area(resolution)
        alert = Alert(
            id=alert_id,
            client_id=client_id,
            case_reference=body.case_reference,
            status=AlertStatus.active.value,
            version=1,
            category=subject.category.value,
            subject_age=subject.age,
            subject_name=subject.name,
            description=subject.description,
            photo_url=str(subject.photo_url) if subject.photo_url else None,
            last_seen_lat=seen.lat,
            last_seen_lon=seen.lon,
            last_seen_at=seen.at,
            last_seen_place=seen.place,
            target=body.target_area.model_dump(mode="json"),
            area={
                "resolved": area.model_dump(mode="json"),
                "target": dict(resolution.target_geojson),
            },
            languages={"codes": body.languages},
            sms_text=sms_text,
            created_at=now,
            resolved_at=None,
            resolution_reason=None,
        )
        content = AlertContent(
            category=subject.category.value,
            age=subject.age,
            description=subject.description,
            photo_url=alert.photo_url,
            last_seen_lat=seen.lat,
            last_seen_lon=seen.lon,
            last_seen_at=seen.at,
            last_seen_place=seen.place,
            sms_text=sms_text,
            languages=body.languages,
        )
        summary = AreaSummary(
            polygon=dict(resolution.broadcast.geometry),
            area_km2=resolution.area_km2,
            districts=[
                DistrictSummary(code=d.code, name=d.name, province_code=d.province_code)
                for d in resolution.districts
            ],
        )
        cells = {o.operator: o for o in resolution.operators}
        rows: list[Base] = [
            alert,
            ConsentRecord(
                alert_id=alert_id,
                giver_relationship=consent.given_by.relationship.value,
                giver_name=consent.given_by.name,
                given_at=consent.given_at,
                channels={"channels": [c.value for c in consent.channels]},
                evidence_reference=consent.evidence_reference,
                recorded_at=now,
            ),
        ]
        if idempotency_key is not None:
            rows.append(
                IdempotencyKey(
                    client_id=client_id,
                    key=idempotency_key,
                    request_sha256=request_hash,
                    alert_id=alert_id,
                    created_at=now,
                )
            )
        rows.append(
            audit.entry(
                alert_id=alert_id,
                actor=client_id,
                action="alert.created",
                now=now,
                details={
                    "operators": self._operators,
                    "district_count": len(area.districts),
                    "area_km2": area.area_km2,
                },
            )
        )
        deliveries: list[Delivery] = []
        for operator in self._operators:
            # One dispatch event per operator: each carries only that operator's cells.
            event_id = str(uuid.uuid4())
            operator_cells = cells.get(operator)
            event = DispatchRequested(
                event_id=uuid.UUID(event_id),
                alert_id=uuid.UUID(alert_id),
                alert_version=1,
                occurred_at=now,
                content=content,
                area=summary,
                targeting=None
                if operator_cells is None
                else OperatorTargeting(
                    operator=operator,
                    mcc=operator_cells.mcc,
                    mnc=operator_cells.mnc,
                    cell_ids=list(operator_cells.cell_ids),
                ),
                operators=[operator],
            )
            deliveries += self._deliveries(alert_id, "dispatch", 1, event_id, now, [operator])
            rows.append(
                outbox.event_row(
                    event_id=event_id,
                    alert_id=alert_id,
                    event_type=event.type,
                    topic=self._topics.alert_events,
                    event=event,
                    now=now,
                )
            )
        rows[2:2] = deliveries
        async with self._db.write() as session:
            await insert_all(session, rows)
            await notify_in_transaction(session)
        events = [PendingEvent.of(row) for row in rows if isinstance(row, OutboxEvent)]
        return _to_read(alert, deliveries, [c.value for c in consent.channels]), events

    async def _retract(
        self, session: AsyncSession, alert: Alert, reason: str, client_id: str, now: datetime
    ) -> list[PendingEvent]:
        alert.status = AlertStatus.resolved.value
        alert.version += 1
        alert.resolved_at = now
        alert.resolution_reason = reason
        event_id = str(uuid.uuid4())
        event = AlertRetracted(
            event_id=uuid.UUID(event_id),
            alert_id=uuid.UUID(alert.id),
            alert_version=alert.version,
            occurred_at=now,
            reason=reason,
            operators=self._operators,
        )
        row = outbox.event_row(
            event_id=event_id,
            alert_id=alert.id,
            event_type=event.type,
            topic=self._topics.alert_events,
            event=event,
            now=now,
        )
        rows: list[Base] = [
            *self._deliveries(alert.id, "retraction", alert.version, event_id, now),
            audit.entry(
                alert_id=alert.id,
                actor=client_id,
                action="alert.resolved",
                now=now,
                details={"reason": reason, "version": alert.version},
            ),
            row,
        ]
        await session.flush()
        await insert_all(session, rows)
        await notify_in_transaction(session)
        return [PendingEvent.of(row)]

    def _deliveries(
        self,
        alert_id: str,
        kind: str,
        version: int,
        event_id: str,
        now: datetime,
        operators: list[str] | None = None,
    ) -> list[Delivery]:
        """One pending delivery per operator: the record of what each is owed."""
        return [
            Delivery(
                alert_id=alert_id,
                operator=operator,
                kind=kind,
                alert_version=version,
                event_id=event_id,
                webhook_id=webhook_id_for(event_id, operator),
                status=DeliveryStatus.pending.value,
                attempts=0,
                last_status_code=None,
                last_error=None,
                accepted_at=now,
                delivered_at=None,
            )
            for operator in (self._operators if operators is None else operators)
        ]


def _parse_id(alert_id: str) -> str:
    try:
        return str(uuid.UUID(alert_id))
    except ValueError:
        raise NotFound(f"no alert with id {alert_id}") from None


async def _deliveries_of(session: AsyncSession, ids: list[str]) -> dict[str, list[Delivery]]:
    if not ids:
        return {}
    rows = await session.scalars(
        select(Delivery).where(Delivery.alert_id.in_(ids)).order_by(Delivery.id)
    )
    grouped: dict[str, list[Delivery]] = {}
    for row in rows:
        grouped.setdefault(row.alert_id, []).append(row)
    return grouped


async def _consent_channels_of(session: AsyncSession, ids: list[str]) -> dict[str, list[str]]:
    if not ids:
        return {}
    rows = await session.execute(
        select(ConsentRecord.alert_id, ConsentRecord.channels).where(
            ConsentRecord.alert_id.in_(ids)
        )
    )
    return {alert_id: list(channels.get("channels", [])) for alert_id, channels in rows}


def _to_read(alert: Alert, deliveries: list[Delivery], channels: list[str]) -> AlertRead:
    return AlertRead(
        id=uuid.UUID(alert.id),
        case_reference=alert.case_reference,
        status=AlertStatus(alert.status),
        version=alert.version,
        category=alert.category,
        created_at=alert.created_at,
        resolved_at=alert.resolved_at,
        resolution_reason=alert.resolution_reason,
        target_area=TARGET_AREA.validate_python(alert.target),
        area=ResolvedArea.model_validate(alert.area["resolved"]),
        sms_text=alert.sms_text or "",
        languages=list(alert.languages.get("codes", [])),
        consent_channels=[ConsentChannel(c) for c in channels],
        deliveries=[
            OperatorDeliveryRead(
                operator=d.operator,
                kind=d.kind,
                status=DeliveryStatus(d.status),
                attempts=d.attempts,
                webhook_id=d.webhook_id,
                last_status_code=d.last_status_code,
                delivered_at=d.delivered_at,
            )
            for d in deliveries
        ],
    )


def _encode_cursor(alert: Alert) -> str:
    raw = f"{alert.created_at.isoformat()}|{alert.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), str(uuid.UUID(last_id))
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("cursor is not valid", field="cursor") from None
