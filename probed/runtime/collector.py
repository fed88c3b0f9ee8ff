"""Keeping CPython's cyclic garbage collector off the probes' critical path.

probed's heap is mostly long-lived: the config, one ring per probe, clients, botocore's models.
CPython's full collections walk all of it, and with 1,000 HTTP probes at 3,000 attempts/s those
generation-2 passes took 75-105 ms each, pushing scheduler lateness p99 to 39 ms. Building a
10,000-probe config triggered the same passes over the growing heap: 1.5 s of a 2.5 s start-up.
So: pause collection while a config is parsed and built, then collect once, `gc.freeze()` the
survivors (they leave the collector's sight for good), and sweep the per-attempt garbage less
often. Measured with bench.throughput --type http and bench.scale (see README, Performance).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

GEN0_THRESHOLD = 5000  # CPython's default is 700: per-attempt garbage is swept 7x less often
_lock = threading.Lock()
_pauses = 0
_was_enabled = True


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
    """Collect once, freeze what survives, and raise the generation-0 threshold."""
    with paused():
        gc.collect()
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
