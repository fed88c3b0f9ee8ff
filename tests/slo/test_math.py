"""The SLO formulas against values computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from probed.slo.math import (
    Counts,
    budget_remaining,
    burn_rate,
    calendar_length,
    calendar_start,
    exhaustion_seconds,
    pages_after,
    sli,
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("good", "total", "objective", "sli_", "burn", "remaining"), [
    pytest.param(999, 1000, 0.999, 0.999, 1.0, 0.0, id="exactly-on-budget"),
    pytest.param(1000, 1000, 0.999, 1.0, 0.0, 1.0, id="untouched"),
    pytest.param(9995, 10000, 0.999, 0.9995, 0.5, 0.5, id="half-spent"),
    pytest.param(90, 100, 0.99, 0.9, 10.0, -9.0, id="overspent-negative"),
    pytest.param(3, 4, 0.5, 0.75, 0.5, 0.5, id="coarse"),
])
def test_ratios(good: int, total: int, objective: float, sli_: float, burn: float, remaining: float) -> None:
    c = Counts(good, total)
    assert sli(c) == pytest.approx(sli_)
    assert burn_rate(c, objective) == pytest.approx(burn)
    assert budget_remaining(c, objective) == pytest.approx(remaining)


def test_no_data_is_none_not_a_number() -> None:
    assert sli(Counts(0, 0)) is None
    assert burn_rate(Counts(0, 0), 0.99) is None
    assert budget_remaining(Counts(0, 0), 0.99) is None


@pytest.mark.parametrize(("remaining", "burn", "window", "expected"), [
    pytest.param(0.5, 2.0, 30 * 86400.0, 0.5 * 30 * 86400 / 2, id="half-left-burning-2x"),
    pytest.param(1.0, 14.4, 30 * 86400.0, 180000.0, id="page-rate-2d2h"),
    pytest.param(0.5, 0.0, 30 * 86400.0, math.inf, id="not-burning"),
    pytest.param(-1.0, 3.0, 30 * 86400.0, 0.0, id="already-exhausted"),
    pytest.param(None, 3.0, 30 * 86400.0, None, id="no-data"),
    pytest.param(0.5, None, 30 * 86400.0, None, id="no-data-1h"),
])
def test_exhaustion(remaining: float | None, burn: float | None, window: float, expected: float | None) -> None:
    assert exhaustion_seconds(remaining, burn, window) == expected


@pytest.mark.parametrize(("now", "period", "start", "days"), [
    pytest.param("2024-02-29T23:59:59", "month", "2024-02-01T00:00:00", 29, id="leap-february"),
    pytest.param("2023-02-28T12:00:00", "month", "2023-02-01T00:00:00", 28, id="february"),
    pytest.param("2024-03-01T00:00:00", "month", "2024-03-01T00:00:00", 31, id="rollover-into-march"),
    pytest.param("2024-12-31T23:59:59", "month", "2024-12-01T00:00:00", 31, id="december"),
    pytest.param("2025-01-01T00:00:01", "month", "2025-01-01T00:00:00", 31, id="new-year"),
    pytest.param("2024-04-30T08:00:00", "month", "2024-04-01T00:00:00", 30, id="april"),
    pytest.param("2024-03-03T23:00:00", "week", "2024-02-26T00:00:00", 7, id="sunday-iso-week"),
    pytest.param("2024-03-04T00:00:00", "week", "2024-03-04T00:00:00", 7, id="monday-starts-week"),
])
def test_calendar_periods(now: str, period: str, start: str, days: int) -> None:
    assert calendar_start(ts(now), period) == ts(start)
    assert calendar_length(ts(now), period) == days * 86400.0


@pytest.mark.parametrize(("per_hour", "objective", "expected"), [
    pytest.param(60, 0.999, 0.864, id="one-probe-60s-99.9"),
    pytest.param(720, 0.999, 10.368, id="two-probes-10s"),
    pytest.param(60, 0.99, 8.64, id="99"),
])
def test_pages_after(per_hour: float, objective: float, expected: float) -> None:
    assert pages_after(per_hour, objective) == pytest.approx(expected)
