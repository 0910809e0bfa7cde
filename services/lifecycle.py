"""What each operator holds of an alert, and what it is owed when the alert changes.

The database must always say the truth about every operator, whatever the timing,
so these rules decide from the outbox and delivery rows alone:

**Suppression.** Whenever an alert gets a new version (update, renewal, end), each of
its dispatch/update messages that is still unsent - outbox row neither published nor
suppressed, delivery row ``pending`` with no attempt - is suppressed: the outbox row
gets ``suppressed_at`` (the relay's sweep skips it), the delivery row becomes
``suppressed`` and the in-memory feed drops the event. A message a worker already
touched is never suppressed: it may have reached the operator.

**May have reached.** A dispatch/update message may have reached its operator unless
it was suppressed and nothing shows it went out anyway. The relay can have taken an
event from the feed just before the suppression; then the relay's "published" mark
(or a worker's outcome on the delivery row) arrives after it, and the message counts
again (see ``owes_late_retraction``). A retraction counts unless its delivery row is
``suppressed``.

**Holding.** An operator holds version *v* when the newest message that may have
reached it is a dispatch/update at *v*; it holds nothing when it has none, or when the
newest is a retraction (an area that no longer covers it).

**End** (resolve, consent withdrawal, expiry): every operator that any dispatch/update
may have reached gets the retraction; the others never had the alert, so they get no
retraction either (their retraction delivery row is written ``suppressed`` and they are
left out of the event's ``operators``).

**Update**: see ``plan``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from geofence import Resolution
from schemas.alerts import AlertStatus, DeliveryStatus
from schemas.events import AlertContent, AreaSummary, DistrictSummary
from services.db.models import Alert, Delivery, OutboxEvent, table_of

CONTENT_KINDS = ("dispatch", "update")
RETRACTION = "retraction"
CONTENT_EVENT_TYPES = ("alert.dispatch_requested", "alert.updated")
AREA_NARROWED = "area_narrowed"

_PENDING = DeliveryStatus.pending.value
_SUPPRESSED = DeliveryStatus.suppressed.value
_DELIVERED = DeliveryStatus.delivered.value


@dataclass(frozen=True, slots=True)
class Message:
    """One message owed to one operator, with what the outbox knows of it."""

    operator: str
    kind: str
    version: int
    event_id: str
    delivery_status: str
    attempts: int
    published: bool
    suppressed: bool

    def may_have_reached(self) -> bool:
        if self.kind == RETRACTION:
            return self.delivery_status != _SUPPRESSED
        if not self.suppressed:
            return True
        return self.published_anyway()

    def published_anyway(self) -> bool:
        """Suppressed, yet a worker tried to deliver it: it may have reached the operator.

        Published alone is not enough: a worker that gets a suppressed message after the
        retraction drops it (the retraction raised the alert's version), and one that
        delivered it first also sends the retraction itself; either way it records the
        truth here, so only an attempt or a delivery means the operator may hold it.
        """
        return self.suppressed and (
            self.attempts > 0 or self.delivery_status not in (_PENDING, _SUPPRESSED)
        )


class Action(StrEnum):
    """What one operator gets when an active alert changes."""

    update = "update"  # it holds an older version: AlertUpdated(previous_version)
    dispatch = "dispatch"  # it holds nothing and the new area has cells of it
    retract = "retract"  # it holds the alert, the new area has none of its cells
    nothing = "nothing"  # it holds nothing and the new area has none of its cells


def plan(held: int | None, had_cells: bool, has_cells: bool) -> Action:
    """The per-operator decision of an update (``had_cells``: in the area being replaced).

    An operator that holds nothing - never had the alert, its messages were all
    suppressed, or a narrowed area retracted it - gets a full DispatchRequested, never
    an update of something it never got. An operator holding a cell-less version (create
    sends to every operator) keeps getting updates while it still has no cells.
    """
    if held is None:
        return Action.dispatch if has_cells else Action.nothing
    if has_cells or not had_cells:
        return Action.update
    return Action.retract


# The statements every alert change runs, built once: building one of these
# expressions costs more Python than executing it (a third of a resolve's unit of
# work, profiled). The parameters are bound per call; their names differ from the
# columns', which SQLAlchemy keeps for the SET clause. The updates are on the tables,
# not the ORM classes: the ORM's bulk-update path (synchronising a session that holds
# no such rows) cost more than the statement (bench/RESULTS.md, "Session 13").
_deliveries = table_of(Delivery)
_outbox = table_of(OutboxEvent)
_DELIVERIES = _deliveries.c
_OUTBOX = _outbox.c
_SUPPRESS_UNSENT_DELIVERIES = (
    update(_deliveries)
    .where(
        _DELIVERIES.alert_id == bindparam("of_alert"),
        _DELIVERIES.kind.in_(CONTENT_KINDS),
        _DELIVERIES.status == _PENDING,
        _DELIVERIES.attempts == 0,
        _DELIVERIES.event_id.in_(
            select(_OUTBOX.event_id).where(
                _OUTBOX.alert_id == bindparam("of_alert"),
                _OUTBOX.event_type.in_(CONTENT_EVENT_TYPES),
                _OUTBOX.published_at.is_(None),
                _OUTBOX.suppressed_at.is_(None),
            )
        ),
    )
    .values(status=_SUPPRESSED, updated_at=bindparam("at"))
    .returning(_DELIVERIES.event_id)
)
_SUPPRESS_EVENTS = (
    update(_outbox)
    .where(_OUTBOX.event_id.in_(bindparam("ids", expanding=True)))
    .values(suppressed_at=bindparam("at"))
)
_MESSAGES_OF = (
    select(
        Delivery.operator,
        Delivery.kind,
        Delivery.alert_version,
        Delivery.event_id,
        Delivery.status,
        Delivery.attempts,
        OutboxEvent.published_at,
        OutboxEvent.suppressed_at,
    )
    .outerjoin(OutboxEvent, OutboxEvent.event_id == Delivery.event_id)
    .where(Delivery.alert_id == bindparam("of_alert"))
    .order_by(Delivery.id)
)


async def suppress_unsent(session: AsyncSession, alert_id: str, now: datetime) -> list[str]:
    """Suppress the alert's unsent dispatch/update messages; return their event ids."""
    result = await session.execute(_SUPPRESS_UNSENT_DELIVERIES, {"of_alert": alert_id, "at": now})
    event_ids = sorted(set(result.scalars()))
    if event_ids:
        await session.execute(_SUPPRESS_EVENTS, {"ids": event_ids, "at": now})
    return event_ids


async def messages_of(session: AsyncSession, alert_id: str) -> list[Message]:
    rows = await session.execute(_MESSAGES_OF, {"of_alert": alert_id})
    return [
        Message(
            operator=operator,
            kind=kind,
            version=version,
            event_id=event_id,
            delivery_status=status,
            attempts=attempts or 0,
            published=published_at is not None,
            suppressed=suppressed_at is not None,
        )
        for operator, kind, version, event_id, status, attempts, published_at, suppressed_at in rows
    ]


def holds(messages: Iterable[Message], operator: str) -> int | None:
    """The version this operator may be showing, or None when it shows nothing."""
    reached = [m for m in messages if m.operator == operator and m.may_have_reached()]
    if not reached:
        return None
    newest = max(reached, key=lambda m: (m.version, m.kind == RETRACTION))
    return None if newest.kind == RETRACTION else newest.version


def retraction_recipients(messages: Sequence[Message], operators: Iterable[str]) -> list[str]:
    """Operators that received, may have received, or still have queued the alert."""
    had = {m.operator for m in messages if m.kind in CONTENT_KINDS and m.may_have_reached()}
    return [operator for operator in operators if operator in had]


def owes_late_retraction(
    messages: Sequence[Message], operator: str, version: int, ended: bool
) -> bool:
    """True when a message suppressed as unsent went out after all (the relay had already
    taken it) and nothing at the alert's current version takes it back."""
    mine = [m for m in messages if m.operator == operator]
    if not any(m.kind in CONTENT_KINDS and m.published_anyway() for m in mine):
        return False
    current = [m for m in mine if m.version == version]
    if ended:
        left_out = any(m.kind == RETRACTION for m in current) and all(
            m.delivery_status == _SUPPRESSED for m in current
        )
        return left_out
    return not current and holds(mine, operator) is not None


def cell_counts(area: Mapping[str, Any]) -> dict[str, int]:
    """Cells per operator in an alert's stored (resolved) area."""
    operators = area.get("resolved", {}).get("operators", [])
    return {o["operator"]: int(o.get("cell_count", 0)) for o in operators}


def content_of(alert: Alert) -> AlertContent:
    """What operators broadcast, from the alert's current row. Personal data: never log."""
    return AlertContent(
        category=alert.category,
        age=alert.subject_age,
        description=alert.description or "",
        photo_url=alert.photo_url,
        last_seen_lat=alert.last_seen_lat,
        last_seen_lon=alert.last_seen_lon,
        last_seen_at=alert.last_seen_at,
        last_seen_place=alert.last_seen_place,
        sms_text=alert.sms_text or "",
        languages=list(alert.languages.get("codes", [])),
    )


def area_summary(resolution: Resolution) -> AreaSummary:
    return AreaSummary(
        polygon=dict(resolution.broadcast.geometry),
        area_km2=resolution.area_km2,
        districts=[
            DistrictSummary(code=d.code, name=d.name, province_code=d.province_code)
            for d in resolution.districts
        ],
    )


@dataclass(frozen=True, slots=True)
class RetractionState:
    """The read model of an ended alert's final retraction."""

    confirmed: dict[str, bool]
    fully: bool
    at: datetime | None


NOT_ENDED = RetractionState(confirmed={}, fully=False, at=None)


def is_confirmed(delivery: Delivery) -> bool:
    return delivery.status == _DELIVERED and delivery.confirmed_at is not None


def retraction_state(alert: Alert, deliveries: Sequence[Delivery]) -> RetractionState:
    """Per operator owed the final retraction: confirmed? Fully retracted when all are.

    The final retraction is the one at the alert's last version (nothing follows an
    end). With no operator owed one (nobody ever had the alert) it is fully retracted
    at once. The time shown is the stamp housekeeping wrote, else the last confirmation.
    """
    if alert.status != AlertStatus.resolved.value:
        return NOT_ENDED
    final = [
        d
        for d in deliveries
        if d.kind == RETRACTION and d.alert_version == alert.version and d.status != _SUPPRESSED
    ]
    confirmed = {d.operator: is_confirmed(d) for d in final}
    if not all(confirmed.values()):
        return RetractionState(confirmed=confirmed, fully=False, at=None)
    at = alert.fully_retracted_at or fully_retracted_time(
        [d.confirmed_at for d in final], alert.resolved_at
    )
    return RetractionState(confirmed=confirmed, fully=True, at=at)


def fully_retracted_time(
    confirmations: Iterable[datetime | None], resolved_at: datetime | None
) -> datetime | None:
    """When the last operator confirmed; the end itself when nobody was owed a retraction."""
    times = [t for t in confirmations if t is not None]
    return max(times) if times else resolved_at
