"""Idle consumers stop fetching, and the relay's wake-up is what delivers the next alert.

The recheck interval is set far beyond the test's timeouts, so an alert can only
arrive through the nudge (or, for a consumer that has just been given partitions,
through its first fetch): a missing or lost wake-up fails the test instead of
hiding behind the periodic recheck.
"""

from __future__ import annotations

from typing import Any

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
        # By default the lane feeds fetch for the workers: theirs are the gates that
        # sleep and are woken.
        feeds = [run.service.dispatch_feed, run.service.retraction_feed]
        gates = [feed.gate for feed in feeds if feed is not None]
        assert len(gates) == 2

        async def all_asleep() -> bool:
            return all(w.gate.asleep and w.assignment() for w in workers) and all(
                g.asleep for g in gates
            )

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

        assert all(g.nudges >= 3 and g.sleeps >= 4 for g in gates)


@pytest.mark.parametrize(
    ("retraction_feed", "dispatch_feed"),
    [(True, True), (True, False), (False, False)],
    ids=["shared-feeds", "shared-retraction-feed", "own-fetch"],
)
async def test_without_the_gate_consumers_keep_fetching(
    database_url: str, broker: EmbeddedBroker, retraction_feed: bool, dispatch_feed: bool
) -> None:
    """The default: no gate. With the shared lane feeds (the default) each worker
    pauses its partitions of a lane the feed fetches; without them each worker fetches
    that lane itself. Either way the alert and its retraction reach everyone."""
    settings = make_settings(
        database_url,
        broker.bootstrap_servers,
        kafka_retraction_feed=retraction_feed,
        kafka_dispatch_feed=dispatch_feed,
    )
    async with running(settings) as run:
        alert_id = await create_alert(run.http)
        await wait_delivered_everywhere(run.http, alert_id, timeout_s=20)
        lanes: dict[str, set[Any]] = {"retractions": set(), "events": set()}
        for worker in run.service.workers:
            assert not worker.gate.enabled
            assert not worker.gate.asleep
            mine = {
                lane: {tp for tp in worker.assignment() if f".alert-{lane}." in tp.topic}
                for lane in lanes
            }
            elsewhere = (mine["retractions"] if retraction_feed else set()) | (
                mine["events"] if dispatch_feed else set()
            )
            assert worker.paused() == worker.gate.elsewhere == elsewhere
            for lane, partitions in mine.items():
                lanes[lane] |= partitions
        service = run.service
        assert (service.retraction_feed is not None) == retraction_feed
        assert (service.dispatch_feed is not None) == dispatch_feed
        if service.retraction_feed is not None:
            assert service.retraction_feed.partitions == lanes["retractions"]
        if service.dispatch_feed is not None:
            assert service.dispatch_feed.partitions == lanes["events"]
        response = await run.http.post(
            f"/v1/alerts/{alert_id}/resolve", json={"reason": "found_safe"}, headers=auth()
        )
        assert response.status_code == 202, response.text

        async def retracted() -> bool:
            state = (await run.http.get(f"/v1/alerts/{alert_id}", headers=auth(READER_KEY))).json()
            kinds = [d for d in state["deliveries"] if d["kind"] == "retraction"]
            return len(kinds) == 3 and {d["status"] for d in kinds} == {"delivered"}

        await eventually(retracted, timeout_s=20, what="the retraction everywhere")
