"""Shared engines: built once per test session because building indexes takes ~1 s."""

from __future__ import annotations

import pytest

from geofence import GeofenceEngine, default_engine, generate_synthetic_layer


@pytest.fixture(scope="session")
def engine() -> GeofenceEngine:
    """The production default: three national synthetic layers (60,000 sites each)."""
    return default_engine()


@pytest.fixture(scope="session")
def small_engine() -> GeofenceEngine:
    """One thinner layer (8,000 sites) so brute-force checks stay cheap."""
    layer = generate_synthetic_layer("testnet", 9, seed=7, sites=8000)
    return GeofenceEngine.load(cell_layers={"testnet": layer})
