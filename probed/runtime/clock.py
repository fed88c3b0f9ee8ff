"""The scheduler's clock: monotonic time to sleep on, wall time to anchor phases to.

Its own module so that the tests can drive the scheduler with a fake one, and so that the
arithmetic of phases stays apart from the dispatcher that uses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Generator
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (the event loop's clock)."""
        ...

    def wall(self) -> float:
        """Unix seconds, for phases anchored to wall time and for timestamps."""
        ...

    def sleep_until(self, deadline: float) -> Awaitable[None]: ...


class LoopClock:
    """The production clock: the running loop's time and asyncio.sleep."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return time.time()

    def sleep_until(self, deadline: float) -> Awaitable[None]:
        # uvloop rounds timers to whole milliseconds; below that a sleep returns at once and a
        # loop would spin. Starting up to 1 ms early is fine: lateness is what we guarantee.
        if deadline - self._loop.time() <= 0.001:
            return _DONE
        # A bare future and one timer rather than `await asyncio.sleep()`: the fewest objects a
        # sleep can keep alive (the dispatcher sleeps this way between every batch of deadlines).
        wake = self._loop.create_future()
        self._loop.call_at(deadline, set_done, wake)
        return wake


def set_done(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile (the dispatcher was woken early, or shut down)
        future.set_result(None)


def wake_up(wake: asyncio.Future[None], _timer: asyncio.Future[None]) -> None:
    set_done(wake)


class _Done:
    """An awaitable that is already complete: awaiting it does not suspend."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


_DONE = _Done()


def phase_of(name: str, interval: float) -> float:
    """The probe's fixed offset within its interval, from a stable hash of its name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") / 2**64) * interval


def first_deadline(name: str, interval: float, now: float, wall: float) -> float:
    """The next monotonic instant at which (wall time - phase) is a multiple of the interval."""
    return next_slot(phase_of(name, interval), interval, now, wall)


def next_slot(phase: float, interval: float, now: float, wall: float) -> float:
    k = math.ceil((wall - phase) / interval)
    return now + (phase + k * interval - wall)
