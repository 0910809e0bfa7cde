"""Alert lifecycle: create (consented, geofenced), read, list, update, renew, end.

Each state change writes the alert, its audit event, the per-operator delivery
records and the outbox events in one transaction, then wakes the relay.

Every change after create gives the alert a new version and decides, per operator,
from the database alone (rules in ``services/lifecycle.py``):
- unsent dispatch/update messages of older versions are suppressed (never published);
- an end (resolve, consent withdrawal, expiry) retracts the alert on the retraction
  lane from every operator it may have reached; an operator whose only messages were
  suppressed never had it and gets no retraction either (its retraction delivery row is
  ``suppressed``, it is absent from the event's ``operators``). If such a message turns
  out to have been published after all (the relay took it a moment before), the
  late-publish check (``retract_late_publishes``, run by housekeeping) sends the
  retraction after all;
- an update or renewal sends AlertUpdated to operators holding the alert,
  DispatchRequested to operators newly covered (or whose earlier message was
  suppressed), and AlertRetracted (``area_narrowed``) to operators the area no longer
  covers, while the alert stays active.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from geofence import GeofenceEngine, Resolution
from schemas.alerts import (
    AlertCreate,
    AlertList,
    AlertPatch,
    AlertRead,
    AlertResolve,
    AlertStatistics,
    AlertStatus,
    ConsentChannel,
    DeliveryStatus,
    EndReason,
    OperatorDeliveryRead,
    ResolutionReason,
    SubjectCategory,
)
from schemas.areas import GeofencePreview, GeofencePreviewRequest, ResolvedArea, TargetArea
from schemas.events import (
    AlertRetracted,
    AlertUpdated,
    DispatchRequested,
    OperatorTargeting,
)
from services import audit, lifecycle, outbox, targeting
from services.consent import CLOCK_SKEW, check_consent, check_subject
from services.db.bulk import insert_all, insert_prepared, prepare_inserts
from services.db.engine import Database
from services.db.models import Alert, Base, ConsentRecord, Delivery, IdempotencyKey, OutboxEvent
from services.errors import Conflict, NotFound, ValidationFailed
from services.messaging.topics import Topics
from services.metrics import (
    ALERTS_CREATED,
    ALERTS_RESOLVED,
    ALERTS_UPDATED,
    LATE_PUBLISH_RETRACTIONS,
    OUTBOX_SUPPRESSED,
)
from services.outbox import PendingEvent
from services.outbox_listener import notify_in_transaction
from services.sms import render_sms
from services.statistics import alert_statistics

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


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    alert: AlertRead
    #: Names of the fields that changed (empty: the patch matched the alert, nothing sent).
    changed: list[str]


def _no_suppress(_event_ids: Iterable[str]) -> None:
    return None


async def _no_wait(_events: Sequence[PendingEvent]) -> None:
    return None


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
        on_suppress: Callable[[Iterable[str]], None] = _no_suppress,
        ttl: timedelta = timedelta(hours=72),
        until_published: Callable[[Sequence[PendingEvent]], Awaitable[None]] = _no_wait,
    ) -> None:
        """``on_suppress`` drops suppressed events from the relay's in-memory feed;
        ``ttl`` is how long an alert lives unless renewed; ``until_published`` waits
        (bounded) for the relay to have committed events acknowledged by the broker."""
        self._db = db
        self._geofence = geofence
        self._topics = topics
        self._operators = list(operators)
        self._on_commit = on_commit
        self._clock = clock
        self._on_suppress = on_suppress
        self._ttl = ttl
        self._until_published = until_published

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
            inserted, events = await self._insert(
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
        await self._hand_over(events)
        # Read only after the hand-over: the operators' dispatch must not wait for it.
        created = _to_read(*inserted)
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
        """End the alert (found, cancelled, consent withdrawn). A repeat changes nothing
        and sends nothing, except that a late consent withdrawal is recorded so the
        personal data is erased as soon as the retraction is confirmed."""
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
            elif (
                body.reason is ResolutionReason.consent_withdrawn
                and alert.resolution_reason != body.reason.value
            ):
                await insert_all(session, [_consent_withdrawn_entry(alert.id, client_id, now)])
        if not already:
            # Handed to the relay before the answer is read: the operators' retraction
            # must not wait for the case system's response body.
            await self._hand_over(events)
            ALERTS_RESOLVED.labels(body.reason.value).inc()
        async with self._db.read() as session:
            read = await _read_in(session, alert)
        return ResolveOutcome(alert=read, already_resolved=already)

    async def statistics(self) -> AlertStatistics:
        return await alert_statistics(self._db)

    async def update(self, client_id: str, alert_id: str, patch: AlertPatch) -> UpdateOutcome:
        """New content, area or languages for an active alert: a new version to operators."""
        now = self._clock()
        events: list[PendingEvent] = []
        async with self._db.write() as session:
            alert = await self._active(session, alert_id, "updated")
            changed = _changed_fields(alert, patch)
            if changed:
                if "target_area" in changed:
                    assert patch.target_area is not None
                    origin = targeting.Origin(
                        alert.last_seen_lat, alert.last_seen_lon, alert.last_seen_at
                    )
                    resolution = targeting.resolve(self._geofence, patch.target_area, origin, now)
                else:
                    resolution = self._stored_resolution(alert)
                _apply_patch(alert, patch, changed)
                events = await self._revise(
                    session,
                    alert,
                    resolution,
                    "target_area" in changed,
                    now,
                    client_id,
                    "alert.updated",
                    {"fields": changed},
                )
        if events:
            await self._hand_over(events)
            ALERTS_UPDATED.labels("update").inc()
        return UpdateOutcome(alert=await self.get(alert_id), changed=changed)

    async def renew(self, client_id: str, alert_id: str, hours: float | None) -> AlertRead:
        """Push the expiry back by ``hours`` (the TTL by default) from the later of now and
        the current expiry. Operators get the new expiry as an update: an operator that
        honours ``expires_at`` would otherwise stop broadcasting too early."""
        now = self._clock()
        extension = self._ttl if hours is None else timedelta(hours=hours)
        async with self._db.write() as session:
            alert = await self._active(session, alert_id, "renewed")
            alert.expires_at = max(alert.expires_at or now, now) + extension
            events = await self._revise(
                session,
                alert,
                self._stored_resolution(alert),
                False,
                now,
                client_id,
                "alert.renewed",
                {
                    "expires_at": alert.expires_at.isoformat(),
                    "hours": extension / timedelta(hours=1),
                },
            )
        await self._hand_over(events)
        ALERTS_UPDATED.labels("renewal").inc()
        return await self.get(alert_id)

    async def expirable(self, now: datetime, limit: int = 100) -> list[str]:
        """Active alerts whose expiry has passed, soonest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Alert.id)
                .where(
                    Alert.status == AlertStatus.active.value,
                    Alert.expires_at.is_not(None),
                    Alert.expires_at <= now,
                )
                .order_by(Alert.expires_at)
                .limit(limit)
            )
            return list(rows)

    async def expire(self, alert_id: str, now: datetime) -> bool:
        """End the alert with reason ``expired`` if it is still active and due (a renewal
        may have won the race); the same path as resolve."""
        events: list[PendingEvent] = []
        async with self._db.write() as session:
            alert = await session.get(Alert, _parse_id(alert_id), with_for_update=True)
            if (
                alert is None
                or alert.status != AlertStatus.active.value
                or alert.expires_at is None
                or alert.expires_at > now
            ):
                return False
            events = await self._retract(
                session, alert, EndReason.expired.value, "housekeeping", now
            )
        await self._hand_over(events)
        ALERTS_RESOLVED.labels(EndReason.expired.value).inc()
        return True

    async def retract_late_publishes(self, alert_id: str, now: datetime) -> list[str]:
        """Retract the alert from operators a suppressed message reached after all.

        Suppression decides from the database, but the relay may have taken the event
        from its in-memory feed a moment before and publishes it anyway; its
        "published" mark (or a worker's outcome) then shows up on the suppressed row.
        Such an operator gets the retraction it was left out of (an ended alert) or an
        ``area_narrowed`` one (an active alert that no longer has anything for it).
        Returns the operators retracted; idempotent.
        """
        async with self._db.read() as session:
            alert = await session.get(Alert, _parse_id(alert_id))
            if alert is None:
                return []
            if not self._late_owed(await lifecycle.messages_of(session, alert.id), alert):
                return []
        events: list[PendingEvent] = []
        async with self._db.write() as session:
            alert = await session.get(Alert, _parse_id(alert_id), with_for_update=True)
            assert alert is not None
            messages = await lifecycle.messages_of(session, alert.id)
            owed = self._late_owed(messages, alert)
            if not owed:
                return []
            ended = alert.status == AlertStatus.resolved.value
            reason = (alert.resolution_reason or "") if ended else lifecycle.AREA_NARROWED
            event_id, row = self._retraction(alert, now, reason, owed, partial=not ended)
            rows: list[Base] = [
                audit.entry(
                    alert_id=alert.id,
                    actor="housekeeping",
                    action="retraction.late_publish",
                    now=now,
                    details={"operators": owed, "version": alert.version, "reason": reason},
                ),
                row,
            ]
            if ended:
                for operator in owed:
                    await session.execute(
                        update(Delivery)
                        .where(
                            Delivery.alert_id == alert.id,
                            Delivery.operator == operator,
                            Delivery.kind == lifecycle.RETRACTION,
                            Delivery.alert_version == alert.version,
                        )
                        .values(
                            event_id=event_id,
                            webhook_id=webhook_id_for(event_id, operator),
                            status=DeliveryStatus.pending.value,
                            accepted_at=now,
                            updated_at=now,
                        )
                        .execution_options(synchronize_session=False)
                    )
            else:
                rows[1:1] = self._deliveries(
                    alert.id, lifecycle.RETRACTION, alert.version, event_id, now, owed
                )
            await insert_all(session, rows)
            await notify_in_transaction(session)
            events = [PendingEvent.of(row)]
        await self._hand_over(events)
        for operator in owed:
            LATE_PUBLISH_RETRACTIONS.labels(operator).inc()
        return owed

    # -- internals -------------------------------------------------------------

    async def _hand_over(self, events: Sequence[PendingEvent]) -> None:
        """Hand committed events to the relay and wait (bounded) until the broker has
        them, before this request goes on to build its answer: the relay shares this
        loop, where SQLite runs inline. Why, and the bound: ``OutboxFeed.until_published``.
        """
        self._on_commit(events)
        if events:
            await self._until_published(events)

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
    ) -> tuple[tuple[Alert, list[Delivery], list[str]], list[PendingEvent]]:
        """Write every row of a new alert in one transaction; return what its read model
        is built from (alert, deliveries, consent channels) and its events."""
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
            expires_at=now + self._ttl,
        )
        content = lifecycle.content_of(alert)
        summary = lifecycle.area_summary(resolution)
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
                expires_at=alert.expires_at,
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
        prepared = prepare_inserts(rows)  # outside the unit of work: see prepare_inserts
        async with self._db.write() as session:
            await insert_prepared(session, prepared)
            await notify_in_transaction(session)
        events = [PendingEvent.of(row) for row in rows if isinstance(row, OutboxEvent)]
        return (alert, deliveries, [c.value for c in consent.channels]), events

    async def _active(self, session: AsyncSession, alert_id: str, verb: str) -> Alert:
        alert = await session.get(Alert, _parse_id(alert_id), with_for_update=True)
        if alert is None:
            raise NotFound(f"no alert with id {alert_id}")
        if alert.status != AlertStatus.active.value:
            raise Conflict(f"the alert is {alert.status}; only an active alert can be {verb}")
        return alert

    def _stored_resolution(self, alert: Alert) -> Resolution:
        """The alert's current area, resolved again for its cells (they are not stored),
        as of when it was resolved: an auto area must not grow silently."""
        resolved_at = alert.area.get("resolved_at")
        at = datetime.fromisoformat(resolved_at) if resolved_at else alert.created_at
        origin = targeting.Origin(alert.last_seen_lat, alert.last_seen_lon, alert.last_seen_at)
        return targeting.resolve(
            self._geofence, TARGET_AREA.validate_python(alert.target), origin, at
        )

    def _late_owed(self, messages: Sequence[lifecycle.Message], alert: Alert) -> list[str]:
        ended = alert.status == AlertStatus.resolved.value
        return [
            operator
            for operator in self._operators
            if lifecycle.owes_late_retraction(messages, operator, alert.version, ended)
        ]

    async def _suppress_unsent(self, session: AsyncSession, alert_id: str, now: datetime) -> None:
        """Suppress in the database, then drop them from the feed at once: should this
        transaction roll back, the relay's sweep still publishes them (a short delay),
        whereas dropping only after the commit would leave the relay more time to take them."""
        suppressed = await lifecycle.suppress_unsent(session, alert_id, now)
        if suppressed:
            self._on_suppress(suppressed)
            OUTBOX_SUPPRESSED.inc(len(suppressed))

    async def _retract(
        self, session: AsyncSession, alert: Alert, reason: str, actor: str, now: datetime
    ) -> list[PendingEvent]:
        """End the alert: suppress what is unsent, retract from whoever may have it."""
        await self._suppress_unsent(session, alert.id, now)
        messages = await lifecycle.messages_of(session, alert.id)
        recipients = lifecycle.retraction_recipients(messages, self._operators)
        previous_sent = alert.updated_at or alert.created_at  # CAP `references` needs it
        alert.status = AlertStatus.resolved.value
        alert.version += 1
        alert.resolved_at = now
        alert.resolution_reason = reason
        alert.updated_at = now
        event_id, row = self._retraction(
            alert, now, reason, recipients, partial=False, previous_sent=previous_sent
        )
        deliveries = self._deliveries(alert.id, lifecycle.RETRACTION, alert.version, event_id, now)
        for delivery in deliveries:
            if delivery.operator not in recipients:
                delivery.status = DeliveryStatus.suppressed.value
        rows: list[Base] = [
            *deliveries,
            audit.entry(
                alert_id=alert.id,
                actor=actor,
                action="alert.expired" if reason == EndReason.expired.value else "alert.resolved",
                now=now,
                details={
                    "reason": reason,
                    "version": alert.version,
                    "operators": recipients,
                    "never_had_it": [o for o in self._operators if o not in recipients],
                },
            ),
            row,
        ]
        await session.flush()
        await insert_all(session, rows)
        await notify_in_transaction(session)
        return [PendingEvent.of(row)]

    async def _revise(
        self,
        session: AsyncSession,
        alert: Alert,
        resolution: Resolution,
        new_area: bool,
        now: datetime,
        actor: str,
        action: str,
        details: dict[str, Any],
    ) -> list[PendingEvent]:
        """Publish the alert's (already changed) row as a new version, per operator.

        With ``new_area`` the stored area is replaced by ``resolution`` here, after
        reading it, so "had cells" is decided against the area being replaced.
        """
        await self._suppress_unsent(session, alert.id, now)
        messages = await lifecycle.messages_of(session, alert.id)
        had = lifecycle.cell_counts(alert.area)
        if new_area:
            alert.area = {
                "resolved": targeting.resolved_area(resolution).model_dump(mode="json"),
                "target": dict(resolution.target_geojson),
                "resolved_at": now.isoformat(),
            }
        previous_sent = alert.updated_at or alert.created_at  # CAP `references` needs it
        alert.version += 1
        alert.updated_at = now
        content = lifecycle.content_of(alert)
        summary = lifecycle.area_summary(resolution)
        cells = {o.operator: o for o in resolution.operators}
        rows: list[Base] = []
        deliveries: list[Delivery] = []
        decided: dict[str, list[str]] = {a.value: [] for a in lifecycle.Action}
        for operator in self._operators:
            held = lifecycle.holds(messages, operator)
            own = cells.get(operator)
            decision = lifecycle.plan(held, had.get(operator, 0) > 0, bool(own and own.cell_ids))
            decided[decision.value].append(operator)
            if decision not in (lifecycle.Action.update, lifecycle.Action.dispatch):
                continue
            event_id = str(uuid.uuid4())
            event_targeting = (
                None
                if own is None
                else OperatorTargeting(
                    operator=operator, mcc=own.mcc, mnc=own.mnc, cell_ids=list(own.cell_ids)
                )
            )
            common: dict[str, Any] = {
                "event_id": uuid.UUID(event_id),
                "alert_id": uuid.UUID(alert.id),
                "alert_version": alert.version,
                "occurred_at": now,
                "content": content,
                "area": summary,
                "targeting": event_targeting,
                "operators": [operator],
                "expires_at": alert.expires_at,
            }
            event: AlertUpdated | DispatchRequested
            if decision is lifecycle.Action.update:
                assert held is not None
                event = AlertUpdated(
                    previous_version=held,
                    # The time of the version this operator holds is only known when it
                    # is the one just replaced.
                    previous_occurred_at=previous_sent if held == alert.version - 1 else None,
                    **common,
                )
            else:
                event = DispatchRequested(**common)
            kind = "update" if decision is lifecycle.Action.update else "dispatch"
            deliveries += self._deliveries(alert.id, kind, alert.version, event_id, now, [operator])
            rows.append(self._event_row(alert.id, event_id, event, self._topics.alert_events, now))
        narrowed = decided[lifecycle.Action.retract.value]
        if narrowed:
            event_id, row = self._retraction(
                alert,
                now,
                lifecycle.AREA_NARROWED,
                narrowed,
                partial=True,
                previous_sent=previous_sent,
            )
            deliveries += self._deliveries(
                alert.id, lifecycle.RETRACTION, alert.version, event_id, now, narrowed
            )
            rows.append(row)
        entry = audit.entry(
            alert_id=alert.id,
            actor=actor,
            action=action,
            now=now,
            details={**details, "version": alert.version, **decided},
        )
        await session.flush()
        await insert_all(session, [*deliveries, entry, *rows])
        await notify_in_transaction(session)
        return [PendingEvent.of(row) for row in rows if isinstance(row, OutboxEvent)]

    def _retraction(
        self,
        alert: Alert,
        now: datetime,
        reason: str,
        operators: list[str],
        *,
        partial: bool,
        previous_sent: datetime | None = None,
    ) -> tuple[str, OutboxEvent]:
        """An AlertRetracted at the alert's current version, as an outbox row for the
        retraction lane; returns its event id (the deliveries' key) and the row."""
        event_id = str(uuid.uuid4())
        event = AlertRetracted(
            event_id=uuid.UUID(event_id),
            alert_id=uuid.UUID(alert.id),
            alert_version=alert.version,
            occurred_at=now,
            previous_occurred_at=previous_sent,
            reason=reason,
            partial=partial,
            operators=operators,
        )
        return event_id, self._event_row(alert.id, event_id, event, self._topics.retractions, now)

    def _event_row(
        self, alert_id: str, event_id: str, event: Any, topic: str, now: datetime
    ) -> OutboxEvent:
        return outbox.event_row(
            event_id=event_id,
            alert_id=alert_id,
            event_type=event.type,
            topic=topic,
            event=event,
            now=now,
        )

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


