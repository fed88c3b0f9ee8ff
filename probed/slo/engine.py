"""Evaluating SLOs from the probes' rings, in the background, a slice at a time.

Nothing here runs on the attempt path: the rings already count attempts, failures and fast
successes per minute (6 h) and per hour (31 d). A pass reads those buckets for every SLO and
keeps the result (`SloReport`) for the exposition, the API and the status page to read.

Two things an SLO keeps for itself, because the rings cannot give them back later:
* with `budgeting: timeslices`, the verdict of each completed minute, counted per hour for 31
  days (`SliceLedger`): the rings keep minutes for 6 hours only;
* monotonic event counters for Prometheus (`probed_slo_events_total`): the sum of the probes'
  own counters would go down when a reload takes a probe out of the SLO, which Prometheus reads
  as a counter reset and an increase of the whole remaining count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from probed.config.slo import SloSpec
from probed.runtime.ring import HOUR_SLOTS, MINUTE_SLOTS, Buckets, ProbeRing
from probed.runtime.slicing import SLICE_S, Slices
from probed.runtime.state import ProbeState
from probed.runtime.windows import BURN_RATE_WINDOWS
from probed.slo import math as slo_math
from probed.slo.math import Counts

log = logging.getLogger("probed.slo")

EVALUATE_EVERY_S = 10.0
REST_S = 3 * SLICE_S
"""Pause between a pass's slices: the engine holds at most a quarter of the loop's time, so a pass
spreads over a few times its CPU time, well within EVALUATE_EVERY_S."""
SHORT_WINDOW_S = 6 * 3600.0
"""Windows up to this long are read from minute buckets, longer ones from hour buckets."""


@dataclass(frozen=True)
class SloReport:
    """One evaluation of one SLO. Ratios are None where the window has no data."""

    spec: SloSpec
    at: float
    windows: Mapping[str, Counts]
    """Window label -> counts, for BURN_RATE_WINDOWS and the SLO's own window."""
    budget_remaining: float | None
    exhaustion_s: float | None
    coverage: float
    events: Counts
    """Cumulative good and total events (timeslices, with timeslice budgeting) since first seen."""

    def sli(self, window: str) -> float | None:
        return slo_math.sli(self.windows[window])

    def burn_rate(self, window: str) -> float | None:
        return slo_math.burn_rate(self.windows[window], self.spec.objective)


class Series:
    """An SLO's probes added up per bucket, newest last: what one evaluation reads.

    `minutes` cover the 6 hours the rings keep per minute, ending with the current minute;
    `hours` the 31 days kept per hour, ending with the current hour. Row 0 is attempts, row 1
    good events (successes, or fast successes for a latency SLI). Every window is then a sum over
    the newest buckets, read from running sums built once per tier.
    """

    __slots__ = ("_back", "hours", "minute", "minutes")

    def __init__(self, minutes: npt.NDArray[np.int64], hours: npt.NDArray[np.int64], minute: int) -> None:
        self.minutes, self.hours, self.minute = minutes, hours, minute
        self._back: list[npt.NDArray[np.int64] | None] = [None, None]  # running sums: minutes, hours

    @classmethod
    def of(cls, rings: Sequence[ProbeRing], spec: SloSpec, now: float) -> Series:
        minute, hour = int(now) // 60, int(now) // 3600
        latency = spec.sli == "latency"
        return cls(_summed([r.minutes for r in rings], MINUTE_SLOTS, minute, latency),
                   _summed([r.hours for r in rings], HOUR_SLOTS, hour, latency), minute)

    def _tier(self, window_s: float) -> tuple[npt.NDArray[np.int64], int]:
        if window_s <= SHORT_WINDOW_S:
            return self.minutes, max(1, math.ceil(window_s / 60))
        return self.hours, min(HOUR_SLOTS, max(1, math.ceil(window_s / 3600)))

    def counts(self, window_s: float) -> Counts:
        """Good and total events in the buckets overlapping the window (edge buckets whole)."""
        tier, n = self._tier(window_s)
        which = 0 if tier is self.minutes else 1
        back = self._back[which]
        if back is None:  # sums from the newest bucket back, once per tier: then any window is one read
            back = self._back[which] = np.cumsum(tier[:, ::-1], axis=1)
        return Counts(int(back[1, n - 1]), int(back[0, n - 1]))

    def slices(self, window_s: float, good_ratio: float) -> Counts:
        """Good and total minutes with data among the completed minutes of the window."""
        n = min(MINUTE_SLOTS - 1, max(1, math.ceil(window_s / 60)))
        attempts, good = self.minutes[0, -n - 1:-1], self.minutes[1, -n - 1:-1]
        slices = attempts > 0
        return Counts(int((slices & (good >= good_ratio * attempts - 1e-9)).sum()), int(slices.sum()))

    def coverage(self, window_s: float) -> float:
        """The share of the window's buckets in which any of the probes made an attempt.

        The current bucket has only just begun: it counts when it has data, never against."""
        tier, n = self._tier(window_s)
        covered = tier[0, -n:] > 0
        buckets = n - (0 if covered[-1] else 1)
        return float(covered.sum()) / buckets if buckets > 0 else 0.0


