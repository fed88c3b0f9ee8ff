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
from probed.runtime.clock import first_deadline, phase_of
from probed.runtime.scheduler import Scheduler
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


# ---- one dispatcher: sleeping probes are heap entries, blocked runs wait in one FIFO


def _deadlines(name: str, interval: float, until: float) -> list[float]:
    first = first_deadline(name, interval, 0.0, WALL0)
    return [first + interval * k for k in range(int((until - first) // interval) + 1)]


async def test_sleeping_probes_hold_no_task_of_their_own() -> None:
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    before = len(asyncio.all_tasks())
    probes = [InstantProbe() for _ in range(1000)]
    for i, p in enumerate(probes):
        scheduler.start(ProbeState.new(spec(f"p{i}", interval=10.0)), p)
    await _settle()
    assert len(asyncio.all_tasks()) <= before + 1  # the dispatcher; a task per probe would be 1000
    await clock.advance(25.0)
    assert all(p.runs >= 2 for p in probes)
    assert len(asyncio.all_tasks()) <= before + 1  # attempts done, none kept
    assert scheduler.stats.in_flight == 0
    await scheduler.shutdown(0)


async def test_a_stopped_sleeping_probe_never_runs_again_and_a_restart_keeps_its_phase() -> None:
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    a, b = ScriptedProbe(clock), ScriptedProbe(clock)
    scheduler.start(ProbeState.new(spec("a")), a)
    scheduler.start(ProbeState.new(spec("b")), b)
    await clock.advance(20.0)
    runs_before_stop = len(a.starts)
    await scheduler.stop("a")  # it sleeps between runs: its heap entry must go
    assert scheduler.names == {"b"}
    await clock.advance(40.0)
    assert len(a.starts) == runs_before_stop
    assert b.starts == pytest.approx(_deadlines("b", 10.0, 60.0))

    a2 = ScriptedProbe(clock)  # a reload starts the name again
    scheduler.start(ProbeState.new(spec("a")), a2)
    await clock.advance(30.0)
    assert a2.starts == pytest.approx([d for d in _deadlines("a", 10.0, 90.0) if d > 60.0])
    assert len(a.starts) == runs_before_stop
    await scheduler.shutdown(0)


async def test_stopped_probes_do_not_pile_up_in_the_heap() -> None:
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    for _reload in range(20):  # every reload restarts all 1000 probes; time stands still
        for i in range(1000):
            await scheduler.stop(f"p{i}")
            scheduler.start(ProbeState.new(spec(f"p{i}", interval=3600.0)), InstantProbe())
        await _settle()  # the dispatcher gives the new ones their deadlines
    # Stale entries are swept once they outnumber the live ones: 20 reloads leave no 20,000 (private
    # attribute: the heap's size is the memory a long-running process would otherwise keep).
    assert len(scheduler._heap) <= 2 * 1000 + 100
    await scheduler.shutdown(0)


async def test_the_first_deadline_is_reckoned_when_the_loop_runs_again_not_at_start() -> None:
    # Starting many probes holds the loop (building them, then a full collection): deadlines
    # reckoned at start() would all be due at once when it lets go, a burst of late runs.
    clock = FakeClock()
    scheduler = Scheduler(100, clock)
    probes = {name: ScriptedProbe(clock) for name in ("api", "db", "cdn")}
    for name, p in probes.items():
        scheduler.start(ProbeState.new(spec(name)), p)
    clock.t = 25.0  # the loop was held for 25 s after the starts
    await clock.advance(30.0)
    for name, p in probes.items():
        first = first_deadline(name, 10.0, 25.0, WALL0 + 25.0)
        assert p.starts == pytest.approx([first + 10.0 * k for k in range(len(p.starts))])
        assert len(p.starts) == 3
    assert scheduler.stats.lateness_quantile(1.0) == 0.0
    await scheduler.shutdown(0)


async def test_a_run_blocked_by_the_cap_waits_then_is_skipped_when_its_next_deadline_comes() -> None:
    clock = FakeClock()
    scheduler = Scheduler(1, clock)
    hog = ScriptedProbe(clock, takes=35.0)
    x = ScriptedProbe(clock)
    x_state = ProbeState.new(spec("x", interval=10.0))
    scheduler.start(ProbeState.new(spec("hog", interval=1000.0, timeout=40.0)), hog)
    scheduler.start(x_state, x)
    h = first_deadline("hog", 1000.0, 0.0, WALL0)
    await clock.advance(h + 60.0)
    assert hog.starts == pytest.approx([h])
    xs = _deadlines("x", 10.0, h + 60.0)
    blocked = [d for d in xs if h < d < h + 35.0]
    assert len(blocked) >= 3
    # On time before and after; while the hog holds the only slot, each run waits until the next
    # deadline and is skipped, except the last, which starts the moment the slot frees.
    expected = [d for d in xs if d < h] + [h + 35.0] + [d for d in xs if d > h + 35.0]
    assert x.starts == pytest.approx(expected)
    assert x_state.skipped["concurrency_limit"] == scheduler.stats.skipped["concurrency_limit"] == len(blocked) - 1
    runs = scheduler.stats.runs_total
    assert max(scheduler.stats.recent_lateness[:runs]) == pytest.approx(h + 35.0 - blocked[-1])
    await scheduler.shutdown(0)


async def test_blocked_runs_wait_without_a_task_each_and_are_served_in_deadline_order() -> None:
    clock = FakeClock()
    scheduler = Scheduler(1, clock)
    order: list[str] = []

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        async def probe(self) -> ProbeResult:
            order.append(self.name)
            return ProbeResult.ok()

        async def aclose(self) -> None:
            pass

    scheduler.start(ProbeState.new(spec("hog", interval=1000.0, timeout=70.0)), ScriptedProbe(clock, takes=65.0))
    names = [f"w{i}" for i in range(50)]
    states = {n: ProbeState.new(spec(n, interval=60.0)) for n in names}
    for n in names:
        scheduler.start(states[n], Recording(n))
    h = first_deadline("hog", 1000.0, 0.0, WALL0)
    before = len(asyncio.all_tasks())
    await clock.advance(h + 30.0)
    # Every waiter has fallen due during the hog's attempt: the dispatcher and the hog's attempt
    # are the only new tasks (waiting on the semaphore would take one task per waiter).
    assert len(asyncio.all_tasks()) <= before + 1
    order.clear()
    await clock.advance(40.0)  # the hog ends at h + 65: the slot serves the waiters one by one
    last_due = {n: max(d for d in _deadlines(n, 60.0, h + 65.0)) for n in names}
    assert all(h < d < h + 65.0 for d in last_due.values())
    assert order[:50] == sorted(names, key=last_due.__getitem__)
    skipped = sum(sum(1 for d in _deadlines(n, 60.0, h + 65.0) if h < d) - 1 for n in names)
    assert scheduler.stats.skipped["concurrency_limit"] == skipped
    await scheduler.shutdown(0)


async def test_stop_cancels_an_attempt_in_flight_and_its_slot_comes_back() -> None:
    clock = FakeClock()
    scheduler = Scheduler(1, clock)
    cancelled = asyncio.Event()

    class Hanging:
        async def probe(self) -> ProbeResult:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("unreachable")

        async def aclose(self) -> None:
            pass

    scheduler.start(ProbeState.new(spec("hang", interval=1000.0, timeout=900.0)), Hanging())
    x = ScriptedProbe(clock)
    scheduler.start(ProbeState.new(spec("x", interval=10.0)), x)
    h = first_deadline("hang", 1000.0, 0.0, WALL0)
    await clock.advance(h + 1.0)
    assert scheduler.stats.in_flight == 1
    runs = len(x.starts)
    await scheduler.stop("hang")
    assert cancelled.is_set() and scheduler.stats.in_flight == 0
    await clock.advance(30.0)
    assert x.starts[runs:] == pytest.approx([d for d in _deadlines("x", 10.0, h + 31.0) if d > h + 1.0])
    await scheduler.shutdown(0)


async def test_a_larger_cap_serves_waiting_runs_at_once() -> None:
    clock = FakeClock()
    scheduler = Scheduler(1, clock)
    scheduler.start(ProbeState.new(spec("hog", interval=1000.0, timeout=40.0)), ScriptedProbe(clock, takes=35.0))
    x = ScriptedProbe(clock)
    scheduler.start(ProbeState.new(spec("x", interval=10.0)), x)
    h = first_deadline("hog", 1000.0, 0.0, WALL0)
    blocked = next(d for d in _deadlines("x", 10.0, h + 35.0) if d > h)
    await clock.advance(blocked + 0.5 - clock.now())
    assert x.starts[-1] < h  # waiting for the hog's slot
    scheduler.resize(2)  # a reload raised max_concurrency
    await clock.advance(0)
    assert x.starts[-1] == pytest.approx(blocked + 0.5)
    await scheduler.shutdown(0)
