"""The ring-buffer core: bounded memory, exact percentiles, windowed counters, a safe reader."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from probed.runtime.ring import (
    HOUR_SLOTS,
    MAX_RAW_CAPACITY,
    MIN_RAW_CAPACITY,
    QUANTILES,
    ProbeRing,
    raw_capacity_for,
)

T0 = 1_800_000_000.0  # a fixed wall time: tests advance it by hand


def fill(ring: ProbeRing, n: int, step: float = 1.0, start: float = T0, fail_every: int = 0) -> float:
    ts = start
    for i in range(n):
        failed = fail_every and i % fail_every == 0
        ring.record(ts, (i % 100) / 1000.0, 3 if failed else 0)
        ts += step
    return ts - step


def test_raw_capacity_covers_an_hour_within_bounds() -> None:
    assert raw_capacity_for(10.0) == 361
    assert raw_capacity_for(0.1) == MAX_RAW_CAPACITY
    assert raw_capacity_for(3600.0) == MIN_RAW_CAPACITY


def test_storage_is_preallocated_and_never_grows() -> None:
    ring = ProbeRing(64, 0.5)
    sizes = (len(ring._ts), len(ring._lat), len(ring._reason))
    fill(ring, 1000)
    assert (len(ring._ts), len(ring._lat), len(ring._reason)) == sizes == (64, 64, 64)
    assert ring.written == 1000


def test_samples_are_the_newest_in_time_order_after_wrapping() -> None:
    ring = ProbeRing(64, 0.5)
    last = fill(ring, 200)
    s = ring.samples()
    # One slot of a full ring is the writer's (it may be mid-write), so readers get capacity - 1.
    assert len(s.timestamps) == 63
    assert s.timestamps[-1] == last
    assert np.all(np.diff(s.timestamps) == 1.0)


def test_percentiles_are_exact_over_each_window_and_ignore_failures() -> None:
    ring = ProbeRing(4096, 0.5)
    now = fill(ring, 3600, fail_every=7)
    got = ring.percentiles(now, [60.0, 3600.0])
    s = ring.samples()
    for window in (60.0, 3600.0):
        keep = (s.timestamps > now - window) & (s.reasons == 0)
        expected = np.quantile(s.latencies[keep], QUANTILES)
        assert got[window] == pytest.approx(expected.tolist())


def test_percentiles_of_an_empty_window_are_none() -> None:
    ring = ProbeRing(64, 0.5)
    fill(ring, 10)
    assert ring.percentiles(T0 + 10_000, [60.0]) == {60.0: None}


def test_percentiles_hold_until_the_oldest_sample_of_a_window_leaves_it() -> None:
    ring = ProbeRing(4096, 0.5)
    now = fill(ring, 100, step=10.0)  # one attempt every 10 s, the newest at `now`
    values, until = ring.percentiles_until(now, [60.0, 300.0])
    # The 60 s window's oldest sample is the one at now - 50: it leaves the window at now + 10.
    assert until == now + 10.0
    # Just before then the result is the same, exactly; at that moment it changes.
    assert ring.percentiles(until - 0.001, [60.0, 300.0]) == values
    assert ring.percentiles(until, [60.0, 300.0]) != values


def test_percentiles_of_windows_without_samples_hold_until_a_new_record() -> None:
    ring = ProbeRing(64, 0.5)
    fill(ring, 10)
    assert ring.percentiles_until(T0 + 10_000, [60.0]) == ({60.0: None}, float("inf"))


def test_window_counts_use_minutes_then_hours() -> None:
    ring = ProbeRing(64, latency_threshold_s=0.05)
    now = fill(ring, 7200, step=1.0, fail_every=10)  # two hours, one attempt per second
    five = ring.window_counts(now, 300)
    # Whole minute buckets: the 5 newest minutes (the current one partly filled).
    assert 240 <= five.attempts <= 300
    assert five.failures == pytest.approx(five.attempts / 10, abs=1)
    day = ring.window_counts(now, 86400)
    assert day.attempts == 7200 and day.failures == 720
    # fast = succeeded within 50 ms: latencies cycle 0..99 ms, so about half of the successes.
    assert 0.45 < day.fast / day.successes < 0.55


def test_hour_buckets_forget_beyond_their_span() -> None:
    ring = ProbeRing(64, 0.5)
    fill(ring, 10, start=T0)
    later = T0 + (HOUR_SLOTS + 2) * 3600
    ring.record(later, 0.01, 0)
    assert ring.window_counts(later, 30 * 86400).attempts == 1


def test_histogram_and_totals_count_every_attempt() -> None:
    ring = ProbeRing(64, 0.5)
    fill(ring, 100, fail_every=4)
    assert ring.successes_total + ring.failures_total == 100
    assert sum(ring.hist_counts) == 100
    assert ring.hist_sum == pytest.approx(sum(i / 1000 for i in range(100)))


def test_a_reader_in_another_thread_never_sees_torn_or_unordered_samples() -> None:
    ring = ProbeRing(256, 0.5)
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            s = ring.samples()
            if len(s.timestamps) and not np.all(np.diff(s.timestamps) > 0):
                problems.append("out of order")
            # The writer stores latency = timestamp offset / 1e6: a torn slot breaks the pairing.
            if not np.allclose(s.latencies, (s.timestamps - T0) / 1e6):
                problems.append("torn sample")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(200_000):
            ring.record(T0 + i, i / 1e6, 0)
    finally:
        stop.set()
        t.join()
    assert problems == []


@pytest.mark.parametrize(("interval", "minutes", "hours"), [(30.0, "B", "B"), (1.0, "B", "H"), (0.1, "H", "H")])
def test_bucket_counters_are_as_narrow_as_the_interval_allows(interval: float, minutes: str, hours: str) -> None:
    ring = ProbeRing(raw_capacity_for(interval), 1.0, interval_s=interval)
    assert (ring.minutes.block.typecode, ring.hours.block.typecode) == (minutes, hours)
    # The busiest bucket the interval allows still counts exactly.
    start = 1_700_000_040.0  # a minute boundary
    per_minute = int(60 / interval)
    for i in range(per_minute):
        ring.record(start + i * interval, 0.01, 0)
    assert ring.window_counts(start + 59.9, 60).attempts == per_minute


def test_a_bucket_pushed_past_its_width_saturates_instead_of_failing_the_record() -> None:
    ring = ProbeRing(64, 1.0, interval_s=30.0)  # one-byte counters
    for _ in range(300):  # a clock stuck inside one minute
        ring.record(1_700_000_040.0, 0.01, 0)
    assert ring.window_counts(1_700_000_040.0, 60).attempts == 255
    assert ring.successes_total == 300


def test_without_a_threshold_of_its_own_a_probe_keeps_two_rows_and_its_successes_are_fast() -> None:
    lean = ProbeRing(64, 0.5, interval_s=10.0, fast_row=False)
    full = ProbeRing(64, 0.5, interval_s=10.0)
    for ring in (lean, full):
        now = fill(ring, 7200, step=1.0, fail_every=10)  # latencies up to 0.099 s: all within 0.5 s
    assert len(lean.hours.block) == 2 * HOUR_SLOTS and len(full.hours.block) == 3 * HOUR_SLOTS
    for window in (300, 3600, 86400):
        assert lean.window_counts(now, window) == full.window_counts(now, window)
    assert lean.window_counts(now, 300).fast == lean.window_counts(now, 300).successes


def test_a_threshold_configured_later_starts_its_fast_row_from_the_successes_so_far() -> None:
    ring = ProbeRing(64, 0.5, interval_s=1.0, fast_row=False)
    now = fill(ring, 120, step=1.0, fail_every=10)  # two minutes, every attempt within 0.1 s
    before = ring.window_counts(now, 300)
    ring.latency_threshold_s = 0.05
    ring.minutes.keep_fast_row()
    ring.hours.keep_fast_row()
    assert ring.window_counts(now, 300) == before  # history unchanged: every success was fast
    ring.record(now + 1, 0.2, 0)  # a success slower than the new threshold
    after = ring.window_counts(now + 1, 300)
    assert (after.attempts, after.fast) == (before.attempts + 1, before.fast)