MAX_LANGUAGES = 5


def _changed_fields(alert: Alert, patch: AlertPatch) -> list[str]:
    """The patch's fields that differ from the alert (a repeated PATCH changes nothing)."""
    given = patch.model_fields_set
    changed: list[str] = []
    if "description" in given and patch.description != alert.description:
        changed.append("description")
    if "photo_url" in given and _photo(patch) != alert.photo_url:
        changed.append("photo_url")
    if (
        "target_area" in given
        and patch.target_area is not None
        and patch.target_area.model_dump(mode="json") != alert.target
    ):
        changed.append("target_area")
    current = list(alert.languages.get("codes", []))
    extra = [code for code in dict.fromkeys(patch.add_languages or []) if code not in current]
    if extra:
        if len(current) + len(extra) > MAX_LANGUAGES:
            raise ValidationFailed(
                f"an alert has at most {MAX_LANGUAGES} languages", field="add_languages"
            )
        changed.append("languages")
    return changed


def _photo(patch: AlertPatch) -> str | None:
    return str(patch.photo_url) if patch.photo_url is not None else None


def _apply_patch(alert: Alert, patch: AlertPatch, changed: list[str]) -> None:
    """Write the changed fields onto the row and render the SMS text again."""
    if "description" in changed and patch.description is not None:
        alert.description = patch.description
    if "photo_url" in changed:
        alert.photo_url = _photo(patch)
    if "target_area" in changed and patch.target_area is not None:
        alert.target = patch.target_area.model_dump(mode="json")
    if "languages" in changed:
        current = list(alert.languages.get("codes", []))
        extra = [c for c in dict.fromkeys(patch.add_languages or []) if c not in current]
        alert.languages = {"codes": current + extra}
    alert.sms_text = render_sms(
        SubjectCategory(alert.category),
        alert.subject_age,
        alert.description or "",
        alert.last_seen_place,
        alert.last_seen_at,
    )