def _summed(tiers: Sequence[Buckets], size: int, current: int, latency: bool) -> npt.NDArray[np.int64]:
    """The tiers' buckets added up: (2, size), attempts then good events, ending at bucket `current`.

    Each tier's block is added as it lies (slot = bucket % size, the same for every tier of a
    size), with no copy, and the sum is put in time order once: reading each tier in time order
    first (`Buckets.rows`) allocated and indexed per probe, the most of a pass. A tier whose
    newest bucket is not `current` still holds, in the slots of the buckets between the two, what
    it counted one span earlier (the writer clears a slot only when it moves into it): those slots
    are taken back out.
    """
    attempts = np.zeros(size, dtype=np.int64)
    bad = np.zeros(size, dtype=np.int64)
    for tier in tiers:
        behind = current - tier.last  # below 0 when the wall clock went back since it counted
        if abs(behind) >= size:
            continue  # nothing it keeps falls in the span ending now
        counts = tier.slots()
        if behind:
            stale = np.arange(min(current, tier.last) + 1, max(current, tier.last) + 1) % size
            counts = counts.copy()
            counts[:, stale] = 0
        attempts += counts[0]
        # Bad events: failures, or for a latency SLI the attempts that were not fast (with two rows
        # kept, every success was fast: see Buckets).
        if latency and tier.rows_kept == 3:
            bad += counts[0]
            bad -= counts[2]
        else:
            bad += counts[1]
    shift = -((current + 1) % size)  # the slot after the current bucket's holds the oldest one
    return np.roll(np.stack((attempts, attempts - bad)), shift, axis=1)


@dataclass
class SliceLedger:
    """Verdicts of completed minutes (good when the good share reaches good_ratio), per hour."""

    hours: Buckets = field(default_factory=lambda: Buckets(HOUR_SLOTS, 3600))
    last_minute: int | None = None
    good_total: int = 0
    bad_total: int = 0

    def update(self, series: Series, spec: SloSpec, now: float) -> None:
        done = series.minute - 1  # the last completed minute
        oldest_kept = done - MINUTE_SLOTS + 2
        first = oldest_kept if self.last_minute is None else max(self.last_minute + 1, oldest_kept)
        self.last_minute = done
        if first > done:
            return
        # minutes[:, -1] is the current minute, so minute m sits at index m - series.minute - 1.
        attempts = series.minutes[0, first - done - 2:-1]
        good = series.minutes[1, first - done - 2:-1]
        for i in np.flatnonzero(attempts):
            bad = bool(good[i] < spec.good_ratio * attempts[i] - 1e-9)
            self.hours.add((first + int(i)) * 60, failed=bad, fast=False)
            if bad:
                self.bad_total += 1
            else:
                self.good_total += 1

    def window(self, now: float, window_s: float) -> Counts:
        c = self.hours.window(now, window_s)
        return Counts(c.attempts - c.failures, c.attempts)


