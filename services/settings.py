"""One settings object for every process, read from ``KAYIP_*`` environment variables.

Fails fast: outside development, default secrets, the operator simulator and
missing API keys are refused at start-up rather than discovered during an alert.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["alerts:write", "alerts:read", "operations"]

#: Well-known development credentials. They only work with KAYIP_ENVIRONMENT=development.
DEV_API_KEY = "dev-case-system-key"
DEV_SIGNING_SECRETS: dict[str, str] = {
    # base64 of 24 fixed bytes per operator: fine for a demo, refused in production.
    "turkcell": "whsec_ZGV2LXR1cmtjZWxsLXNlY3JldC0wMDAwMDAw",
    "vodafone": "whsec_ZGV2LXZvZGFmb25lLXNlY3JldC0wMDAwMDAw",
    "turktelekom": "whsec_ZGV2LXR1cmt0ZWxla29tLXNlY3JldC0wMDA=",
}
DEFAULT_OPERATORS = ("turkcell", "vodafone", "turktelekom")


class ApiKeyConfig(BaseModel):
    """An API client: its key is only ever stored as a SHA-256 hex digest."""

    client_id: str = Field(min_length=1, max_length=64)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope]


def dev_receipt_key(operator: str) -> str:
    """The well-known development key an operator (the simulator) sends receipts with."""
    return f"dev-{operator}-receipt-key"


class OperatorConfig(BaseModel):
    """Where and how one mobile operator receives webhooks, and how it reports back."""

    enabled: bool = True
    #: Entry-point name of the adapter plugin; None picks the plugin named after the
    #: operator when one is installed, else ``standard_webhooks``.
    adapter: str | None = None
    endpoint_url: str | None = None
    signing_secret: SecretStr | None = None
    #: During a rotation both secrets sign every webhook and verify every receipt.
    previous_signing_secret: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    concurrency: int = Field(default=8, ge=1, le=256)
    #: Fewer dispatches in flight while this operator queues them (at most ``concurrency``).
    adaptive_concurrency: bool = True
    max_rate_per_s: float | None = Field(default=None, gt=0)
    retry_deadline_s: float = Field(default=300.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=5.0, gt=0)
    #: SHA-256 of the key this operator presents when it posts receipts.
    receipt_key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    link_test_interval_s: float | None = Field(default=None, ge=0)
    #: Adapter-specific settings (validated by the plugin's own config model).
    options: dict[str, object] = Field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Every secret that signs now: the current one first."""
        return [
            s.get_secret_value()
            for s in (self.signing_secret, self.previous_signing_secret)
            if s is not None
        ]


def hash_api_key(key: str) -> str:
    """Keys are high-entropy random strings, so a plain SHA-256 is the right hash."""
    return hashlib.sha256(key.encode()).hexdigest()


