"""The engine's totals when a probe's ring is not at the current bucket.

A ring clears a slot only when its writer moves into that slot's bucket. A probe that last
recorded a minute (or an hour) ago still holds, in the slot of the current bucket, what it
counted one whole span earlier (6 h for minutes, 31 days for hours); a probe whose clock was
ahead, and has gone back, holds future buckets in slots that, read in the span ending now, are
the oldest ones. The engine sums the rings' blocks slot by slot, so it must take those slots out:
these tests prove it does, on hand-built cases and against the rings' own time-ordered reading
(`Buckets.rows`) on seeded random histories.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import numpy as np
import pytest

from probed.config.slo import SloSpec
from probed.result import ProbeResult, Reason
from probed.runtime.ring import HOUR_SLOTS, MINUTE_SLOTS, Buckets
from probed.runtime.state import ProbeState
from probed.runtime.windows import BURN_RATE_WINDOWS
from probed.slo.engine import SHORT_WINDOW_S, SloEngine
from tests.peers.slo_engine import DAY, NOW, config, evaluate, record, states_of, totals

MINUTE, HOUR = int(NOW) // 60, int(NOW) // 3600


def attempts_in_slot(tier: Buckets, bucket: int) -> int:
    """What the tier's block holds in the slot of `bucket`, whichever bucket it counted."""
    return int(tier.block[bucket % tier.size])


def test_a_probe_a_minute_behind_does_not_bring_back_a_count_from_six_hours_before() -> None:
    cfg = config("""\
        - {name: month, probes: [b], objective: 99}
        - {name: hour, probes: [b], objective: 99, window: 1h}
        """)
    states = states_of(cfg)
    ring = states["b"].ring
    record(states["b"], NOW - 6 * 3600, 0, 7)  # minute MINUTE - 360: just out of the 6h window
    record(states["b"], NOW - 60, 9, 1)  # the last record: the ring has not moved into the current minute
    # The premise: the current minute's slot still holds the seven failures of six hours before,
    # which a probe recording every minute would have cleared on moving into it.
    assert ring.minutes.last == MINUTE - 1
    assert attempts_in_slot(ring.minutes, MINUTE) == 7

    report = evaluate(cfg, states, name="month")
    # Minute windows hold the last minute's record only; the hour tier keeps both records' hours.
    assert totals(report) == {"5m": (10, 1), "30m": (10, 1), "1h": (10, 1), "2h": (10, 1), "6h": (10, 1),
                              "1d": (17, 8), "3d": (17, 8), "30d": (17, 8)}
    # One minute of the hour has data; the current minute has none, so it does not count against.
    assert evaluate(cfg, states, name="hour").coverage == pytest.approx(1 / 59)


def test_a_probe_an_hour_behind_does_not_bring_back_a_count_from_31_days_before() -> None:
    cfg = config("""\
        - {name: month, probes: [a], objective: 99}
        - {name: longest, probes: [a], objective: 99, window: 31d}
        - {name: fast, probes: [a], sli: latency, objective: 99, window: 31d}
        """)
    states = states_of(cfg)
    ring = states["a"].ring
    record(states["a"], NOW - 31 * DAY, 2, 5, latency=0.5)  # hour HOUR - 744: just out of 31 days
    record(states["a"], NOW - 3600, 9, 1)  # the last record: an hour ago (minute MINUTE - 60)
    assert ring.hours.last == HOUR - 1
    assert attempts_in_slot(ring.hours, HOUR) == 7

    # The hour-old minute is just outside the 1h window (NOW is 30 s into its minute).
    short = {"5m": (0, 0), "30m": (0, 0), "1h": (0, 0), "2h": (10, 1), "6h": (10, 1)}
    assert totals(evaluate(cfg, states, name="month")) == {**short, "1d": (10, 1), "3d": (10, 1), "30d": (10, 1)}
    assert totals(evaluate(cfg, states, name="longest")) == {**short, "1d": (10, 1), "3d": (10, 1),
                                                             "31d": (10, 1)}
    # For the latency SLI the old record's slow successes would be bad events too: none counts.
    assert totals(evaluate(cfg, states, name="fast"))["31d"] == (10, 1)
    assert evaluate(cfg, states, name="longest").coverage == pytest.approx(1 / 743)


def test_after_the_clock_went_back_the_future_buckets_are_not_read_as_the_oldest() -> None:
    cfg = config("- {name: s, probes: [b], objective: 99, window: 31d}\n")
    states = states_of(cfg)
    ring = states["b"].ring
    record(states["b"], NOW - 3 * 3600, 4)  # minute MINUTE - 180, hour HOUR - 3
    # The clock ran two hours ahead, then went back: the ring's newest buckets are in the future.
    record(states["b"], NOW + 2 * 3600, 0, 6)  # minute MINUTE + 120, hour HOUR + 2
    assert (ring.minutes.last, ring.hours.last) == (MINUTE + 120, HOUR + 2)
    # Read in the span ending now, the future slots are those of the oldest buckets of the span
    # (minute MINUTE - 240 lies inside the 6h window, hour HOUR - 742 inside the 31d one).
    assert attempts_in_slot(ring.minutes, MINUTE - 240) == 6
    assert attempts_in_slot(ring.hours, HOUR - 742) == 6

    report = evaluate(cfg, states)
    assert totals(report) == {"5m": (0, 0), "30m": (0, 0), "1h": (0, 0), "2h": (0, 0), "6h": (4, 0),
                              "1d": (4, 0), "3d": (4, 0), "31d": (4, 0)}


# ---- seeded random histories against the rings' time-ordered reading

