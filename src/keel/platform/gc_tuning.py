"""The garbage collector of a serving process (docs/adr/0021-gc-tuning.md).

With CPython's defaults (a young collection every 700 net allocations of tracked objects,
a full one every 100 young ones) a serving process spent ~10 % of its CPU in the collector
and stopped its event loop for 150-225 ms at every full collection, because each one walked
every object the imports and the start-up had made (~240 000 of them). Those live as long as
the process: once started, the process moves them out of the collector's sight
(`gc.freeze`) and collects the young generation every 20 000 net allocations. Objects freed
by reference counting, which is nearly everything a request allocates, never reach the
collector at all; only cycles wait a little longer to be reclaimed.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

GEN0_THRESHOLD = 20_000
OLDER_THRESHOLDS = (20, 20)


def tune_for_serving() -> Callable[[], None]:
    """Freeze what start-up made and space out collections; returns the undo (for shutdown,
    and for the tests, which start many apps in one process)."""
    previous = gc.get_threshold()
    gc.collect()  # freeze what lives, not start-up's garbage
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *OLDER_THRESHOLDS)

    def undo() -> None:
        gc.unfreeze()
        gc.set_threshold(*previous)

    return undo