@dataclass
class EventCounter:
    """Monotonic good/bad totals built from the probes' own totals by their increases."""

    good: int = 0
    bad: int = 0
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def update(self, totals: Mapping[str, tuple[int, int]]) -> None:
        for name, (good, bad) in totals.items():
            before_good, before_bad = self.seen.get(name, (0, 0))
            # A probe whose counters went down was rebuilt (new ring): count what it has now.
            self.good += good - before_good if good >= before_good else good
            self.bad += bad - before_bad if bad >= before_bad else bad
            self.seen[name] = (good, bad)
        for name in [n for n in self.seen if n not in totals]:
            del self.seen[name]


class SloEngine:
    """Keeps every SLO's report fresh. `states` is read, never written."""

    def __init__(self) -> None:
        self.reports: dict[str, SloReport] = {}
        self.ledgers: dict[str, SliceLedger] = {}
        self.counters: dict[str, EventCounter] = {}
        self.specs: tuple[SloSpec, ...] = ()

    def configure(self, specs: Sequence[SloSpec]) -> None:
        """Take a (re)loaded config's SLOs; history of SLOs that stay is kept."""
        names = {s.name for s in specs}
        for table in (self.reports, self.ledgers, self.counters):
            for name in [n for n in table if n not in names]:
                del table[name]
        self.specs = tuple(specs)

    def evaluate(self, spec: SloSpec, states: Mapping[str, ProbeState], now: float) -> SloReport:
        rings = [states[n].ring for n in spec.probes if n in states]
        series = Series.of(rings, spec, now)
        if spec.budgeting == "timeslices":
            ledger = self.ledgers.setdefault(spec.name, SliceLedger())
            ledger.update(series, spec, now)
            events = Counts(ledger.good_total, ledger.good_total + ledger.bad_total)
        else:
            counter = self.counters.setdefault(spec.name, EventCounter())
            counter.update({n: _event_totals(states[n].ring, spec) for n in spec.probes if n in states})
            events = Counts(counter.good, counter.good + counter.bad)
        window_s = self.window_s(spec, now)
        windows = {label: self._counts(spec, series, now, seconds)
                   for label, seconds in (*BURN_RATE_WINDOWS, (spec.window_label, window_s))}
        remaining = slo_math.budget_remaining(windows[spec.window_label], spec.objective)
        full_window = slo_math.calendar_length(now, spec.calendar) if spec.calendar else spec.window_s
        exhaustion = slo_math.exhaustion_seconds(
            remaining, slo_math.burn_rate(windows["1h"], spec.objective), full_window)
        report = SloReport(spec, now, windows, remaining, exhaustion, series.coverage(window_s), events)
        self.reports[spec.name] = report
        return report

    @staticmethod
    def window_s(spec: SloSpec, now: float) -> float:
        """The SLO window's length now: fixed when rolling, since the period began for calendars."""
        if spec.calendar is None:
            return spec.window_s
        return max(60.0, now - slo_math.calendar_start(now, spec.calendar))

    def _counts(self, spec: SloSpec, series: Series, now: float, window_s: float) -> Counts:
        if spec.budgeting == "occurrences":
            return series.counts(window_s)
        if window_s <= SHORT_WINDOW_S:
            return series.slices(window_s, spec.good_ratio)
        return self.ledgers[spec.name].window(now, window_s)

    async def run(self, specs: Sequence[SloSpec], states: Mapping[str, ProbeState]) -> None:
        """One pass over every SLO, resting between slices of work (`REST_S`)."""
        slices = Slices(rest_s=REST_S)
        for spec in specs:
            try:
                self.evaluate(spec, states, time.time())
            except Exception:  # one SLO's bug must not stop the others' evaluation
                log.exception("evaluating SLO %s failed", spec.name)
            await slices.tick()

    async def loop(self, source: Source, every_s: float = EVALUATE_EVERY_S) -> None:
        """Evaluate every `every_s`, taking the SLOs and probe states from `source` each time
        (a reload may have changed them)."""
        while True:
            specs, states = source()
            if tuple(specs) != self.specs:
                self.configure(specs)
            await self.run(self.specs, states)
            await asyncio.sleep(every_s)


Source = Callable[[], tuple[Sequence[SloSpec], Mapping[str, ProbeState]]]


def _event_totals(ring: ProbeRing, spec: SloSpec) -> tuple[int, int]:
    attempts = ring.successes_total + ring.failures_total
    good = ring.fast_total if spec.sli == "latency" else ring.successes_total
    return good, attempts - good
