"""The auto (time-since-last-seen) radius model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geofence import AutoTarget, CircleTarget, GeofenceEngine, auto_radius_m

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mode", "elapsed", "expected"),
    [
        ("on_foot", timedelta(0), 1000.0),
        ("on_foot", timedelta(minutes=5), 1000.0),
        ("on_foot", timedelta(hours=2), 10000.0),
        ("on_foot", timedelta(days=3), 25000.0),
        ("vehicle", timedelta(minutes=1), 5000.0),
        ("vehicle", timedelta(hours=1), 60000.0),
        ("vehicle", timedelta(hours=10), 120000.0),
    ],
)
def test_radius_model(mode: str, elapsed: timedelta, expected: float) -> None:
    assert auto_radius_m(NOW - elapsed, NOW, mode) == pytest.approx(expected)


def test_auto_target_equals_circle(engine: GeofenceEngine) -> None:
    auto = engine.resolve([AutoTarget(39.93, 32.86, NOW - timedelta(hours=1), NOW, "on_foot")])
    circle = engine.resolve([CircleTarget(39.93, 32.86, 5000.0)])
    assert auto.target_geojson == circle.target_geojson


def test_naive_and_aware_mix_is_rejected() -> None:
    from geofence import GeofenceError

    with pytest.raises(GeofenceError) as info:
        auto_radius_m(datetime(2026, 5, 1), NOW, "on_foot")
    assert info.value.code == "invalid_time"
