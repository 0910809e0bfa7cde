"""Adapters are discovered through entry points; a broken plugin is skipped, not fatal."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import httpx
import pytest

import operator_adapters.registry as registry
from operator_adapters.builtin.standard_webhooks import StandardWebhooksAdapter
from services.settings import DEV_SIGNING_SECRETS, OperatorConfig


def _entry_points(*points: EntryPoint) -> Any:
    def fake(group: str) -> list[EntryPoint]:
        assert group == registry.ENTRY_POINT_GROUP
        return list(points)

    return fake


def test_installed_distribution_registers_the_builtin_adapter() -> None:
    assert registry.discover()["standard_webhooks"] is StandardWebhooksAdapter


def test_a_broken_plugin_is_logged_and_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = EntryPoint(
        "standard_webhooks",
        "operator_adapters.builtin.standard_webhooks:StandardWebhooksAdapter",
        registry.ENTRY_POINT_GROUP,
    )
    broken = EntryPoint("broken", "no_such_module_xyz:Adapter", registry.ENTRY_POINT_GROUP)
    wrong = EntryPoint("wrong", "json:dumps", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(good, broken, wrong))
    found = registry.discover()
    assert list(found) == ["standard_webhooks"]
    assert "failed to load" in caplog.text
    assert "not an OperatorAdapter" in caplog.text


async def test_build_adapter_validates_configuration() -> None:
    async with httpx.AsyncClient() as http:
        available = registry.discover()
        with pytest.raises(registry.AdapterConfigError, match="endpoint_url"):
            registry.build_adapter(
                "turkcell",
                OperatorConfig(signing_secret=DEV_SIGNING_SECRETS["turkcell"]),
                http,
                available,
            )
        with pytest.raises(registry.AdapterConfigError, match="no adapter named"):
            registry.build_adapter(
                "turkcell", OperatorConfig(adapter="smoke-signals"), http, available
            )
        adapter = registry.build_adapter(
            "turkcell",
            OperatorConfig(
                endpoint_url="http://127.0.0.1:9/x", signing_secret=DEV_SIGNING_SECRETS["turkcell"]
            ),
            http,
            available,
        )
        assert adapter.operator == "turkcell"