def _consent_withdrawn_entry(alert_id: str, actor: str, now: datetime) -> Base:
    """A consent withdrawal after the alert already ended: erasure no longer waits for
    the retention period, only for the retraction to be confirmed."""
    return audit.entry(
        alert_id=alert_id,
        actor=actor,
        action="consent.withdrawn",
        now=now,
        details={"reason": ResolutionReason.consent_withdrawn.value},
    )


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


async def _read_in(session: AsyncSession, alert: Alert) -> AlertRead:
    """The alert as its session sees it: a writer answers without a second session."""
    deliveries = await _deliveries_of(session, [alert.id])
    channels = await _consent_channels_of(session, [alert.id])
    return _to_read(alert, deliveries.get(alert.id, []), channels.get(alert.id, []))


def _to_read(alert: Alert, deliveries: list[Delivery], channels: list[str]) -> AlertRead:
    retraction = lifecycle.retraction_state(alert, deliveries)
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
                alert_version=d.alert_version,
                confirmed_at=d.confirmed_at,
            )
            for d in deliveries
        ],
        expires_at=alert.expires_at,
        updated_at=alert.updated_at,
        retraction_confirmed=retraction.confirmed,
        fully_retracted=retraction.fully,
        fully_retracted_at=retraction.at,
        erased=alert.erased_at is not None,
        erased_at=alert.erased_at,
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
