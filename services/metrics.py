"""Prometheus metrics. Labels carry operator names and outcomes, never personal data.

Under ``serve`` with its adapter process, values live in Prometheus multi-process
files (see ``services/adapter_process.py``): counters and histograms add up across
the processes, and each gauge shows the highest value among live processes (only
one process sets each of them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
DEAD_LETTERS = Counter(
    "kayip_dead_letters_total",
    "Deliveries that ran out of retry deadline (or were refused) and went to the dead-letter "
    "topic, by operator and kind. Any increase needs a person.",
    ["operator", "kind"],
)
RETRACTION_RETRY_ALARMS = Counter(
    "kayip_retraction_retry_alarms_total",
    "Retractions a worker was still retrying after the alarm threshold (it keeps retrying).",
    ["operator"],
)
BREAKER_STATE = Gauge(
    "kayip_operator_breaker_state",
    "Circuit breaker per operator in this process: 0 closed, 1 half-open, 2 open.",
    ["operator"],
    multiprocess_mode="livemax",
)
LINK_UP = Gauge(
    "kayip_operator_link_up",
    "1 if the operator's last link test was delivered, 0 if it failed.",
    ["operator"],
    multiprocess_mode="livemax",
)
LINK_TEST_LATENCY = Histogram(
    "kayip_link_test_latency_seconds",
    "Time for a link test to be accepted by the operator.",
    ["operator"],
    buckets=LATENCY_BUCKETS,
)
RECONCILED = Counter(
    "kayip_reconciled_total",
    "Owed deliveries re-published by the reconciler (broker loss, crashed worker), by kind.",
    ["kind"],
)
REDRIVEN = Counter(
    "kayip_redriven_total", "Dead-lettered deliveries re-driven, by operator.", ["operator"]
)
OPERATOR_RECEIPTS = Counter(
    "kayip_operator_receipts_total",
    "Receipts operators posted and we accepted, by operator, reported status and outcome "
    "(recorded, or duplicate: the same receipt again, with no second effect).",
    ["operator", "status", "outcome"],
)
OPERATOR_RECEIPTS_REFUSED = Counter(
    "kayip_operator_receipts_refused_total",
    "Receipts refused, by operator (unknown for a name we do not know) and reason.",
    ["operator", "reason"],
)
ALERTS_CREATED = Counter("kayip_alerts_created_total", "Alerts accepted.", ["category"])
ALERTS_RESOLVED = Counter("kayip_alerts_resolved_total", "Alerts resolved.", ["reason"])
ALERTS_UPDATED = Counter(
    "kayip_alerts_updated_total", "New versions of active alerts, by cause.", ["cause"]
)
OUTBOX_SUPPRESSED = Counter(
    "kayip_outbox_suppressed_total",
    "Dispatch and update events suppressed before publishing by a newer version.",
)
RETRACTIONS_OVERDUE = Gauge(
    "kayip_retractions_unconfirmed_overdue",
    "Retractions not confirmed within the alarm time, per operator (now).",
    ["operator"],
    multiprocess_mode="livemax",
)
RETRACTION_ALARMS = Counter(
    "kayip_retraction_alarms_total",
    "Alert and operator pairs flagged for an unconfirmed retraction (once each).",
    ["operator"],
)
LATE_PUBLISH_RETRACTIONS = Counter(
    "kayip_late_publish_retractions_total",
    "Retractions sent after a suppressed message turned out to be published anyway.",
    ["operator"],
)
ALERTS_ERASED = Counter(
    "kayip_alerts_erased_total", "Alerts whose personal data was erased, by cause.", ["cause"]
)


def prime(operators: list[str]) -> None:
    """Create every operator's series up front so dashboards see zeros, not gaps."""
    for operator in operators:
        for kind in ("dispatch", "update", "retraction"):
            DISPATCH_LATENCY.labels(operator, kind)
            DEAD_LETTERS.labels(operator, kind)
            for status in ("delivered", "failed", "suppressed"):
                DELIVERIES_FINISHED.labels(operator, kind, status)
        RETRACTION_RETRY_ALARMS.labels(operator)
        LINK_TEST_LATENCY.labels(operator)
        RETRACTIONS_OVERDUE.labels(operator).set(0)
        RETRACTION_ALARMS.labels(operator)
