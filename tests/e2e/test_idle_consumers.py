"""Idle consumers stop fetching, and the relay's wake-up is what delivers the next alert.

The recheck interval is set far beyond the test's timeouts, so an alert can only
arrive through the nudge (or, for a consumer that has just been given partitions,
through its first fetch): a missing or lost wake-up fails the test instead of
hiding behind the periodic recheck.
"""

from __future__ import annotations

import pytest

from services.messaging.broker import EmbeddedBroker
from tests.conftest import READER_KEY, auth, make_settings
from tests.e2e.fanout_helpers import (
    create_alert,
    eventually,
    running,
    wait_delivered_everywhere,
)

pytestmark = pytest.mark.asyncio

NEVER_MS = 600_000  # no recheck during the test


async def test_idle_consumers_pause_and_the_relays_nudge_delivers(
    database_url: str, broker: EmbeddedBroker
) -> None:
    settings = make_settings(
        database_url,
        broker.bootstrap_servers,
        kafka_idle_pause=True,
        kafka_idle_recheck_ms=NEVER_MS,
    )
    async with running(settings) as run:
        workers = run.service.workers
        assert len(workers) == 3

        async def all_asleep() -> bool:
            return all(w.gate.asleep and w.assignment() for w in workers)

        await eventually(all_asleep, timeout_s=20, what="every consumer to pause")
        for worker in workers:
            assert worker.paused() == worker.assignment(), "an idle consumer fetches nothing"

        for _ in range(3):
            alert_id = await create_alert(run.http)
            await wait_delivered_everywhere(run.http, alert_id, timeout_s=20)
            response = await run.http.post(
                f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
            )
            assert response.status_code == 202, response.text

            async def retracted(alert_id: str = alert_id) -> bool:
                state = (
                    await run.http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))
                ).json()
                kinds = [d for d in state["deliveries"] if d["kind"] == "retraction"]
                return len(kinds) == 3 and {d["status"] for d in kinds} == {"delivered"}

            await eventually(retracted, timeout_s=20, what="the retraction everywhere")
            await eventually(all_asleep, timeout_s=20, what="the consumers to pause again")

        assert all(w.gate.nudges > 0 and w.gate.sleeps >= 4 for w in workers)


@pytest.mark.parametrize("feed", [True, False], ids=["shared-retraction-feed", "own-fetch"])
async def test_without_the_gate_consumers_keep_fetching(
    database_url: str, broker: EmbeddedBroker, feed: bool
) -> None:
    """The default: no gate. With the shared retraction feed (the default) each worker
    pauses only its retraction partitions, which the feed fetches; without it each
    worker fetches both lanes itself. Either way the retraction reaches everyone."""
    settings = make_settings(database_url, broker.bootstrap_servers, kafka_retraction_feed=feed)
    async with running(settings) as run:
        alert_id = await create_alert(run.http)
        await wait_delivered_everywhere(run.http, alert_id, timeout_s=20)
        lane = set()
        for worker in run.service.workers:
            assert not worker.gate.enabled
            assert not worker.gate.asleep
            mine = {tp for tp in worker.assignment() if ".alert-retractions." in tp.topic}
            assert worker.paused() == worker.gate.elsewhere == (mine if feed else set())
            lane |= mine
        assert (run.service.retraction_feed is not None) == feed
        if run.service.retraction_feed is not None:
            assert run.service.retraction_feed.partitions == lane
        response = await run.http.post(
            f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
        )
        assert response.status_code == 202, response.text

        async def retracted() -> bool:
            state = (await run.http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))).json()
            kinds = [d for d in state["deliveries"] if d["kind"] == "retraction"]
            return len(kinds) == 3 and {d["status"] for d in kinds} == {"delivered"}

        await eventually(retracted, timeout_s=20, what="the retraction everywhere")
