"""`slos:` in probes.yaml: service level objectives over the probes' attempts.

An SLO names its probes (or matches them by label), what counts as good (availability: the
attempt succeeded; latency: it succeeded within the probe's `latency_threshold`), an objective in
percent and a window. The section is parsed by the generic loader into `SloSection`, then checked
against the probes of the same file and resolved into an `SloSpec` the engine reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from probed.config.schema import Converter, parse_duration, value_kind

MAX_WINDOW_S = 31 * 86400.0
"""The ring keeps one hour-bucket per hour for 31 days: no SLO window can be longer."""
TIMESLICE_S = 60.0
"""Timeslices are the ring's minute buckets."""

Sli = Literal["availability", "latency"]
Budgeting = Literal["occurrences", "timeslices"]
Calendar = Literal["month", "week"]


@dataclass(frozen=True)
class SloMatch:
    """Select probes by their labels (all must match) and, optionally, their type."""

    labels: Mapping[str, str] = field(default_factory=dict)
    type: str | None = None

    def matches(self, probe_type: str, labels: Mapping[str, str]) -> bool:
        return (self.type is None or self.type == probe_type) and all(
            labels.get(k) == v for k, v in self.labels.items())


def _timeslice_length(value: Any) -> float:
    if parse_duration(value) != TIMESLICE_S:
        raise ValueError("timeslices are one minute long (the ring's minute buckets): use 1m")
    return TIMESLICE_S


def _good_ratio(value: Any) -> float:
    if isinstance(value, str):  # `${GOOD_RATIO}` from the environment arrives as text
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"good_ratio is a number in (0, 1], got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"good_ratio is a number in (0, 1], got {value_kind(value)}")
    if not 0 < value <= 1:
        raise ValueError(f"good_ratio must be in (0, 1], got {value:g}")
    return float(value)


def _window(value: Any) -> float:
    calendar = value.strip().lower() if isinstance(value, str) else None
    if calendar in ("month", "week"):
        raise ValueError(f'window "{value}" is not a duration: for the calendar {calendar} use '
                         f"`calendar: {calendar}` (a rolling window is a duration such as 30d)")
    return parse_duration(value)


# Checked as each value is converted, not in __post_init__: every bad field of a timeslice is
# reported at once, each at its own line and column.
TimesliceLength = Annotated[float, Converter(_timeslice_length)]
GoodRatio = Annotated[float, Converter(_good_ratio)]
SloWindow = Annotated[float, Converter(_window)]


@dataclass(frozen=True)
class Timeslice:
    length: TimesliceLength = TIMESLICE_S
    good_ratio: GoodRatio = 0.99
    """A slice is good when at least this share of its attempts was good."""


@dataclass(frozen=True)
class Alerting:
    """Which burn-rate alerts `probed rules` generates for this SLO."""

    page: bool = True
    ticket: bool = True


@dataclass(frozen=True)
class SloSection:
    """One entry of `slos:` as written."""

    name: str
    probes: tuple[str, ...] = ()
    match: SloMatch | None = None
    service: str = ""
    description: str = ""
    sli: Sli = "availability"
    objective: float = 99.9
    """Percent of good events (or good timeslices) over the window."""
    window: SloWindow | None = None
    """A rolling window such as 30d (default), 28d, 7d; at most 31d."""
    calendar: Calendar | None = None
    """A calendar window instead: the current month or ISO week, in UTC."""
    budgeting: Budgeting = "occurrences"
    timeslice: Timeslice | None = None
    alerting: Alerting = field(default_factory=Alerting)
    labels: Mapping[str, str] = field(default_factory=dict)
    runbook_url: str = ""


