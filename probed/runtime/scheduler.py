"""Owns time: when each probe runs, for how long, and how many run at once.

* Drift-free: deadlines are `phase + k * interval` computed on the loop's monotonic clock, never
  "now + interval", so a probe keeps its cadence however long each attempt takes.
* Staggered: a probe's phase within its interval comes from a hash of its name, anchored to wall
  time. It is stable across restarts and reloads, and 10,000 probes with the same interval spread
  evenly over it instead of firing together.
* No overlap: a probe's next run waits for its previous one; deadlines missed meanwhile are
  skipped and counted (`overrun`). The timeout is enforced here (by `run_attempt`), and a global
  semaphore caps attempts in flight; a run that cannot get a slot before its next deadline is
  skipped (`concurrency_limit`) rather than queued without bound.
* One task per probe. At 10,000 probes that is 10,000 sleeping tasks, which asyncio (and uvloop)
  handle with lateness well under a millisecond; it keeps each probe's loop simple and lets a
  reload cancel exactly one probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from array import array
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

from probed.probes import Probe
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.state import ProbeState

log = logging.getLogger("probed.scheduler")

LATENESS_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_RESERVOIR = 8192


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
        # A bare future and one timer rather than `await asyncio.sleep()`: with 10,000 probes
        # asleep at any moment, every object a sleep keeps alive (two coroutines, an iterator, a
        # bound method ...) sits in the GC's oldest generation, and full collections walk them all.
        wake = self._loop.create_future()
        self._loop.call_at(deadline, _set_done, wake)
        return wake


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile (a reload or shutdown stopped the probe)
        future.set_result(None)


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
    phase = phase_of(name, interval)
    k = math.ceil((wall - phase) / interval)
    return now + (phase + k * interval - wall)


@dataclass
class SchedulerStats:
    """Self-metrics, updated in place on the hot path, read at scrape time."""

    in_flight: int = 0
    runs_total: int = 0
    lateness_counts: array[int] = field(default_factory=lambda: array("Q", [0]) * (len(LATENESS_BUCKETS) + 1))
    lateness_sum: float = 0.0
    recent_lateness: array[float] = field(default_factory=lambda: array("d", [0.0]) * LATENESS_RESERVOIR)
    skipped: dict[str, int] = field(default_factory=lambda: {"overrun": 0, "concurrency_limit": 0})
    loop_lag_s: float = 0.0
    loop_lag_max_s: float = 0.0

    def observe_lateness(self, lateness: float) -> None:
        lateness = max(0.0, lateness)
        self.lateness_counts[bisect_left(LATENESS_BUCKETS, lateness)] += 1
        self.lateness_sum += lateness
        self.recent_lateness[self.runs_total % LATENESS_RESERVOIR] = lateness
        self.runs_total += 1

    def lateness_quantile(self, q: float) -> float:
        n = min(self.runs_total, LATENESS_RESERVOIR)
        if n == 0:
            return 0.0
        data = sorted(self.recent_lateness[:n])
        return data[min(n - 1, int(q * n))]


Recorder = Callable[[ProbeState, ProbeResult, float], None]


class Scheduler:
    def __init__(self, max_concurrency: int, clock: Clock | None = None) -> None:
        self.stats = SchedulerStats()
        self._clock = clock
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._busy: set[asyncio.Task[None] | None] = set()
        self._stopping = False
        self._lag_task: asyncio.Task[None] | None = None
        self.started = False

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = LoopClock()
        return self._clock

    def resize(self, max_concurrency: int) -> None:
        """Apply a reloaded concurrency cap to attempts started from now on."""
        if max_concurrency != self._max_concurrency:
            self._semaphore = asyncio.Semaphore(max_concurrency)
            self._max_concurrency = max_concurrency

    def start(self, state: ProbeState, probe: Probe) -> None:
        name = state.spec.name
        assert name not in self._tasks, f"probe {name} is already scheduled"
        self._tasks[name] = asyncio.create_task(self._run(state, probe), name=f"probe:{name}")
        self.started = True

    def start_lag_monitor(self, every_s: float = 0.25) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._watch_lag(every_s), name="loop-lag")

    @property
    def names(self) -> set[str]:
        return set(self._tasks)

    async def stop(self, name: str) -> None:
        """Stop scheduling one probe at once, cancelling an attempt in flight."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self, grace_s: float) -> None:
        """Stop scheduling; let attempts in flight finish within `grace_s`, then cancel the rest."""
        self._stopping = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if self._lag_task is not None:
            self._lag_task.cancel()
            tasks.append(self._lag_task)
        # Tasks sleeping between runs are cancelled now; a task mid-attempt finishes it first.
        busy = [t for t in tasks if t in self._busy]
        for t in tasks:
            if t not in self._busy:
                t.cancel()
        if busy:
            _done, pending = await asyncio.wait(busy, timeout=grace_s)
            for t in pending:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, state: ProbeState, probe: Probe) -> None:
        clock = self.clock
        stats = self.stats
        task = asyncio.current_task()
        spec = state.spec
        interval = spec.interval
        deadline = first_deadline(spec.name, interval, clock.now(), clock.wall())
        while True:
            await clock.sleep_until(deadline)
            next_deadline = deadline + interval
            semaphore = self._semaphore
            if not semaphore.locked():
                await semaphore.acquire()  # the fast path: no extra tasks or timers
            elif not await self._acquire_before(semaphore, next_deadline):
                # Every slot stayed busy until this probe's next run was due: skip, don't queue.
                state.skipped["concurrency_limit"] += 1
                stats.skipped["concurrency_limit"] += 1
                deadline = next_deadline
                continue
            stats.observe_lateness(clock.now() - deadline)
            stats.in_flight += 1
            self._busy.add(task)  # shutdown() grants these a grace period
            try:
                result = await run_attempt(probe, spec.timeout)
            finally:
                stats.in_flight -= 1
                semaphore.release()
                self._busy.discard(task)
            state.record(result, clock.wall())
            if self._stopping:
                return
            deadline = next_deadline
            behind = clock.now() - deadline
            if behind > 0:
                # Never overlap and never burst to catch up: skip the deadlines already missed.
                missed = math.floor(behind / interval) + 1
                deadline += missed * interval
                state.skipped["overrun"] += missed
                stats.skipped["overrun"] += missed

    async def _acquire_before(self, semaphore: asyncio.Semaphore, deadline: float) -> bool:
        """Wait for a slot until `deadline` (on the scheduler's clock); True if one was acquired."""
        acquire = asyncio.ensure_future(semaphore.acquire())
        timer = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait((acquire, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not acquire.done():
                acquire.cancel()
        return acquire.done() and not acquire.cancelled()

    async def _watch_lag(self, every_s: float) -> None:
        loop = asyncio.get_running_loop()
        window: list[float] = []
        while True:
            start = loop.time()
            await asyncio.sleep(every_s)
            lag = max(0.0, loop.time() - start - every_s)
            window = [*window[-239:], lag]  # about a minute at 4 Hz
            self.stats.loop_lag_s = lag
            self.stats.loop_lag_max_s = max(window)
