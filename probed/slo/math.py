"""The arithmetic of an SLO, from counts of good and bad events (or timeslices).

Kept apart from where the counts come from so the formulas can be checked against tables
computed by hand. Ratios are None where there is no data: an empty window is neither good nor
bad, and nothing here turns "no data" into a number.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Counts:
    good: int
    total: int

    @property
    def bad(self) -> int:
        return self.total - self.good

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.good + other.good, self.total + other.total)


NONE = Counts(0, 0)


def sli(c: Counts) -> float | None:
    """The share of good events."""
    return c.good / c.total if c.total else None


def burn_rate(c: Counts, objective: float) -> float | None:
    """How fast the window spends the budget: 1 spends exactly the budget over the SLO window."""
    return (c.bad / c.total) / (1.0 - objective) if c.total else None


def budget_remaining(c: Counts, objective: float) -> float | None:
    """1 - (bad/total) / (1 - objective): 1 untouched, 0 spent, below 0 overspent (not clamped)."""
    rate = burn_rate(c, objective)
    return None if rate is None else 1.0 - rate


def exhaustion_seconds(remaining: float | None, burn_1h: float | None, window_s: float) -> float | None:
    """Time until the budget is gone if the last hour's burn rate holds (+Inf when not burning).

    A burn rate of 1 spends the whole budget over the SLO window, so at rate r the `remaining`
    share lasts remaining * window / r.
    """
    if remaining is None or burn_1h is None:
        return None
    if remaining <= 0:
        return 0.0
    if burn_1h <= 0:
        return math.inf
    return remaining * window_s / burn_1h


def calendar_start(now: float, period: str) -> float:
    """Start (unix seconds, UTC) of the calendar month or ISO week containing `now`."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = day.replace(day=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
    else:
        raise ValueError(f"unknown calendar period {period!r}")
    return start.timestamp()


def calendar_length(now: float, period: str) -> float:
    """The whole length of the calendar period containing `now` (28 to 31 days, or 7)."""
    if period == "week":
        return 7 * 86400.0
    t = datetime.fromtimestamp(now, UTC)
    return calendar.monthrange(t.year, t.month)[1] * 86400.0


def pages_after(events_per_hour: float, objective: float, burn: float = 14.4) -> float:
    """Failed attempts within one hour that push the 1h burn rate over `burn` (the page alert)."""
    return burn * (1.0 - objective) * events_per_hour
