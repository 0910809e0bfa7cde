"""Prometheus metrics. Labels carry operator names and outcomes, never personal data."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

DISPATCH_LATENCY = Histogram(
    "kayip_dispatch_latency_seconds",
    "From the alert being accepted to the operator answering 2xx, per operator and kind.",
    ["operator", "kind"],
    buckets=LATENCY_BUCKETS,
)
DELIVERY_ATTEMPTS = Counter(
    "kayip_delivery_attempts_total",
    "Webhook delivery attempts by operator, kind and outcome.",
    ["operator", "kind", "outcome"],
)
DELIVERIES_FINISHED = Counter(
    "kayip_deliveries_total",
    "Deliveries finished, by operator, kind and final status.",
    ["operator", "kind", "status"],
)
OUTBOX_PUBLISHED = Counter("kayip_outbox_published_total", "Outbox events published to Kafka.")
OUTBOX_PUBLISH_ERRORS = Counter(
    "kayip_outbox_publish_errors_total", "Failed relay rounds (broker or database unavailable)."
)
ALERTS_CREATED = Counter("kayip_alerts_created_total", "Alerts accepted.", ["category"])
ALERTS_RESOLVED = Counter("kayip_alerts_resolved_total", "Alerts resolved.", ["reason"])


def prime(operators: list[str]) -> None:
    """Create every operator's series up front so dashboards see zeros, not gaps."""
    for operator in operators:
        for kind in ("dispatch", "retraction"):
            DISPATCH_LATENCY.labels(operator, kind)
            for status in ("delivered", "failed"):
                DELIVERIES_FINISHED.labels(operator, kind, status)
