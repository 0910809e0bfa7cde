"""Transactional outbox: a state change and its event are written in one transaction.

The relay is woken through :class:`OutboxSignal` right after a commit, so the hot
path adds no polling delay; a slow periodic sweep catches anything written by
another process or left behind by a crash.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel

from services.db.models import OutboxEvent


class OutboxSignal:
    """In-process wake-up for the relay; cheap and safe to call from any coroutine."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
        self._event.clear()


def event_row(
    *,
    event_id: str,
    alert_id: str,
    event_type: str,
    topic: str,
    event: BaseModel,
    now: datetime,
) -> OutboxEvent:
    return OutboxEvent(
        event_id=event_id,
        alert_id=alert_id,
        event_type=event_type,
        topic=topic,
        payload=event.model_dump_json(),
        created_at=now,
        published_at=None,
    )
