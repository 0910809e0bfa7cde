"""Settings fail fast on unsafe production configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.settings import DEV_API_KEY, ApiKeyConfig, Settings, hash_api_key

REAL_SECRET = "whsec_cmVhbC1zZWNyZXQtZm9yLXRlc3RzLTEyMzQ1Njc4"


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "production",
        "kafka_bootstrap_servers": "kafka:9092",
        "database_url": "postgresql+asyncpg://u@db/kayip",
        "api_keys": [
            ApiKeyConfig(client_id="cs", key_sha256=hash_api_key("k" * 40), scopes=["alerts:write"])
        ],
        "operators": {
            "turkcell": {
                "endpoint_url": "https://t.example/hook",
                "signing_secret": REAL_SECRET,
                "receipt_key_sha256": hash_api_key("r" * 40),
            }
        },
    }
    values.update(overrides)
    return Settings.model_validate(values)


def test_development_defaults_give_three_operators_a_simulator_and_a_dev_key() -> None:
    settings = Settings.model_validate({})
    assert sorted(settings.enabled_operators) == ["turkcell", "turktelekom", "vodafone"]
    assert settings.simulator_enabled is True
    assert settings.embedded_broker
    assert not settings.idempotent_producer
    assert settings.api_keys[0].key_sha256 == hash_api_key(DEV_API_KEY)


def test_a_valid_production_configuration_loads() -> None:
    settings = _production()
    assert settings.idempotent_producer is True
    assert settings.simulator_enabled is False
    assert settings.consumer_session_timeout_ms == 10000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"simulator_enabled": True}, "simulator"),
        ({"api_keys": []}, "KAYIP_API_KEYS"),
        ({"kafka_bootstrap_servers": None}, "bootstrap"),
        (
            {
                "api_keys": [
                    ApiKeyConfig(
                        client_id="d", key_sha256=hash_api_key(DEV_API_KEY), scopes=["alerts:read"]
                    )
                ]
            },
            "development API key",
        ),
        ({"operators": {"turkcell": {"signing_secret": REAL_SECRET}}}, "endpoint_url"),
        (
            {
                "operators": {
                    "turkcell": {
                        "endpoint_url": "https://t.example/hook",
                        "signing_secret": REAL_SECRET,
                    }
                }
            },
            "receipt_key_sha256",
        ),
        ({"operators": {"turkcell": {"endpoint_url": "https://t.example/hook"}}}, "signing_secret"),
        ({"operators": {"Bad Name": {}}}, "lower-case identifier"),
    ],
)
def test_unsafe_production_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _production(**overrides)


def test_environment_variables_configure_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYIP_OPERATORS__TURKCELL__ENDPOINT_URL", "http://127.0.0.1:9/x")
    monkeypatch.setenv("KAYIP_OPERATORS__TURKCELL__TIMEOUT_S", "2.5")
    settings = Settings()
    assert settings.operators["turkcell"].endpoint_url == "http://127.0.0.1:9/x"
    assert settings.operators["turkcell"].timeout_s == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # the stop grace: 0 to 60 seconds
        ("KAYIP_STOP_GRACE_S", "-1"),
        ("KAYIP_STOP_GRACE_S", "61"),
        ("KAYIP_STOP_GRACE_S", "soon"),
        # the idle recheck: 1 ms to 10 minutes
        ("KAYIP_KAFKA_IDLE_RECHECK_MS", "0"),
        ("KAYIP_KAFKA_IDLE_RECHECK_MS", "600001"),
        ("KAYIP_KAFKA_IDLE_RECHECK_MS", "soon"),
    ],
)
def test_a_bounded_setting_outside_its_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("KAYIP_").lower()):
        Settings()


def test_the_stop_grace_reaches_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.runtime import worker_policy

    monkeypatch.setenv("KAYIP_STOP_GRACE_S", "2.5")
    settings = Settings()
    policy = worker_policy(settings, settings.operators["turkcell"])
    assert policy.stop_grace_s == 2.5


def test_the_idle_pause_and_fetch_wait_follow_the_broker_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded = Settings()
    assert embedded.idle_pause is True
    assert embedded.fetch_max_wait_ms == 1
    monkeypatch.setenv("KAYIP_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    external = Settings()
    assert external.idle_pause is False
    assert external.fetch_max_wait_ms == 2
    monkeypatch.setenv("KAYIP_KAFKA_IDLE_PAUSE", "true")
    monkeypatch.setenv("KAYIP_KAFKA_FETCH_MAX_WAIT_MS", "7")
    assert Settings().idle_pause is True
    assert Settings().fetch_max_wait_ms == 7
    monkeypatch.delenv("KAYIP_KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("KAYIP_KAFKA_IDLE_PAUSE", "false")
    assert Settings().idle_pause is False


def test_the_idle_pause_can_be_asked_for_and_reaches_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.runtime import worker_policy

    monkeypatch.setenv("KAYIP_KAFKA_IDLE_PAUSE", "maybe")
    with pytest.raises(ValidationError, match="kafka_idle_pause"):
        Settings()
    monkeypatch.setenv("KAYIP_KAFKA_IDLE_PAUSE", "true")
    monkeypatch.setenv("KAYIP_KAFKA_IDLE_RECHECK_MS", "250")
    settings = Settings()
    policy = worker_policy(settings, settings.operators["turkcell"], idle_pause=True)
    assert policy.idle_pause
    assert policy.idle_recheck_s == 0.25


async def test_the_webhook_wire_is_lean_unless_asked_and_shapes_the_adapters_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    from operator_adapters.http_transport import LeanTransport, webhook_client

    assert Settings().webhook_transport == "lean"
    monkeypatch.setenv("KAYIP_WEBHOOK_TRANSPORT", "h2")
    with pytest.raises(ValidationError, match="webhook_transport"):
        Settings()
    monkeypatch.setenv("KAYIP_WEBHOOK_TRANSPORT", "httpcore")
    wire = Settings().webhook_transport
    async with webhook_client(wire, 3) as fallback, webhook_client("lean", 3) as lean:
        assert isinstance(fallback._transport, httpx.AsyncHTTPTransport)
        assert isinstance(lean._transport, LeanTransport)
