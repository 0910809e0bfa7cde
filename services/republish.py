"""Re-publishing an outbox event: shared by the reconciler and the dead-letter re-drive.

The copy is a NEW outbox row (the relay publishes it like any other) carrying the
ORIGINAL event with ``redelivery`` set: the event id, and so the webhook-id every
operator deduplicates on, stays the same, and the worker checks the database
before delivering it again.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from services.db.models import OutboxEvent


def redelivery_of(original: OutboxEvent, now: datetime) -> OutboxEvent:
    payload = json.loads(original.payload)
    payload["redelivery"] = True
    return OutboxEvent(
        event_id=str(uuid.uuid4()),
        alert_id=original.alert_id,
        event_type=original.event_type,
        topic=original.topic,
        payload=json.dumps(payload, separators=(",", ":")),
        created_at=now,
        published_at=None,
        suppressed_at=None,
    )
