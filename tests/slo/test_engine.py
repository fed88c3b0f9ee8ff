"""The engine over real rings: attempts recorded at chosen wall times, results checked against
tables computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from probed.slo.engine import SloEngine
from tests.peers.slo_engine import DAY, NOW, config, evaluate, record, states_of, totals

# (seconds before NOW, attempts, failures): one group per window, each only inside its own and longer ones
ROLLING = [(10, 10, 1), (20 * 60, 10, 2), (50 * 60, 10, 0), (90 * 60, 10, 1), (5 * 3600, 10, 3),
           (20 * 3600, 10, 0), (2 * DAY, 10, 5), (20 * DAY, 10, 10), (40 * DAY, 10, 10)]
# cumulative (attempts, bad) per window, by hand; the 40-day-old group is outside every window
ROLLING_TABLE = {"5m": (10, 1), "30m": (20, 3), "1h": (30, 3), "2h": (40, 4), "6h": (50, 7), "1d": (60, 7),
                 "3d": (70, 12), "30d": (80, 22)}


def test_every_window_of_a_rolling_slo_and_a_negative_budget() -> None:
    cfg = config("- {name: s, probes: [b], objective: 99}\n")
    states = states_of(cfg)
    for ago, attempts, failures in sorted(ROLLING, reverse=True):
        record(states["b"], NOW - ago, attempts - failures, failures)
    report = evaluate(cfg, states)
    assert totals(report) == ROLLING_TABLE
    assert report.sli("1h") == pytest.approx(27 / 30)
    assert report.burn_rate("5m") == pytest.approx((1 / 10) / 0.01)
    assert report.burn_rate("3d") == pytest.approx((12 / 70) / 0.01)
    # 22 bad of 80 against a 1% budget: 27.5 budgets spent, 26.5 overspent, not clamped
    assert report.budget_remaining == pytest.approx(1 - 27.5)
    assert report.exhaustion_s == 0.0


def test_seven_day_window_label_and_counts() -> None:
    cfg = config("- {name: s, probes: [b], objective: 99, window: 7d}\n")
    states = states_of(cfg)
    for ago, attempts, failures in sorted(ROLLING, reverse=True):
        record(states["b"], NOW - ago, attempts - failures, failures)
    report = evaluate(cfg, states)
    assert report.spec.window_label == "7d"
    assert totals(report)["7d"] == (70, 12)


def test_exhaustion_at_the_one_hour_burn_rate() -> None:
    cfg = config("- {name: s, probes: [a, b], objective: 99}\n")
    states = states_of(cfg)
    record(states["a"], NOW - 10 * DAY, 100)
    record(states["b"], NOW - 30 * 60, 9, 1)
    report = evaluate(cfg, states)
    # window: 1 bad of 110 -> remaining 1 - (1/110)/0.01; 1h: 1 bad of 10 -> burn 10
    remaining = 1 - (1 / 110) / 0.01
    assert report.budget_remaining == pytest.approx(remaining)
    assert report.burn_rate("1h") == pytest.approx(10.0)
    assert report.exhaustion_s == pytest.approx(remaining * 30 * DAY / 10)


def test_not_burning_is_infinite() -> None:
    cfg = config("- {name: s, probes: [b], objective: 99}\n")
    states = states_of(cfg)
    record(states["b"], NOW - 3 * DAY, 99, 1)
    record(states["b"], NOW - 600, 50)
    report = evaluate(cfg, states)
    assert report.budget_remaining == pytest.approx(1 - (1 / 150) / 0.01)
    assert report.exhaustion_s == math.inf


def test_latency_sli_counts_fast_successes_only() -> None:
    cfg = config("- {name: s, probes: [a], sli: latency, objective: 50}\n")
    states = states_of(cfg)
    record(states["a"], NOW - 60, 3, latency=0.05)  # fast
    record(states["a"], NOW - 50, 2, latency=0.2)  # slow: bad for latency
    record(states["a"], NOW - 40, 0, 1, latency=0.01)  # failed: bad
    report = evaluate(cfg, states)
    assert totals(report)["5m"] == (6, 3)
    assert report.budget_remaining == pytest.approx(0.0)


def test_no_data_at_all() -> None:
    cfg = config("- {name: s, probes: [b]}\n")
    report = evaluate(cfg, states_of(cfg))
    assert report.budget_remaining is None and report.exhaustion_s is None and report.coverage == 0.0
    assert report.sli("5m") is None


def test_coverage_with_a_gap() -> None:
    cfg = config("""\
        - {name: month, probes: [b]}
        - {name: week, probes: [b], window: 7d}
        - {name: hour, probes: [b], window: 1h}
        """)
    states = states_of(cfg)
    # hours now-9 .. now-6 and now-2 .. now have data; now-5 .. now-3 is a gap (probed was down)
    for hours_ago in (9, 8, 7, 6, 2, 1, 0):
        record(states["b"], NOW - hours_ago * 3600, 5)
    # inside the last hour, minutes 0..44 have data, 45..59 (the current one included) none
    for minute in range(15, 60):
        record(states["b"], NOW - minute * 60, 1)
    assert evaluate(cfg, states, name="month").coverage == pytest.approx(7 / 720)
    assert evaluate(cfg, states, name="week").coverage == pytest.approx(7 / 168)
    # the current minute (which has data: the record at NOW) counts; 15 empty minutes of 60 are missing
    hour = evaluate(cfg, states, name="hour").coverage
    assert hour == pytest.approx(46 / 60)


def test_timeslices_count_bad_minutes_and_no_data_is_not_good() -> None:
    cfg = config("- {name: s, probes: [b], objective: 99, budgeting: timeslices, timeslice: {good_ratio: 0.9}}\n")
    states = states_of(cfg)
    minute = NOW - 30  # the start of the current minute
    record(states["b"], minute - 60, 8, 2)  # 80% good: bad slice
    record(states["b"], minute - 120, 9, 1)  # 90% good: good slice (reaches good_ratio)
    # minute - 180: no attempt: no data
    record(states["b"], minute - 240, 1)  # good
    record(states["b"], minute + 1, 0, 5)  # the current minute is not complete: not counted yet
    engine = SloEngine()
    report = engine.evaluate(cfg.slos[0], states, NOW)
    assert totals(report)["5m"] == (3, 1)
    assert totals(report)["30d"] == (3, 1)
    assert (report.events.good, report.events.bad) == (2, 1)
    assert report.budget_remaining == pytest.approx(1 - (1 / 3) / 0.01)
    # a minute later the then-complete minute is judged, once
    report = engine.evaluate(cfg.slos[0], states, NOW + 60)
    assert (report.events.good, report.events.bad) == (2, 2)
    report = engine.evaluate(cfg.slos[0], states, NOW + 61)
    assert (report.events.good, report.events.bad) == (2, 2)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_calendar_month_rollover_starts_a_new_budget() -> None:
    cfg = config("- {name: s, probes: [b], objective: 80, calendar: month}\n")
    states = states_of(cfg)
    record(states["b"], at("2024-02-29T23:50:00"), 0, 1)  # leap day: last month
    record(states["b"], at("2024-03-01T00:10:00"), 9, 1)
    now = at("2024-03-01T00:30:00")
    report = evaluate(cfg, states, now)
    assert report.spec.window_label == "month"
    assert totals(report)["month"] == (10, 1)  # February's failure is not in March's budget
    assert totals(report)["1h"] == (11, 2)  # but the rolling 1h window spans the boundary
    assert report.budget_remaining == pytest.approx(1 - 0.1 / 0.2)
    # exhaustion over the whole month: 31 days of March
    assert report.exhaustion_s == pytest.approx(0.5 * 31 * DAY / ((2 / 11) / 0.2))


@pytest.mark.parametrize(("now", "days"), [("2024-02-20T06:00:00", 29), ("2023-02-20T06:00:00", 28)])
def test_calendar_february_length_sets_exhaustion(now: str, days: int) -> None:
    cfg = config("- {name: s, probes: [b], objective: 90, calendar: month}\n")
    states = states_of(cfg)
    t = at(now)
    record(states["b"], t - 3 * DAY, 19, 1)  # Feb 17
    record(states["b"], t - 600, 9, 1)
    report = evaluate(cfg, states, t)
    assert totals(report)["month"] == (30, 2)
    remaining = 1 - (2 / 30) / 0.1
    assert report.exhaustion_s == pytest.approx(remaining * days * DAY / ((1 / 10) / 0.1))


def test_calendar_month_over_hour_buckets_starts_on_the_first() -> None:
    cfg = config("- {name: s, probes: [b], objective: 90, calendar: month}\n")
    states = states_of(cfg)
    record(states["b"], at("2024-02-29T23:59:00"), 0, 3)  # before the month: excluded
    record(states["b"], at("2024-03-01T00:00:00"), 4, 1)  # the first second of March: included
    record(states["b"], at("2024-03-02T12:00:00"), 5)
    report = evaluate(cfg, states, at("2024-03-03T00:30:00"))
    assert totals(report)["month"] == (10, 1)


def test_coverage_does_not_count_the_just_begun_bucket_against() -> None:
    cfg = config("- {name: hour, probes: [b], window: 1h}\n")
    states = states_of(cfg)
    for minute in range(1, 60):  # every minute of the last hour but the current one, which has just begun
        record(states["b"], NOW - minute * 60, 1)
    assert evaluate(cfg, states).coverage == 1.0


# Timeslices, good_ratio 0.9. (minutes before the current one, good attempts, failed attempts):
# a minute is good at >= 90% good. Each group lies only inside its own window and the longer ones;
# the oldest completed minute the rings keep per minute is 359 minutes back.
SLICES = [(2, 8, 2), (4, 10, 0),  # 5m: one bad, one good
          (20, 7, 3), (25, 9, 1),  # 30m: bad, good (exactly 90%)
          (45, 10, 0),  # 1h: good
          (90, 5, 5), (100, 10, 0),  # 2h: bad, good
          (300, 0, 1), (359, 1, 0)]  # 6h: bad, good
# cumulative (slices with data, bad slices) per window, by hand. Windows longer than 6 h are read
# from the SLO's hour ledger, which the first evaluation fills with every minute the rings keep.
SLICES_TABLE = {"5m": (2, 1), "30m": (4, 2), "1h": (5, 2), "2h": (7, 3), "6h": (9, 4), "1d": (9, 4),
                "3d": (9, 4), "30d": (9, 4)}
TIMESLICES = "- {name: s, probes: [b], objective: 99, budgeting: timeslices, timeslice: {good_ratio: 0.9}}\n"


def minute_start(now: float, minutes_ago: int) -> float:
    return (int(now) // 60 - minutes_ago) * 60.0


def test_every_window_of_a_timeslice_slo() -> None:
    cfg = config(TIMESLICES)
    states = states_of(cfg)
    for ago, good, failed in sorted(SLICES, reverse=True):
        record(states["b"], minute_start(NOW, ago), good, failed)
    record(states["b"], minute_start(NOW, 0), 0, 5)  # the current minute: not complete, not judged
    record(states["b"], minute_start(NOW, 360), 0, 5)  # older than the rings keep per minute: never seen
    report = SloEngine().evaluate(cfg.slos[0], states, NOW)
    assert totals(report) == SLICES_TABLE
    assert (report.events.good, report.events.bad) == (5, 4)
    assert report.sli("2h") == pytest.approx(4 / 7)
    assert report.burn_rate("30m") == pytest.approx((2 / 4) / 0.01)
    assert report.budget_remaining == pytest.approx(1 - (4 / 9) / 0.01)


def test_timeslices_older_than_six_hours_are_counted_from_the_hour_ledger() -> None:
    cfg = config(TIMESLICES)
    states = states_of(cfg)
    engine = SloEngine()
    for ago, good, failed in sorted(SLICES, reverse=True):
        record(states["b"], minute_start(NOW, ago), good, failed)
    engine.evaluate(cfg.slos[0], states, NOW)  # judges the 9 minutes above: 4 bad

    # Seven hours on, the rings' minutes no longer reach any of them: only the ledger remembers.
    later = NOW + 7 * 3600
    record(states["b"], minute_start(later, 3), 0, 1)  # bad
    record(states["b"], minute_start(later, 10), 10, 0)  # good
    report = engine.evaluate(cfg.slos[0], states, later)
    assert totals(report) == {"5m": (1, 1), "30m": (2, 1), "1h": (2, 1), "2h": (2, 1), "6h": (2, 1),
                              "1d": (11, 5), "3d": (11, 5), "30d": (11, 5)}
    assert (report.events.good, report.events.bad) == (6, 5)

    # Two days on: the first minutes (2 days old) and the second ones (41 hours old) are out of
    # the 1d window, in the 3d one.
    two_days = NOW + 2 * DAY
    record(states["b"], minute_start(two_days, 1), 9, 1)  # good
    report = engine.evaluate(cfg.slos[0], states, two_days)
    assert totals(report)["5m"] == (1, 0) and totals(report)["6h"] == (1, 0)
    assert totals(report)["1d"] == (1, 0)
    assert totals(report)["3d"] == totals(report)["30d"] == (12, 5)
    assert (report.events.good, report.events.bad) == (7, 5)
