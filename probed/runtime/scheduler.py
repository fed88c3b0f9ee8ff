"""Owns time: when each probe runs, for how long, and how many run at once.

* Drift-free: deadlines are `phase + k * interval` computed on the loop's monotonic clock, never
  "now + interval", so a probe keeps its cadence however long each attempt takes.
* Staggered: a probe's phase within its interval comes from a hash of its name, anchored to wall
  time. It is stable across restarts and reloads, and 10,000 probes with the same interval spread
  evenly over it instead of firing together.
* No overlap: a probe's next run waits for its previous one; deadlines missed meanwhile are
  skipped and counted (`overrun`). The timeout is enforced here (by `run_attempt`), and a cap
  bounds attempts in flight; a run that cannot get a slot before its next deadline is skipped
  (`concurrency_limit`) rather than queued without bound.
* One dispatcher, not one task per probe. A sleeping probe is one `(deadline, seq)` item in a heap;
  a single task sleeps until the earliest deadline, starts every attempt then due as a task, and
  each attempt puts its probe's next deadline back when it ends: tasks exist only for attempts in
  flight. A task per probe kept each probe's loop simple, but every sleeping probe then held a
  task, a coroutine frame, a future, a timer handle and a context, which CPython's collections walk
  again and again: their pauses were the scheduler's lateness tail, growing with the probes. A heap
  item holds a float and an int, which the collector stops tracking; the one `_Entry` per probe
  lives as long as the probe and is frozen with the config (`collector.settle()`).
* Runs that find every slot taken wait in one FIFO (not in a task each), served in order as slots
  free up; a run still waiting when its probe's next deadline comes is dropped and skipped.
* Stopping a probe forgets its heap and FIFO items rather than searching for them: they are
  skipped when they surface, or swept at once when they outnumber the live ones.
"""

from __future__ import annotations

import asyncio
import logging
import math
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from heapq import heapify, heappop, heappush

from probed.probes import Probe
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.clock import Clock, LoopClock, next_slot, phase_of, set_done, wake_up
from probed.runtime.state import ProbeState

log = logging.getLogger("probed.scheduler")

LATENESS_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_RESERVOIR = 8192
DISPATCH_EARLY_S = 0.001
"""Deadlines this close are dispatched now: uvloop rounds timers to whole milliseconds, so a
dispatcher that slept until a deadline less than 1 ms away would wake at once, find it not yet
due and spin. Starting up to 1 ms early is fine: lateness is what we guarantee."""
DISPATCH_BATCH = 512
"""Deadlines handled before the dispatcher yields, so that a burst (after a pause of the loop,
or many probes sharing a phase) lets the attempts it started and the loop's I/O run meanwhile."""
STALE_SLACK = 64
"""Stale heap or FIFO items tolerated beyond half the live ones before a sweep removes them."""


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


class _Entry:
    """One scheduled probe. Heap and FIFO items name it by `seq`, the number of its live heap item."""

    __slots__ = ("deadline", "interval", "name", "phase", "probe", "seq", "state", "stopped", "task", "timeout",
                 "waiting")

    def __init__(self, state: ProbeState, probe: Probe) -> None:
        spec = state.spec
        self.name = spec.name
        self.state = state
        self.probe = probe
        self.interval = spec.interval
        self.timeout = spec.timeout
        self.phase = phase_of(self.name, self.interval)
        self.seq = 0
        """Its item in the heap (0: none, while its attempt runs)."""
        self.deadline = 0.0
        """While `waiting`: the deadline of the run that waits for a slot."""
        self.waiting = False
        self.stopped = False
        self.task: asyncio.Task[None] | None = None
        """The attempt in flight."""