@dataclass(frozen=True)
class SloSpec:
    """A checked SLO: its probes resolved to names, the objective as a ratio."""

    name: str
    service: str
    description: str
    probes: tuple[str, ...]
    sli: Sli
    objective: float
    """Ratio, e.g. 0.999."""
    window_s: float
    """Rolling length; for calendar windows the longest the window can be (31d or 7d)."""
    calendar: Calendar | None
    window_label: str
    """"30d", or "month" / "week": the `window` label of the SLO's own series."""
    budgeting: Budgeting
    good_ratio: float
    """For timeslices: the share of good attempts that makes a minute good."""
    page: bool
    ticket: bool
    labels: Mapping[str, str]
    runbook_url: str

    @property
    def error_budget(self) -> float:
        """The share of events (or slices) allowed to be bad: 1 - objective."""
        return 1.0 - self.objective


def window_label(seconds: float) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{int(days)}d" if not rest else f"{int(seconds // 3600)}h"


def resolve(section: SloSection, probe_labels: Mapping[str, tuple[str, Mapping[str, str]]],
            global_labels: Mapping[str, str] | None = None) -> tuple[SloSpec | None, list[tuple[str, str]]]:
    """Check `section` against the file's probes (name -> (type, labels)) and global labels.

    Returns the spec, or None, and the problems as (field, message).
    """
    problems = _section_problems(section)
    # The SLO's series carry the global labels too: the same name twice is a scrape Prometheus rejects.
    clash = sorted(set(section.labels) & set(global_labels)) if global_labels else None
    if clash:
        problems.append(("labels", f"label {clash[0]!r} is already a global label"))
    if section.probes and section.match is not None:
        problems.append(("match", "give either `probes` or `match`, not both"))
    names: list[str] = []
    for name in section.probes:
        if name in probe_labels:
            names.append(name)
        else:
            problems.append(("probes", _unknown_probe(name, list(probe_labels))))
    if section.match is not None and not section.probes:
        names = [n for n, (t, labels) in probe_labels.items() if section.match.matches(t, labels)]
        if not names:
            problems.append(("match", "matches no probe"))
    elif not section.probes and section.match is None:
        problems.append(("probes", "an SLO needs `probes: [names]` or `match: {labels: {...}}`"))
    if section.sli == "latency" and not names and not problems:
        problems.append(("probes", "a latency SLO needs probes"))
    if problems:
        return None, problems
    if section.calendar is not None:
        window_s, label = (31 * 86400.0, "month") if section.calendar == "month" else (7 * 86400.0, "week")
    else:
        window_s = section.window if section.window is not None else 30 * 86400.0
        label = window_label(window_s)
    timeslice = section.timeslice or Timeslice()
    return SloSpec(
        name=section.name, service=section.service or section.name, description=section.description,
        probes=tuple(dict.fromkeys(names)), sli=section.sli, objective=round(section.objective / 100.0, 12),
        window_s=window_s, calendar=section.calendar, window_label=label, budgeting=section.budgeting,
        good_ratio=timeslice.good_ratio, page=section.alerting.page, ticket=section.alerting.ticket,
        labels=dict(section.labels), runbook_url=section.runbook_url,
    ), []


def _section_problems(section: SloSection) -> list[tuple[str, str]]:
    problems = []
    if not 0 < section.objective < 100:
        problems.append(("objective", f"objective is a percentage between 0 and 100 (exclusive), "
                                      f"got {section.objective:g}"))
    if section.window is not None and section.calendar is not None:
        problems.append(("calendar", "give either a rolling `window` or a `calendar` one, not both"))
    if section.window is not None:
        if section.window > MAX_WINDOW_S:
            problems.append(("window", f"window {section.window / 86400:g}d is longer than the 31 days of history "
                                       "the ring keeps"))
        elif section.window < 3600 or section.window % 3600:
            problems.append(("window", "window must be a whole number of hours, at least 1h (e.g. 7d, 28d, 30d)"))
    if section.timeslice is not None and section.budgeting != "timeslices":
        problems.append(("timeslice", "`timeslice` only applies with `budgeting: timeslices`"))
    return problems


def _unknown_probe(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"no probe named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
