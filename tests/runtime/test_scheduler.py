"""The scheduler owns time: drift-free staggered deadlines, no overlap, a timeout, a concurrency cap.

Most tests drive a fake clock by hand, so they prove exact cadence without sleeping or timing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field

import pytest

from probed.config.model import ProbeSpec
from probed.result import ProbeResult, Reason
from probed.runtime.scheduler import Scheduler, first_deadline, phase_of
from probed.runtime.state import ProbeState

WALL0 = 1_800_000_000.0


class FakeClock:
    """Monotonic time that only moves when a test says so; sleepers wake in deadline order."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL0 + self.t

    def sleep_until(self, deadline: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if deadline <= self.t:
            fut.set_result(None)
        else:
            heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        return fut

    async def advance(self, seconds: float) -> None:
        end = self.t + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= end:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self.t = max(self.t, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self.t = end
        await _settle()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@dataclass
class ScriptedProbe:
    """Records when each attempt starts; an attempt takes `takes` seconds of fake time."""

    clock: FakeClock
    takes: float = 0.0
    starts: list[float] = field(default_factory=list)
    running: int = 0
    max_running: int = 0

    async def probe(self) -> ProbeResult:
        self.starts.append(self.clock.now())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.takes:
                await self.clock.sleep_until(self.clock.now() + self.takes)
            return ProbeResult.ok()
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        pass


def spec(name: str, interval: float = 10.0, timeout: float = 5.0) -> ProbeSpec:
    return ProbeSpec(name=name, type="tcp", target="127.0.0.1:1", interval=interval, timeout=timeout,
                     labels={}, settings=None)


async def test_runs_land_exactly_on_phase_plus_multiples_of_the_interval() -> None:
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    probes = {}
    for name in ("api", "db", "cdn"):
        probes[name] = ScriptedProbe(clock, takes=0.3)
        scheduler.start(ProbeState.new(spec(name)), probes[name])
    await clock.advance(100.0)
    for name, probe in probes.items():
        first = first_deadline(name, 10.0, 0.0, WALL0)
        assert 0 <= first < 10.0
        assert probe.starts == pytest.approx([first + 10.0 * k for k in range(len(probe.starts))])
        assert len(probe.starts) in (9, 10)
    assert scheduler.stats.lateness_quantile(0.99) == 0.0
    await scheduler.shutdown(0)


def test_phases_are_stable_and_spread_evenly_over_the_interval() -> None:
    assert phase_of("api-health", 30.0) == phase_of("api-health", 30.0)
    phases = [phase_of(f"probe-{i}", 10.0) for i in range(10_000)]
    per_second = [0] * 10
    for p in phases:
        per_second[int(p)] += 1
    # A thundering herd would put most probes in one bucket; a hash spreads them about 1,000 each.
    assert min(per_second) > 850 and max(per_second) < 1150


def test_the_phase_is_anchored_to_wall_time_so_restarts_keep_it() -> None:
    # Two "processes" starting at different monotonic and wall times agree on the wall-clock slot.
    a = first_deadline("api", 10.0, now=5.0, wall=WALL0)
    b = first_deadline("api", 10.0, now=1000.0, wall=WALL0 + 3.0)
    assert ((a - 5.0) + WALL0) % 10.0 == pytest.approx(((b - 1000.0) + WALL0 + 3.0) % 10.0)


async def test_a_run_never_overlaps_the_previous_one_and_missed_runs_are_counted() -> None:
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    slow = ScriptedProbe(clock, takes=25.0)  # 2.5 intervals
    state = ProbeState.new(spec("slow", interval=10.0, timeout=10.0))
    scheduler.start(state, slow)
    await clock.advance(100.0)
    assert slow.max_running == 1
    assert len(slow.starts) >= 3
    # Each run overruns its next two deadlines, which are skipped, not queued.
    assert all(b - a == pytest.approx(30.0) for a, b in itertools.pairwise(slow.starts))
    assert state.skipped["overrun"] == scheduler.stats.skipped["overrun"] >= 2 * (len(slow.starts) - 1)
    await scheduler.shutdown(0)


async def test_the_concurrency_cap_bounds_attempts_in_flight() -> None:
    clock = FakeClock()
    scheduler = Scheduler(2, clock)
    probes = [ScriptedProbe(clock, takes=9.0) for _ in range(6)]
    in_flight_seen = []
    for i, p in enumerate(probes):
        scheduler.start(ProbeState.new(spec(f"p{i}", interval=10.0, timeout=10.0)), p)
    for _ in range(100):
        await clock.advance(0.5)
        in_flight_seen.append(scheduler.stats.in_flight)
    assert max(in_flight_seen) == 2
    assert scheduler.stats.skipped["concurrency_limit"] > 0
    await scheduler.shutdown(0)


class HangingProbe:
    async def probe(self) -> ProbeResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


class InstantProbe:
    def __init__(self) -> None:
        self.runs = 0

    async def probe(self) -> ProbeResult:
        self.runs += 1
        return ProbeResult.ok()

    async def aclose(self) -> None:
        pass


async def test_hanging_targets_time_out_and_do_not_starve_other_probes() -> None:
    scheduler = Scheduler(1000)  # the real loop clock
    hanging = [ProbeState.new(spec(f"hang{i}", interval=0.2, timeout=0.1)) for i in range(50)]
    for state in hanging:
        scheduler.start(state, HangingProbe())
    healthy = InstantProbe()
    scheduler.start(ProbeState.new(spec("healthy", interval=0.1, timeout=0.1)), healthy)
    await asyncio.sleep(1.2)
    await scheduler.shutdown(0)
    assert healthy.runs >= 5  # about 12 expected; a starved probe would have none or one
    for state in hanging:
        assert state.last is not None and state.last.reason is Reason.TIMEOUT


async def test_shutdown_lets_an_attempt_in_flight_finish_within_the_grace_period() -> None:
    clock = FakeClock()
    scheduler = Scheduler(10, clock)
    done = asyncio.Event()

    class Finishing:
        async def probe(self) -> ProbeResult:
            await asyncio.sleep(0.05)
            done.set()
            return ProbeResult.ok()

        async def aclose(self) -> None:
            pass

    state = ProbeState.new(spec("x", interval=10.0))
    scheduler.start(state, Finishing())
    await clock.advance(10.0)
    await scheduler.shutdown(grace_s=5.0)
    assert done.is_set()
    assert state.last is not None and state.last.success
