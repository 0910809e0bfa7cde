"""A separate distribution adds an operator without touching our code.

The test writes a throwaway distribution (a package plus its ``*.dist-info`` with
``entry_points.txt``) into a temporary directory, puts it on ``sys.path`` the
way an installed wheel would be, and lets the ordinary discovery find it.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from operator_adapters.registry import (
    ENTRY_POINT_GROUP,
    AdapterConfigError,
    adapter_name,
    build_adapter,
    discover,
)
from services.settings import DEV_SIGNING_SECRETS, OperatorConfig
from tests.unit.adapters import events
from tests.unit.adapters.loopback import serving

PLUGIN = '''
"""Smoke signals: an operator integration shipped by somebody else."""

import json

from pydantic import Field

from operator_adapters.base import MessageSummary, RenderedMessage
from operator_adapters.builtin.signed_http import SignedHttpAdapter, SignedHttpConfig


class SmokeConfig(SignedHttpConfig):
    puffs: int = Field(default=3, ge=1)


class SmokeSignalsAdapter(SignedHttpAdapter):
    config_model = SmokeConfig

    def _puff(self, kind, event):
        body = {"smoke": kind, "puffs": self.config.puffs, "id": str(event.event_id)}
        return RenderedMessage("application/json", json.dumps(body).encode())

    def render_dispatch(self, event):
        return self._puff("alert", event)

    def render_update(self, event):
        return self._puff("update", event)

    def render_retraction(self, event):
        return self._puff("retraction", event)

    def render_link_test(self, event):
        return self._puff("test", event)
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site-packages"
    package = root / "kayip_smoke_signals"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist_info = root / "kayip_smoke_signals-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: kayip-smoke-signals\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "smoke_signals = kayip_smoke_signals:SmokeSignalsAdapter\n"
        "carrier_pigeon = kayip_no_such_module:PigeonAdapter\n"
    )
    monkeypatch.syspath_prepend(str(root))  # also invalidates the import caches
    yield root
    sys.modules.pop("kayip_smoke_signals", None)


def test_discovery_finds_the_plugin_and_skips_a_broken_one(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="operator_adapters.registry")
    found = discover()
    assert found["smoke_signals"].__module__ == "kayip_smoke_signals"
    assert "carrier_pigeon" not in found
    assert {"standard_webhooks", "turkcell", "vodafone", "turktelekom"} <= set(found)
    [record] = [r for r in caplog.records if getattr(r, "plugin", None) == "carrier_pigeon"]
    assert record.levelno == logging.ERROR
    assert "failed to load" in record.getMessage()


async def test_an_operator_named_after_the_plugin_uses_it_and_delivers(site: Path) -> None:
    available = discover()
    config = OperatorConfig(signing_secret=DEV_SIGNING_SECRETS["turkcell"], options={"puffs": 5})
    assert adapter_name("smoke_signals", config, available) == "smoke_signals"
    async with serving() as endpoint, httpx.AsyncClient() as http:
        adapter = build_adapter(
            "smoke_signals",
            config.model_copy(update={"endpoint_url": endpoint.url}),
            http,
            available,
        )
        event = events.dispatch()
        receipt = await adapter.deliver("msg_smoke", adapter.render_dispatch(event))
    assert receipt.status_code == 200
    [request] = endpoint.received
    body = Webhook(DEV_SIGNING_SECRETS["turkcell"]).verify(request.body, request.headers)
    assert body == {"smoke": "alert", "puffs": 5, "id": str(event.event_id)}
    assert json.loads(request.body)["puffs"] == 5


def test_the_plugin_validates_its_own_options(site: Path) -> None:
    available = discover()
    config = OperatorConfig(
        adapter="smoke_signals",
        endpoint_url="http://127.0.0.1:9/x",
        signing_secret=DEV_SIGNING_SECRETS["turkcell"],
        options={"colour": "white"},
    )
    with pytest.raises(AdapterConfigError, match="colour"):
        build_adapter("any_operator", config, httpx.AsyncClient(), available)


def test_without_the_distribution_the_plugin_is_unknown() -> None:
    assert "smoke_signals" not in discover()
