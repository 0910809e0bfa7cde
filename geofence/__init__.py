"""Geofence engine: decides which districts and which operators' cells an alert reaches.

Pure domain code (no HTTP, Kafka or database). Build one engine per process with
:func:`default_engine` (or :meth:`GeofenceEngine.load` for custom limits/layers)
and call :meth:`GeofenceEngine.resolve` with one or more targets.
"""

from geofence.auto_radius import TRAVEL_MODELS, auto_radius_m
from geofence.cells import CellLayer
from geofence.engine import GeofenceEngine, default_engine
from geofence.errors import GeofenceError
from geofence.limits import GeofenceLimits
from geofence.results import AreaShare, BroadcastPolygon, OperatorCells, Resolution
from geofence.synthetic import generate_synthetic_layer
from geofence.targets import AdminAreaTarget, AutoTarget, CircleTarget, GeoJSONTarget, Target

__all__ = [
    "TRAVEL_MODELS",
    "AdminAreaTarget",
    "AreaShare",
    "AutoTarget",
    "BroadcastPolygon",
    "CellLayer",
    "CircleTarget",
    "GeoJSONTarget",
    "GeofenceEngine",
    "GeofenceError",
    "GeofenceLimits",
    "OperatorCells",
    "Resolution",
    "Target",
    "auto_radius_m",
    "default_engine",
    "generate_synthetic_layer",
]
