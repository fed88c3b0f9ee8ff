"""The ring-buffer core: everything probed remembers about a probe, preallocated, O(1) to record.

One `ProbeRing` per probe holds three views, all allocated up front and never resized:

* **raw samples** (wall timestamp, latency, reason code) in a circular buffer sized to cover the
  longest percentile window at the probe's interval: exact p50/p90/p95/p99 over 1m/5m/1h;
* **time-bucketed counters** (attempts, failures, fast = succeeded within the latency threshold)
  at two resolutions: one slot per minute for 6 hours and one per hour for 31 days. That is what
  an SLO engine needs for rolling 30-day budgets and burn rates over 5m ... 3d;
* **cumulative counters** for Prometheus: success/failure totals, a classic latency histogram.

Why `array.array` and not NumPy for storage: a Python-level store into an array('d') costs about
a third of a store into a NumPy array (no scalar boxing through NumPy's setitem), and the record
path is the one hot path the core has. Readers get zero-copy NumPy views with `np.frombuffer`.

Concurrency: exactly one writer (the event loop) calls `record()`. Readers never lock and never
block it. The writer fills a raw slot first and publishes it by incrementing `written` last; a
reader snapshots `written`, copies, re-reads `written` and drops any slot the writer may have
lapped meanwhile (a seqlock without the lock). Under the GIL each element store is atomic, so a
reader running in another thread sees whole values. Bucket counters are read as a best-effort
snapshot: an increment racing a read lands in the next read, which Prometheus tolerates.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MINUTE_SLOTS = 6 * 60  # 6 hours at one-minute resolution: burn-rate windows 5m, 30m, 1h, 6h
HOUR_SLOTS = 31 * 24  # 31 days at one-hour resolution: 1d, 3d and the 30-day budget window
MAX_RAW_WINDOW_S = 3600.0
MIN_RAW_CAPACITY = 64
MAX_RAW_CAPACITY = 4096

# Log-spaced classic histogram buckets, 1 ms to 60 s. Common SLO thresholds (100/200/250/300/500 ms,
# 1/2 s) are exact boundaries so `rate(..._bucket{le="0.3"})` works as an SLI in PromQL.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


def raw_capacity_for(interval_s: float, window_s: float = MAX_RAW_WINDOW_S) -> int:
    """Slots needed to keep every sample of the longest window, clamped to the memory budget."""
    need = math.ceil(window_s / max(interval_s, 1e-3)) + 1
    return max(MIN_RAW_CAPACITY, min(MAX_RAW_CAPACITY, need))


@dataclass(frozen=True, slots=True)
class WindowCounts:
    attempts: int
    failures: int
    fast: int
    """Attempts that succeeded within the latency threshold (the latency SLI's good events)."""

    @property
    def successes(self) -> int:
        return self.attempts - self.failures


@dataclass(frozen=True, slots=True)
class Samples:
    """A consistent copy of raw samples, oldest first."""

    timestamps: npt.NDArray[np.float64]
    latencies: npt.NDArray[np.float64]
    reasons: npt.NDArray[np.uint8]


def counter_type(width_s: int, interval_s: float) -> str:
    """The narrowest array typecode that holds a bucket's count at this interval (with slack for
    a late or retried run): one byte for most probes, two for frequent ones."""
    most = math.ceil(width_s / max(interval_s, 0.01)) + 2
    return "B" if most <= 0xFF else "H"


class Buckets:
    """A circular block of counters, one slot per time bucket: attempts, failures, fast.

    One array holds the rows back to back ([attempts | failures | fast], `size` each): one object
    per tier instead of three, and the block is what a checkpoint writes as it is. Counters are as
    narrow as the probe's interval allows (`counter_type`): a probe every 30 s needs one byte per
    minute and per hour, a probe every 100 ms two. Without a latency threshold of its own a probe's
    fast attempts are exactly its successes (nothing succeeds after the timeout), so its tiers
    keep two rows (`rows=2`) and readers derive the third: a third less memory for most probes.
    The writer tracks the newest bucket it has written (`last`); moving into a new bucket clears
    the slots skipped since, so a slot always holds exactly one bucket and no per-slot tag is
    needed: the valid buckets are the `size` ones ending at `last`.
    """

    __slots__ = ("block", "last", "rows_kept", "size", "width")

    def __init__(self, size: int, width_s: int, typecode: str = "H", rows: int = 3) -> None:
        assert rows in (2, 3)
        self.size, self.width, self.rows_kept = size, width_s, rows
        self.last = -(2**62)
        self.block = array(typecode, bytes(rows * size * array(typecode).itemsize))

    def keep_fast_row(self) -> None:
        """Keep the fast row from now on (a latency threshold was configured): until now every
        success was fast, so the row starts as attempts - failures."""
        if self.rows_kept == 2:
            size, block = self.size, self.block
            block.extend(array(block.typecode, (block[i] - block[size + i] for i in range(size))))
            self.rows_kept = 3

    def add(self, ts: float, failed: bool, fast: bool) -> None:
        bucket = int(ts) // self.width
        if bucket > self.last:
            self._advance(bucket)
        elif bucket <= self.last - self.size:
            return  # older than anything kept (the wall clock jumped back): nowhere to count it
        slot = bucket % self.size
        block = self.block
        try:
            block[slot] += 1
            if failed:
                block[self.size + slot] += 1
            elif fast and self.rows_kept == 3:
                block[2 * self.size + slot] += 1
        except OverflowError:
            # Only reachable with a clock stuck inside one bucket: saturate rather than fail a record.
            pass

    def _advance(self, bucket: int) -> None:
        size, block, rows = self.size, self.block, range(0, self.rows_kept * self.size, self.size)
        if bucket - self.last >= size:  # a first record, or a gap longer than the span
            block[:] = array(block.typecode, bytes(len(block) * block.itemsize))
        else:  # usually one new bucket
            for b in range(self.last + 1, bucket + 1):
                slot = b % size
                for row in rows:
                    block[row + slot] = 0
        self.last = bucket

    def slots(self) -> npt.NDArray[np.unsignedinteger[Any]]:
        """The block as it lies, zero-copy: (rows_kept, size), bucket b's counters in column b % size."""
        counts: npt.NDArray[np.unsignedinteger[Any]] = np.frombuffer(
            self.block, dtype=np.uint8 if self.block.typecode == "B" else np.uint16)
        return counts.reshape(self.rows_kept, self.size)

    def rows(self, lo: int, hi: int) -> npt.NDArray[np.uint16]:
        """Counters of buckets lo..hi (bucket numbers, inclusive) as a (3, n) array, oldest first;
        buckets not kept (before the span, or after `last`) are zero."""
        n = hi - lo + 1
        out = np.zeros((3, max(n, 0)), dtype=np.uint16)
        first, last = max(lo, self.last - self.size + 1), min(hi, self.last)
        if n <= 0 or last < first:
            return out
        idx = np.arange(first, last + 1) % self.size
        out[:self.rows_kept, first - lo:last - lo + 1] = self.slots()[:, idx]
        if self.rows_kept == 2:
            out[2] = out[0] - out[1]  # every success is fast (see the class docstring)
        return out

    def window(self, now: float, window_s: float) -> WindowCounts:
        """Sum of the buckets overlapping (now - window, now]; partial edge buckets count whole."""
        current = int(now) // self.width
        oldest = current - max(1, math.ceil(window_s / self.width)) + 1
        attempts, failures, fast = (int(x) for x in self.rows(oldest, current).sum(axis=1, dtype=np.int64))
        return WindowCounts(attempts, failures, fast)

    @property
    def span_s(self) -> int:
        return self.size * self.width


class ProbeRing:
    """Preallocated history of one probe. `record()` is O(1) and allocates nothing."""

    __slots__ = (
        "_hist_bounds", "_lat", "_reason", "_ts", "capacity", "failures_total", "fast_total", "hist_counts",
        "hist_sum", "hours", "latency_threshold_s", "minutes", "successes_total", "written",
    )

    def __init__(self, capacity: int, latency_threshold_s: float,
                 buckets: Sequence[float] = DEFAULT_BUCKETS, interval_s: float = 0.1, fast_row: bool = True) -> None:
        """`interval_s` sizes the bucket counters (the default, the shortest interval, is widest);
        `fast_row` False: the latency threshold is the timeout, and fast attempts are the successes."""
        self.capacity = capacity
        self.latency_threshold_s = latency_threshold_s
        self._ts = array("d", [0.0]) * capacity
        # Latencies in single precision: a float32 keeps 7 significant digits, sub-microsecond at
        # any duration an attempt can have, in half the memory.
        self._lat = array("f", [0.0]) * capacity
        self._reason = array("B", [0]) * capacity
        self.written = 0
        rows = 3 if fast_row else 2
        self.minutes = Buckets(MINUTE_SLOTS, 60, counter_type(60, interval_s), rows)
        self.hours = Buckets(HOUR_SLOTS, 3600, counter_type(3600, interval_s), rows)
        self.successes_total = 0
        self.failures_total = 0
        self.fast_total = 0
        self._hist_bounds = tuple(buckets)
        self.hist_counts = array("Q", [0]) * (len(buckets) + 1)  # last slot: +Inf
        self.hist_sum = 0.0

    # ---- the writer
    def record(self, ts: float, latency_s: float, reason_code: int) -> None:
        """Record one attempt at wall time `ts`. reason_code 0 means success."""
        slot = self.written % self.capacity
        self._ts[slot] = ts
        self._lat[slot] = latency_s
        self._reason[slot] = reason_code
        self.written += 1  # publish: readers only look below `written`
        failed = reason_code != 0
        fast = not failed and latency_s <= self.latency_threshold_s
        self.minutes.add(ts, failed, fast)
        self.hours.add(ts, failed, fast)
        if failed:
            self.failures_total += 1
        else:
            self.successes_total += 1
            if fast:
                self.fast_total += 1
        self.hist_counts[bisect_left(self._hist_bounds, latency_s)] += 1
        self.hist_sum += latency_s

    # ---- readers
    @property
    def buckets(self) -> tuple[float, ...]:
        return self._hist_bounds

    def samples(self) -> Samples:
        """Copy of the raw samples currently held, oldest first, safe against a concurrent writer."""
        before = self.written
        count = min(before, self.capacity)
        ts = self._ordered(self._ts, np.float64, before, count)
        lat = self._ordered(self._lat, np.float32, before, count).astype(np.float64)
        rs = self._ordered(self._reason, np.uint8, before, count)
        # Drop what the writer may have overwritten while we copied: every slot it published since,
        # plus, when the ring is full, the oldest slot, which it may be writing right now unpublished.
        drop = self.written - before + (1 if count == self.capacity else 0)
        if drop:
            ts, lat, rs = ts[drop:], lat[drop:], rs[drop:]
        return Samples(ts, lat, rs)

    def _ordered(self, buf: array[Any], dtype: type[np.generic], written: int, count: int) -> npt.NDArray[Any]:
        view = np.frombuffer(buf, dtype=dtype)
        if count < self.capacity:  # not wrapped yet: slots 0 .. count-1
            return view[:count].copy()
        end = written % self.capacity  # wrapped: the oldest slot is the next one to be written
        return np.concatenate((view[end:], view[:end]))

    def window_counts(self, now: float, window_s: float) -> WindowCounts:
        """Attempts, failures and fast successes over the window ending at `now` (wall seconds).

        Windows up to 6 h use minute buckets, longer ones hour buckets (up to 31 days).
        """
        tier = self.minutes if window_s <= self.minutes.span_s - 60 else self.hours
        return tier.window(now, window_s)

    def covered_s(self, now: float, window_s: float) -> float:
        """How much of the window holds attempts: its buckets with any, times their width."""
        tier = self.minutes if window_s <= self.minutes.span_s - 60 else self.hours
        current = int(now) // tier.width
        rows = tier.rows(current - max(1, math.ceil(window_s / tier.width)) + 1, current)
        return float(np.count_nonzero(rows[0]) * tier.width)

    def percentiles(self, now: float, windows: Sequence[float],
                    quantiles: Sequence[float] = QUANTILES) -> dict[float, list[float] | None]:
        """Exact quantiles of latency over each window, over the samples kept (None: no samples).

        Only successful attempts count: a refused connection fails in microseconds and would drag
        the median down exactly when the service is down. Failures have their own counters.
        Samples are in time order, so each window is a suffix found by binary search; one sort per
        window and direct interpolation is several times cheaper than np.quantile's overhead.
        """
        return self.percentiles_until(now, windows, quantiles)[0]

    def percentiles_until(self, now: float, windows: Sequence[float], quantiles: Sequence[float] = QUANTILES,
                          ) -> tuple[dict[float, list[float] | None], float]:
        """`percentiles()` and the wall time until which they hold: the first moment a sample
        leaves one of the windows (inf if none holds any). Only a new record changes them before."""
        s = self.samples()
        out: dict[float, list[float] | None] = {}
        until = math.inf
        for window in windows:
            start = int(np.searchsorted(s.timestamps, now - window, side="right"))
            if start < len(s.timestamps):
                until = min(until, float(s.timestamps[start]) + window)
            lat = s.latencies[start:][s.reasons[start:] == 0]
            out[window] = _quantiles_of(np.sort(lat), quantiles) if lat.size else None
        return out, until


def _quantiles_of(ordered: npt.NDArray[np.float64], quantiles: Sequence[float]) -> list[float]:
    """Linear interpolation between closest ranks (NumPy's default method), on sorted data."""
    data = ordered.tolist()
    last = len(data) - 1
    result = []
    for q in quantiles:
        pos = q * last
        lo = int(pos)
        hi = min(lo + 1, last)
        result.append(data[lo] + (data[hi] - data[lo]) * (pos - lo))
    return result
