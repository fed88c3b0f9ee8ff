"""Suite-wide hygiene: a leaked socket or transport fails the test that leaked it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    # Unclosed transports warn (an error here: filterwarnings = error) when the collector frees
    # them. probed pauses and freezes the collector (probed/heap.py), so without this the warning
    # surfaces in whichever later test happens to trigger a collection, not in the leaking one.
    yield
    gc.collect()