class Settings(BaseSettings):
    """Every knob of the service. See the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="KAYIP_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = None

    database_url: str = "sqlite+aiosqlite:///./var/kayip-alarm.db"
    database_pool_size: int = Field(default=10, ge=1)

    kafka_bootstrap_servers: str | None = None
    kafka_enable_idempotence: bool | None = None
    kafka_topic_prefix: str = "kayip"
    kafka_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1)
    #: Consumer long-poll bound; unset: 1 ms with the embedded broker, 2 ms with
    #: Apache Kafka (see ``fetch_max_wait_ms``).
    kafka_fetch_max_wait_ms: int | None = Field(default=None, ge=0, le=5000)
    #: Small fetches: a fetch is one round trip for every assigned partition, and a
    #: retraction's partition waits for the whole response; megabytes of queued
    #: dispatches in one response would hold it back.
    kafka_max_partition_fetch_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    kafka_session_timeout_ms: int | None = Field(default=None, ge=1000, le=300000)
    #: Idle consumers stop fetching until the relay wakes them (only useful with the
    #: embedded broker, which never wakes a waiting fetch itself); unset: on with the
    #: embedded broker (see ``idle_pause``, ``operator_adapters/fetch_gate.py``).
    kafka_idle_pause: bool | None = None
    #: The retraction lane through one consumer shared by a process's workers, so its
    #: fetches never wait behind dispatch fetches (``operator_adapters/lane_feed.py``).
    kafka_retraction_feed: bool = True
    #: The dispatch lane likewise: each record fetched once for every operator, not
    #: once per operator's consumer (``operator_adapters/lane_feed.py``).
    kafka_dispatch_feed: bool = True
    #: A paused consumer still looks this often, for records published without a wake-up.
    kafka_idle_recheck_ms: int = Field(default=100, ge=1, le=600_000)

    #: ``serve`` only: the adapter workers run in a child process (the second core),
    #: so a backlog of deliveries never queues the API or the relay behind it.
    adapter_process: bool = True

    #: The wire under the adapters' httpx clients: ``lean`` (httptools, a third of the
    #: CPU per webhook; ``operator_adapters/http_transport.py``) or httpx's own
    #: ``httpcore`` (httpcore and h11; the fallback if lean ever misbehaves).
    webhook_transport: Literal["lean", "httpcore"] = "lean"

    relay_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: After its commit, a write request waits up to this long for the in-process relay
    #: to have its events acknowledged by the broker, before it builds its answer (0:
    #: don't wait). See ``OutboxFeed.until_published``.
    relay_handover_wait_ms: int = Field(default=25, ge=0, le=1000)
    relay_batch_size: int = Field(default=500, ge=1, le=10000)

    #: A delivery still owed and untouched this long is re-published (broker loss, crash).
    reconcile_after_s: float = Field(default=30.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    #: Default interval of each operator's signed link test; 0 turns them off.
    link_test_interval_s: float = Field(default=300.0, ge=0)
    #: Retractions never dead-letter; past this they raise an alarm and keep retrying.
    retraction_alarm_after_s: float = Field(default=60.0, gt=0)
    #: On a graceful stop, how long adapter workers wait for webhooks already on the wire.
    stop_grace_s: float = Field(default=5.0, ge=0, le=60)

    alert_ttl_hours: float = Field(default=72.0, gt=0)
    #: How long personal data survives the end of an alert (KVKK); 0 erases at once.
    erasure_retention_days: float = Field(default=30.0, ge=0)
    erasure_interval_s: float = Field(default=60.0, gt=0)

    geofence_max_area_km2: float = Field(default=60000.0, gt=0)
    geofence_vertex_budget: int = Field(default=100, ge=8, le=1000)
    geofence_max_input_vertices: int = Field(default=10000, ge=4)
    geofence_min_radius_m: float = Field(default=100.0, gt=0)
    geofence_max_radius_m: float = Field(default=200000.0, gt=0)

    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    operators: dict[str, OperatorConfig] = Field(default_factory=dict)
    simulator_enabled: bool | None = None
    simulator_send_receipts: bool = True

    log_level: str = "INFO"

    @field_validator("operators")
    @classmethod
    def _operator_names(cls, value: dict[str, OperatorConfig]) -> dict[str, OperatorConfig]:
        for name in value:
            if not name.isidentifier() or not name.islower():
                raise ValueError(f"operator name {name!r} must be a lower-case identifier")
        return value

    @model_validator(mode="after")
    def _defaults_and_guards(self) -> Settings:
        if self.simulator_enabled is None:
            self.simulator_enabled = self.environment == "development"
        if not self.operators:
            self.operators = {name: OperatorConfig() for name in DEFAULT_OPERATORS}
        if self.environment == "production":
            self._refuse_development_defaults()
        else:
            for name, operator in self.operators.items():
                if operator.signing_secret is None and name in DEV_SIGNING_SECRETS:
                    operator.signing_secret = SecretStr(DEV_SIGNING_SECRETS[name])
                if operator.receipt_key_sha256 is None:
                    operator.receipt_key_sha256 = hash_api_key(dev_receipt_key(name))
            if not self.api_keys:
                self.api_keys = [
                    ApiKeyConfig(
                        client_id="dev-case-system",
                        key_sha256=hash_api_key(DEV_API_KEY),
                        scopes=["alerts:write", "alerts:read"],
                    )
                ]
        return self

    def _refuse_development_defaults(self) -> None:
        if self.simulator_enabled:
            raise ValueError("the operator simulator cannot run in production")
        if not self.api_keys:
            raise ValueError("KAYIP_API_KEYS is required in production")
        if any(k.key_sha256 == hash_api_key(DEV_API_KEY) for k in self.api_keys):
            raise ValueError("the development API key is refused in production")
        if self.kafka_bootstrap_servers is None:
            raise ValueError("KAFKA bootstrap servers are required in production")
        dev_secrets = set(DEV_SIGNING_SECRETS.values())
        for name, operator in self.operators.items():
            if not operator.enabled:
                continue
            if operator.endpoint_url is None:
                raise ValueError(f"operator {name}: endpoint_url is required in production")
            secret = operator.signing_secret
            if secret is None or secret.get_secret_value() in dev_secrets:
                raise ValueError(f"operator {name}: a real signing_secret is required")
            if operator.receipt_key_sha256 in (None, hash_api_key(dev_receipt_key(name))):
                raise ValueError(f"operator {name}: a real receipt_key_sha256 is required")

    @property
    def embedded_broker(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def idempotent_producer(self) -> bool:
        """Apache Kafka supports idempotence; the embedded Tansu broker does not."""
        if self.kafka_enable_idempotence is not None:
            return self.kafka_enable_idempotence
        return not self.embedded_broker

    @property
    def idle_pause(self) -> bool:
        """On with the embedded broker unless set: with the lane feeds (sessions 9 and
        10) it no longer slowed retractions under a backlog (five interleaved pairs),
        and with a 1 ms fetch wait it took 1.5-2.4 ms off a create, halved the
        broker's CPU and raised burst throughput by a fifth (bench/RESULTS.md,
        "Session 11"). Apache Kafka wakes a waiting fetch itself: nothing to gain."""
        if self.kafka_idle_pause is not None:
            return self.kafka_idle_pause
        return self.embedded_broker

    @property
    def fetch_max_wait_ms(self) -> int:
        """The embedded broker answers an empty fetch only when this runs out and never
        wakes it for new records, so it bounds every hop's latency; idle consumers
        pause instead of polling (``idle_pause``), so 1 ms costs little. Apache Kafka:
        2 ms, as before (not measured here: no Apache Kafka on this machine)."""
        if self.kafka_fetch_max_wait_ms is not None:
            return self.kafka_fetch_max_wait_ms
        return 1 if self.embedded_broker else 2

    @property
    def consumer_session_timeout_ms(self) -> int:
        """Tansu holds a JoinGroup for half the session timeout, so the embedded
        broker gets a short one (faster start); Apache Kafka's minimum is 6 s."""
        if self.kafka_session_timeout_ms is not None:
            return self.kafka_session_timeout_ms
        return 2000 if self.embedded_broker else 10000

    def link_test_interval_for(self, operator: str) -> float:
        own = self.operators[operator].link_test_interval_s
        return self.link_test_interval_s if own is None else own

    @property
    def enabled_operators(self) -> dict[str, OperatorConfig]:
        return {name: op for name, op in self.operators.items() if op.enabled}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
