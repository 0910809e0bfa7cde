"""``kayip-alarm serve`` as a newcomer runs it: the API, relay and embedded broker in
one process, the adapter workers in a child it supervises."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.messaging.broker import free_port
from services.settings import hash_api_key
from tests.conftest import READER_KEY, WRITER_KEY, auth
from tests.e2e.fanout_helpers import create_alert, eventually, wait_delivered_everywhere

pytestmark = pytest.mark.asyncio


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _adapter_child(pid: int) -> int | None:
    for child in _children(pid):
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"adapter" in cmdline.read():
                return child
    return None


@pytest.fixture
async def serve(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYIP_")}
    env.update(
        {
            "KAYIP_ENVIRONMENT": "development",
            "KAYIP_PORT": str(port),
            "KAYIP_DATABASE_URL": database_url,
            "KAYIP_LINK_TEST_INTERVAL_S": "0",
            "KAYIP_RECONCILE_INTERVAL_S": "1",
            "KAYIP_API_KEYS": json.dumps(
                [
                    {
                        "client_id": "writer",
                        "key_sha256": hash_api_key(WRITER_KEY),
                        "scopes": ["alerts:write", "alerts:read"],
                    },
                    {
                        "client_id": "reader",
                        "key_sha256": hash_api_key(READER_KEY),
                        "scopes": ["alerts:read"],
                    },
                ]
            ),
        }
    )
    env.update(getattr(request, "param", {}))  # a test's own settings
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            return b"kayip-alarm is running" in (tmp_path / "serve.log").read_bytes()

        await eventually(up, timeout_s=90, what="serve to start")
        yield process, base_url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


async def _dispatch_count(http: httpx.AsyncClient, operator: str) -> float:
    text = (await http.get("/metrics")).text
    prefix = f'kayip_dispatch_latency_seconds_count{{kind="dispatch",operator="{operator}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_serve_delivers_through_its_adapter_process_and_survives_its_death(
    serve: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base_url = serve
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        first_child = _adapter_child(process.pid)
        assert first_child is not None, "serve runs the adapter workers in a child process"

        first = await create_alert(http)
        await wait_delivered_everywhere(http, first, timeout_s=30)
        # The child's delivery metrics are on the parent's /metrics.
        for operator in ("turkcell", "vodafone", "turktelekom"):
            assert await _dispatch_count(http, operator) >= 1

        os.kill(first_child, signal.SIGKILL)

        async def replaced() -> bool:
            child = _adapter_child(process.pid)
            return child is not None and child != first_child

        await eventually(replaced, timeout_s=30, what="a new adapter process")
        second = await create_alert(http)
        await wait_delivered_everywhere(http, second, timeout_s=60)

        for alert_id in (first, second):
            response = await http.post(
                f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
            )
            assert response.status_code == 202, response.text

        async def retracted_everywhere() -> bool:
            for alert_id in (first, second):
                state = (await http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))).json()
                retractions = [d for d in state["deliveries"] if d["kind"] == "retraction"]
                if len(retractions) != 3 or {d["status"] for d in retractions} != {"delivered"}:
                    return False
            return True

        await eventually(retracted_everywhere, timeout_s=60, what="retractions everywhere")
        second_child = _adapter_child(process.pid)
        assert second_child is not None
        metrics_dir = _environ_of(second_child).get("PROMETHEUS_MULTIPROC_DIR")
        assert metrics_dir is not None
        assert Path(metrics_dir).is_dir()

    # SIGTERM stops everything in order: the child, the broker, the shared metrics.
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
    assert not Path(f"/proc/{second_child}").exists()
    assert not Path(metrics_dir).exists()


@pytest.mark.parametrize(
    "serve",
    # Idle consumers never recheck during the test: every alert reaches the child's
    # consumers through serve's wake-up on the child's stdin.
    [{"KAYIP_KAFKA_IDLE_PAUSE": "true", "KAYIP_KAFKA_IDLE_RECHECK_MS": "600000"}],
    indirect=True,
)
async def test_serve_wakes_its_childs_idle_consumers(
    serve: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base_url = serve
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for _ in range(2):
            alert_id = await create_alert(http)
            await wait_delivered_everywhere(http, alert_id, timeout_s=30)
            response = await http.post(
                f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
            )
            assert response.status_code == 202, response.text

            async def retracted(alert_id: str = alert_id) -> bool:
                state = (await http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))).json()
                kinds = [d for d in state["deliveries"] if d["kind"] == "retraction"]
                return len(kinds) == 3 and {d["status"] for d in kinds} == {"delivered"}

            await eventually(retracted, timeout_s=30, what="the retraction everywhere")
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0


def _environ_of(pid: int) -> dict[str, str]:
    """serve sets the shared metrics directory in its environment once it runs; its
    children inherit it (the parent's own /proc environ shows only its start)."""
    with open(f"/proc/{pid}/environ", "rb") as raw:
        pairs = (item.split(b"=", 1) for item in raw.read().split(b"\0") if b"=" in item)
        return {key.decode(): value.decode() for key, value in pairs}