class Scheduler:
    def __init__(self, max_concurrency: int, clock: Clock | None = None) -> None:
        self.stats = SchedulerStats()
        self._clock = clock
        self._limit = max_concurrency
        self._running = 0
        """Slots taken: attempts started (or about to start) and not yet finished."""
        self._entries: dict[str, _Entry] = {}
        self._new: list[_Entry] = []
        """Started, not yet given a first deadline: the dispatcher does that when it next runs."""
        self._heap: list[tuple[float, int]] = []
        self._scheduled: dict[int, _Entry] = {}
        """The live heap items by seq; any other heap item is stale (its probe stopped or moved on)."""
        self._heap_stale = 0
        self._fifo: deque[int] = deque()
        """Seqs of runs waiting for a slot: a run is live while its probe's next deadline is `seq`."""
        self._fifo_stale = 0
        self._seq = 0
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._sleeping_until = -math.inf
        """The dispatcher's wake-up time while it sleeps; -inf while it runs (it will look anyway)."""
        self._stopping = False
        self._lag_task: asyncio.Task[None] | None = None
        self.started = False

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = LoopClock()
        return self._clock

    def resize(self, max_concurrency: int) -> None:
        """Apply a reloaded concurrency cap. Attempts in flight count against it; new slots serve
        the runs waiting for one at once."""
        self._limit = max_concurrency
        self._serve_fifo()

    def start(self, state: ProbeState, probe: Probe) -> None:
        name = state.spec.name
        assert name not in self._entries, f"probe {name} is already scheduled"
        # The first deadline is reckoned by the dispatcher when it next runs, as each probe's own
        # task once did: starting many probes holds the loop a while (building them, then settling
        # the collector), and deadlines reckoned before that would all fall due at once.
        self._new.append(_Entry(state, probe))
        self._entries[name] = self._new[-1]
        self._wake_dispatcher()
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="scheduler")
            self._dispatcher.add_done_callback(_report_crash)
        self.started = True

    def start_lag_monitor(self, every_s: float = 0.25) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._watch_lag(every_s), name="loop-lag")

    @property
    def names(self) -> set[str]:
        return set(self._entries)

    async def stop(self, name: str) -> None:
        """Stop scheduling one probe at once, cancelling an attempt in flight."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        entry.stopped = True
        self._unschedule(entry)
        self._sweep()
        task = entry.task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self, grace_s: float) -> None:
        """Stop scheduling; let attempts in flight finish within `grace_s`, then cancel the rest."""
        self._stopping = True
        entries = list(self._entries.values())
        self._entries.clear()
        self._new.clear()
        self._heap.clear()
        self._scheduled.clear()
        self._fifo.clear()
        self._heap_stale = self._fifo_stale = 0
        background = [t for t in (self._dispatcher, self._lag_task) if t is not None]
        for t in background:
            t.cancel()
        # Sleeping probes and runs waiting for a slot stop now; an attempt in flight finishes first.
        busy = [e.task for e in entries if e.task is not None]
        for e in entries:
            e.stopped, e.waiting, e.seq = True, False, 0
        if busy:
            _done, pending = await asyncio.wait(busy, timeout=grace_s)
            for t in pending:
                t.cancel()
        await asyncio.gather(*background, *busy, return_exceptions=True)

    # ---- the dispatcher and the attempts it starts
    def _schedule(self, entry: _Entry, deadline: float) -> int:
        self._seq += 1
        seq = entry.seq = self._seq
        self._scheduled[seq] = entry
        heappush(self._heap, (deadline, seq))
        if deadline < self._sleeping_until:  # earlier than its wake-up: it will sleep again until then
            self._wake_dispatcher()
        return seq

    def _wake_dispatcher(self) -> None:
        if self._sleeping_until > -math.inf:
            self._sleeping_until = -math.inf
            if self._wake is not None:
                set_done(self._wake)

    def _unschedule(self, entry: _Entry) -> None:
        if entry.seq:
            del self._scheduled[entry.seq]
            entry.seq, self._heap_stale = 0, self._heap_stale + 1
        if entry.waiting:
            entry.waiting, self._fifo_stale = False, self._fifo_stale + 1

    async def _dispatch(self) -> None:
        clock, heap, scheduled = self.clock, self._heap, self._scheduled
        loop = asyncio.get_running_loop()
        while True:
            if self._new:
                now, wall = clock.now(), clock.wall()
                new, self._new = self._new, []
                for fresh in new:
                    if not fresh.stopped:
                        self._schedule(fresh, next_slot(fresh.phase, fresh.interval, now, wall))
            handled = 0
            while heap and heap[0][0] <= clock.now() + DISPATCH_EARLY_S and handled < DISPATCH_BATCH:
                deadline, seq = heappop(heap)
                entry = scheduled.pop(seq, None)
                if entry is None:
                    self._heap_stale -= 1
                    continue
                entry.seq = 0
                self._due(entry, deadline)
                handled += 1
            if handled == DISPATCH_BATCH:
                await asyncio.sleep(0)
                continue
            self._sweep()
            timer: asyncio.Future[None] | None = None
            if not heap:
                self._sleeping_until = math.inf
                wake = loop.create_future()
            else:
                self._sleeping_until = heap[0][0]
                sleep = clock.sleep_until(heap[0][0])
                if isinstance(sleep, asyncio.Future) and not isinstance(sleep, asyncio.Task):
                    # Await the clock's own future, and complete it ourselves to wake early: a
                    # second future would put one more pass of the loop between a deadline and its
                    # attempt, and a pass can be long (a scrape's render slice).
                    wake = sleep
                else:
                    wake = loop.create_future()
                    timer = asyncio.ensure_future(sleep)
                    timer.add_done_callback(partial(wake_up, wake))
            self._wake = wake
            try:
                await wake
            finally:
                self._sleeping_until = -math.inf
                if timer is not None and not timer.done():
                    timer.cancel()

    def _due(self, entry: _Entry, deadline: float) -> None:
        """A probe's deadline came: start its attempt, or queue the run until its next deadline."""
        if entry.waiting:
            # Every slot stayed taken from its previous deadline to this one: that run is skipped,
            # and this one queues afresh, at the back.
            entry.waiting = False
            self._fifo_stale += 1
            self._skip(entry, "concurrency_limit", 1)
        if self._running < self._limit:
            self._launch(entry, deadline)
        else:
            entry.waiting = True
            entry.deadline = deadline
            self._fifo.append(self._schedule(entry, deadline + entry.interval))

    def _serve_fifo(self) -> None:
        fifo, scheduled = self._fifo, self._scheduled
        while fifo and self._running < self._limit:
            seq = fifo.popleft()
            entry = scheduled.pop(seq, None)
            if entry is None:
                self._fifo_stale -= 1
                continue
            # It runs for the deadline it waited on; the heap item for its next one goes stale.
            entry.seq, entry.waiting, self._heap_stale = 0, False, self._heap_stale + 1
            self._launch(entry, entry.deadline)

    def _launch(self, entry: _Entry, deadline: float) -> None:
        self._running += 1
        task = entry.task = asyncio.create_task(self._attempt(entry, deadline), name=entry.name)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        # The slot comes back here rather than in the attempt's `finally`: an attempt cancelled
        # before it began (stop() right after its dispatch) never runs its body.
        self._running -= 1
        _report_crash(task)
        self._serve_fifo()

    async def _attempt(self, entry: _Entry, deadline: float) -> None:
        clock, stats = self.clock, self.stats
        try:
            stats.observe_lateness(clock.now() - deadline)
            stats.in_flight += 1
            try:
                result = await run_attempt(entry.probe, entry.timeout)
            finally:
                stats.in_flight -= 1
            entry.state.record(result, clock.wall())
        finally:
            entry.task = None  # a sleeping probe keeps no finished task alive
        if self._stopping or entry.stopped:
            return
        interval = entry.interval
        deadline += interval
        behind = clock.now() - deadline
        if behind > 0:
            # Never overlap and never burst to catch up: skip the deadlines already missed.
            missed = math.floor(behind / interval) + 1
            deadline += missed * interval
            self._skip(entry, "overrun", missed)
        self._schedule(entry, deadline)

    def _skip(self, entry: _Entry, cause: str, runs: int) -> None:
        entry.state.skipped[cause] += runs
        self.stats.skipped[cause] += runs

    def _sweep(self) -> None:
        """Drop stale items once they outnumber the live ones (plus some slack): O(1) amortized."""
        scheduled = self._scheduled
        if self._heap_stale > STALE_SLACK + len(self._heap) // 2:
            self._heap[:] = [item for item in self._heap if item[1] in scheduled]
            heapify(self._heap)
            self._heap_stale = 0
        if self._fifo_stale > STALE_SLACK + len(self._fifo) // 2:
            live = [seq for seq in self._fifo if seq in scheduled]
            self._fifo.clear()
            self._fifo.extend(live)
            self._fifo_stale = 0

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


def _report_crash(task: asyncio.Task[None]) -> None:
    """A bug in the dispatcher or in recording must not pass unnoticed: log it, with its traceback."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("scheduler task %s failed", task.get_name(), exc_info=exc)