RANDOM_PROBES = """\
- {name: h3, type: tcp, target: "127.0.0.1:3", interval: 100ms, latency_threshold: 100ms}
- {name: b2, type: tcp, target: "127.0.0.1:4", interval: 30s}
- {name: b3, type: tcp, target: "127.0.0.1:5", interval: 30s, latency_threshold: 50ms}
- {name: m2, type: tcp, target: "127.0.0.1:6", interval: 1s}
"""
"""Both counter widths (`B`: one byte, `H`: two) in each tier, with two rows kept and with three."""
RANDOM_SLOS = """\
- {name: errors, probes: [a, b, h3, b2, b3, m2], objective: 99}
- {name: latency, probes: [a, h3, b3, m2], sli: latency, objective: 99, window: 31d}
- {name: pair, probes: [b, b3], objective: 90, window: 7d}
- {name: month, probes: [h3, b2], objective: 99, calendar: month}
"""
SEEDS = (1, 2, 3, 4)
CASES_PER_SEED = 50


def reference(spec: SloSpec, states: Mapping[str, ProbeState], now: float) -> tuple[dict[str, tuple[int, int]], float]:
    """Per-window (total, bad) and coverage as the engine computed them before it summed blocks in
    place: each probe's buckets read in time order with `Buckets.rows`, which knows what is kept."""
    rings = [states[n].ring for n in spec.probes if n in states]
    window_s = SloEngine.window_s(spec, now)
    out: dict[str, tuple[int, int]] = {}
    coverage = 0.0
    for label, seconds in (*BURN_RATE_WINDOWS, (spec.window_label, window_s)):
        short = seconds <= SHORT_WINDOW_S
        width = 60 if short else 3600
        n = max(1, math.ceil(seconds / width)) if short else min(HOUR_SLOTS, max(1, math.ceil(seconds / width)))
        current = int(now) // width
        attempts = np.zeros(n, dtype=np.int64)
        good = np.zeros(n, dtype=np.int64)
        for ring in rings:
            rows = (ring.minutes if short else ring.hours).rows(current - n + 1, current).astype(np.int64)
            attempts += rows[0]
            good += rows[2] if spec.sli == "latency" else rows[0] - rows[1]
        out[label] = (int(attempts.sum()), int((attempts - good).sum()))
        if label == spec.window_label:
            covered = attempts > 0
            buckets = n - (0 if covered[-1] else 1)
            coverage = float(covered.sum()) / buckets if buckets > 0 else 0.0
    return out, coverage


def random_history(rng: random.Random, state: ProbeState, now: float) -> None:
    """Records around the edges that matter: one span before the ring's last bucket (what a
    lagging tier still holds), and a last record behind now, at now, or ahead of it."""
    last = now + rng.choice((
        rng.uniform(-30 * 60, 0),  # the minute tier a few minutes behind
        rng.uniform(-40 * 3600, -3600),  # the hour tier behind, the minute tier far behind or not
        rng.uniform(0, 3 * 3600),  # the clock went back by up to 3 h
        rng.uniform(3 * 3600, 3 * DAY),  # ... or by more than the minute tier's span
        rng.uniform(-32 * DAY, -6 * 3600),  # behind by more than a span, or by most of one
    ))
    edges = (last - MINUTE_SLOTS * 60, last - HOUR_SLOTS * 3600, now - MINUTE_SLOTS * 60, now - HOUR_SLOTS * 3600)
    times = []
    for _ in range(rng.randrange(0, 40)):
        if rng.random() < 0.7:  # within 2 minutes or 2 hours of an edge
            times.append(rng.choice(edges) + rng.uniform(-2 * 3600, 2 * 3600) * rng.choice((1 / 60, 1)))
        else:
            times.append(rng.uniform(now - 32 * DAY, max(now, last)))
    times = [t for t in times if t < last]
    times.sort()
    times.append(last)
    if rng.random() < 0.25:  # a clock that jumps back after the last record: older buckets again
        times += [last - rng.uniform(0, 8 * 3600) for _ in range(rng.randrange(1, 5))]
    for ts in times:
        latency = rng.uniform(0.0, 0.2)
        if rng.random() < 0.3:
            state.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503", duration_s=latency), ts=ts)
        else:
            state.record(ProbeResult.ok(duration_s=latency), ts=ts)


def stale(tier: Buckets, current: int) -> int:
    """Attempts the tier holds in slots whose bucket is not in the span ending at `current`."""
    behind = current - tier.last
    if behind == 0 or abs(behind) >= tier.size:
        return 0
    return sum(attempts_in_slot(tier, b) for b in range(min(current, tier.last) + 1, max(current, tier.last) + 1))


@pytest.mark.parametrize("seed", SEEDS)
def test_totals_match_the_rings_time_ordered_reading_on_random_histories(seed: int) -> None:
    cfg = config(RANDOM_SLOS, RANDOM_PROBES)
    rng = random.Random(seed)
    lagging = ahead = 0
    for case in range(CASES_PER_SEED):
        states = states_of(cfg)
        now = NOW + rng.uniform(0, 40 * DAY)
        for state in states.values():
            random_history(rng, state, now)
        minute, hour = int(now) // 60, int(now) // 3600
        for state in states.values():
            for tier, current in ((state.ring.minutes, minute), (state.ring.hours, hour)):
                if stale(tier, current):
                    lagging += tier.last < current
                    ahead += tier.last > current
        engine = SloEngine()
        for spec in cfg.slos:
            report = engine.evaluate(spec, states, now)
            expected, coverage = reference(spec, states, now)
            assert totals(report) == expected, (seed, case, spec.name)
            assert report.coverage == pytest.approx(coverage), (seed, case, spec.name)
    # The histories do put counts in stale slots, behind now and ahead of it, in both tiers' sizes.
    assert lagging >= CASES_PER_SEED and ahead >= CASES_PER_SEED // 2, (lagging, ahead)
