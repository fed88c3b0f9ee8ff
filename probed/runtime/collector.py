"""Keeping CPython's cyclic garbage collector off the probes' critical path.

probed's heap is mostly long-lived: the config, one ring per probe, clients, botocore's models.
CPython's full collections walk all of it, finding nearly nothing, and every such pass holds the
event loop: they were the scheduler's lateness tail, and building a large config triggered them
over and over on the growing heap. So: pause collection while a config is parsed and built, then
collect once, `gc.freeze()` the survivors (they leave the collector's sight for good), and sweep
the per-attempt garbage less often. Full collections then walk only what was made since (the
probes' latest results, the scrape's cached lines: a million objects with 100,000 probes), and
CPython starts one whenever that set grew by a quarter, which a scrape's burst of new objects
did mid-scrape. So automatic full collections stay off after settling and `sweep()` runs one on
a timer instead. The figures are in docs/performance.md (bench.throughput, bench.scale).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import Iterator

GEN0_THRESHOLD = 5000  # CPython's default is 700: per-attempt garbage is swept 7x less often
SWEEP_EVERY_S = 60.0
"""How often `sweep()` runs a full collection: a cycle that lived long enough to reach the oldest
generation waits at most this long to be freed."""
_NO_AUTOMATIC_FULL = 1 << 30  # generation-1 collections before an automatic full one: never
_lock = threading.Lock()
_pauses = 0
_was_enabled = True
_frozen = 0


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (nesting and threads allowed); restored on the way out."""
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


def settle() -> None:
    """Collect once, freeze what survives, and raise the generation-0 threshold.

    Everything frozen earlier is thawed first: a reload replaces probes, and the replaced ones were
    frozen at the previous settle. Frozen objects are never collected, so without the thaw every
    reload kept its predecessors' cycles for good and memory grew with each reload. The cost is
    one full collection per start or reload, not per attempt.
    """
    global _frozen
    with paused():
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _frozen = gc.get_freeze_count()
        _, gen1, _ = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, _NO_AUTOMATIC_FULL)


async def sweep(every_s: float = SWEEP_EVERY_S) -> None:
    """Full collections on a timer, in place of the automatic ones `settle()` turned off (never
    while a config is being built: `paused()`)."""
    while True:
        await asyncio.sleep(every_s)
        if gc.isenabled():
            gc.collect()


def frozen_objects() -> int:
    """Objects the last `settle()` froze. `gc.get_freeze_count()` walks them all, one by one: with
    100,000 probes that is millions of objects, too long to do on the event loop at every scrape."""
    return _frozen
