"""How the service's processes use Python's cyclic garbage collector.

A full (generation 2) collection stops the whole process, event loop included, for
as long as it takes to walk every tracked object that is not frozen. Two things made
those stops land on alerts in flight:

- Start-up builds the geofence indexes, some 270,000 tracked objects. Every full
  collection walked them all, about 50 ms (measured). Nothing built at start-up is
  garbage, so it is frozen once the service is up (``gc.freeze``).
- Under a dispatch backlog the adapter process holds some 1,400 parsed dispatch
  events (queued jobs and the shared parse cache), 160,000 tracked objects, mostly
  the broadcast polygons' coordinate lists. CPython starts a full collection once
  ten young (generation 1) collections have run and the objects promoted since the
  last one exceed a quarter of the old generation; a backlog promotes that many
  every second. Measured on the retraction bench: about one full collection a
  second, each stopping the loop for 50-115 ms, and a retraction that arrived during
  one waited for it (bench/RESULTS.md, "Session 14").

Those full collections found almost nothing to free (0-222 objects each): what the
service allocates is freed by reference counting or dies young, in the generation
0 and 1 collections, which keep their default thresholds. So full collections are
made rare instead: one per ``YOUNG_COLLECTIONS_PER_FULL`` generation 1 collections
rather than ten (under that backlog, about one a minute instead of one a second).
"""

from __future__ import annotations

import gc

#: Generation 1 collections between two full ones (CPython's default is 10). Under a
#: 15,000-record backlog the adapter process ran about 13 generation 1 collections a
#: second, so this allows a full collection about every 75 s at that rate.
YOUNG_COLLECTIONS_PER_FULL = 1000


def settle_after_startup() -> None:
    """Freeze what start-up built and make full collections rare (module doc).

    Called once the process is serving: the collection before the freeze removes
    start-up's garbage, so only live objects are frozen.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, YOUNG_COLLECTIONS_PER_FULL)
