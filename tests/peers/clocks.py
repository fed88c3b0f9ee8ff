"""Clocks for tests that must control when probes run (the scheduler's `Clock` protocol)."""

from __future__ import annotations

import asyncio


class StillClock:
    """Monotonic time that never moves: every probe waits for its first deadline forever."""

    def now(self) -> float:
        return 0.0

    def wall(self) -> float:
        return 1_800_000_000.0

    def sleep_until(self, deadline: float) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()
