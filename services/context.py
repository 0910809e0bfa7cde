"""Composition root for request handling: what the API needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from geofence import GeofenceEngine, default_engine
from services import metrics
from services.alerts import AlertService
from services.auth import ApiKeyAuthenticator
from services.db.engine import Database
from services.messaging.topics import Topics
from services.outbox import OutboxFeed
from services.settings import Settings


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    feed: OutboxFeed
    alerts: AlertService
    auth: ApiKeyAuthenticator

    @classmethod
    def build(
        cls,
        settings: Settings,
        geofence: GeofenceEngine | None = None,
        db: Database | None = None,
    ) -> ServiceContext:
        database = db or Database(settings.database_url, settings.database_pool_size)
        feed = OutboxFeed()
        metrics.prime(sorted(settings.enabled_operators))
        alerts = AlertService(
            db=database,
            geofence=geofence or default_engine(),
            topics=Topics(settings.kafka_topic_prefix),
            operators=sorted(settings.enabled_operators),
            on_commit=feed.committed,
        )
        return cls(
            settings=settings,
            db=database,
            feed=feed,
            alerts=alerts,
            auth=ApiKeyAuthenticator(settings.api_keys),
        )

    async def close(self) -> None:
        await self.db.dispose()
