"""Composition root for request handling: what the API needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from geofence import GeofenceEngine, GeofenceLimits, default_engine
from services import metrics
from services.alerts import AlertService
from services.auth import ApiKeyAuthenticator
from services.db.engine import Database
from services.messaging.topics import Topics
from services.outbox import OutboxFeed
from services.settings import Settings


def engine_for(settings: Settings) -> GeofenceEngine:
    """The process-wide engine (indexes built once, at start-up) under the configured limits."""
    limits = GeofenceLimits(
        max_area_km2=settings.geofence_max_area_km2,
        vertex_budget=settings.geofence_vertex_budget,
        max_input_vertices=settings.geofence_max_input_vertices,
        min_radius_m=settings.geofence_min_radius_m,
        max_radius_m=settings.geofence_max_radius_m,
    )
    engine = default_engine()
    return engine if engine.limits == limits else engine.with_limits(limits)


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
        feed = OutboxFeed(handover_wait_s=settings.relay_handover_wait_ms / 1000)
        metrics.prime(sorted(settings.enabled_operators))
        alerts = AlertService(
            db=database,
            geofence=geofence or engine_for(settings),
            topics=Topics(settings.kafka_topic_prefix),
            operators=sorted(settings.enabled_operators),
            on_commit=feed.committed,
            on_suppress=feed.suppress,
            until_published=feed.until_published,
            ttl=timedelta(hours=settings.alert_ttl_hours),
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
