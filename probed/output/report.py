"""What `probed check` and `probed once` print for a person."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from probed.config.model import Config, MetricsSettings
from probed.config.slo import SloSpec
from probed.output import catalog
from probed.output.api import once_json
from probed.probes import get_kind
from probed.redact import redact
from probed.result import ProbeResult
from probed.slo.math import pages_after

PAGE_BURN = 14.4
"""The fast-burn page: 14.4x the budget's pace over 1 h (2% of a 30-day budget in one hour)."""
MIN_FAILURES_TO_PAGE = 3
"""Fewer failures than this in an hour paging someone is noise, not an incident."""
MIN_INTERVAL_S = 0.1


def check_report(config: Config) -> list[str]:
    rate = sum(1.0 / s.interval for s in config.probes)
    series = catalog.estimate_series(config.probes, config.metrics)
    others = ", ".join(f"{p} {catalog.estimate_series(config.probes, MetricsSettings(profile=p))}"
                       for p in ("blackbox", "standard", "full") if p != config.metrics.profile)
    by_type: dict[str, int] = {}
    for s in config.probes:
        by_type[s.type] = by_type.get(s.type, 0) + 1
    lines = [
        f"{config.path}: OK, {len(config.probes)} probes ({', '.join(f'{n} {t}' for t, n in by_type.items())})",
        f"load: {rate:.1f} probes per second",
        f"prometheus: about {series} series per scrape (metrics profile {config.metrics.profile}; {others})",
    ]
    for type_name in by_type:
        estimate = get_kind(type_name).estimate
        if estimate is not None:
            lines.extend(estimate([s for s in config.probes if s.type == type_name]))
    for slo in config.slos:
        lines.extend(slo_check(config, slo))
    return lines


def failures_to_page(events_per_hour: float, objective: float) -> int:
    """The fewest bad events in one hour that take the 1h burn rate over 14.4 (the page)."""
    return math.floor(pages_after(events_per_hour, objective, PAGE_BURN) + 1e-9) + 1


def slo_check(config: Config, slo: SloSpec) -> list[str]:
    """What the SLO will see per hour, how many failures page, and a warning when one or two do."""
    if slo.budgeting == "timeslices":
        per_hour, unit = 60.0, "timeslices"
    else:
        per_hour, unit = sum(3600.0 / config.probe(n).interval for n in slo.probes), "events"
    need = failures_to_page(per_hour, slo.objective)
    bad = "bad timeslice" if unit == "timeslices" else "failed attempt"
    verb = "pages" if need == 1 else "page"
    lines = [f"slo {slo.name}: {plural(per_hour, unit[:-1])} per hour; {plural(need, bad)} within one hour {verb} "
             f"(burn rate over {PAGE_BURN:g}x at {slo.objective * 100:g}%)"]
    if need >= MIN_FAILURES_TO_PAGE:
        return lines
    # pages_after(rate, objective) >= MIN - 1 makes MIN failures the fewest that page.
    want = MIN_FAILURES_TO_PAGE - 1
    objective = 1.0 - want / (PAGE_BURN * per_hour)
    fixes = [f"an objective of at most {math.floor(objective * 10000) / 100:g}%"] if objective > 0 else []
    if unit == "events":
        factor = want / pages_after(per_hour, slo.objective, PAGE_BURN)
        intervals = sorted({config.probe(n).interval for n in slo.probes})
        if intervals[0] / factor >= MIN_INTERVAL_S:
            new = ", ".join(f"{i:g}s -> {math.floor(i / factor * 10) / 10:g}s" for i in intervals)
            fixes.insert(0, f"probing more often ({new}, {math.ceil(per_hour * factor)} events per hour)")
    what = f"one {bad}" if need == 1 else f"two {bad}s"
    lines.append(f"WARNING: slo {slo.name}: {what} in an hour would "
                 f"page: too few {unit} for a {slo.objective * 100:g}% objective; "
                 f"{MIN_FAILURES_TO_PAGE} or more need " + " or ".join(fixes))
    return lines


def plural(count: float, noun: str) -> str:
    """'1 failed attempt', '31 failed attempts', '0.5 events'."""
    return f"{count:g} {noun}" if count == 1 else f"{count:g} {noun}s"


def format_once(config: Config, results: list[tuple[str, ProbeResult]], as_json: bool) -> list[str]:
    secrets = config.secrets
    if as_json:
        return [json.dumps(once_json(config, name, r), default=str) for name, r in results]
    rows = [("PROBE", "TYPE", "RESULT", "TIME", "DETAIL")]
    extra: dict[str, list[str]] = {}
    for name, r in results:
        spec = config.probe(name)
        rows.append((name, spec.type, "ok" if r.success else r.reason.value, f"{r.duration_s * 1000:.1f} ms",
                     redact(r.detail, secrets)))
        describe = get_kind(spec.type).describe
        if describe is not None:
            extra[name] = [redact(line, secrets) for line in describe(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        lines.extend("    " + e for e in extra.get(row[0], []))
    failed = sum(1 for _, r in results if not r.success)
    lines.append(f"{len(results) - failed} ok, {failed} failing")
    return lines


def shard_report(parts: Sequence[Config]) -> list[str]:
    """How `probed check --shards N` shows the split: probes and probes/s per shard, and a warning
    for a shard left with nothing to do."""
    rates = [sum(1.0 / s.interval for s in part.probes) for part in parts]
    mean = sum(rates) / len(rates) if rates else 0.0
    lines = [f"shards: {len(parts)}"]
    idle = []
    for i, (part, rate) in enumerate(zip(parts, rates, strict=True)):
        skew = f" ({rate / mean - 1:+.0%} vs the mean)" if mean else ""
        lines.append(f"  shard {i}: {plural(len(part.probes), 'probe')}, {rate:.1f} probes/s{skew}, "
                     f"{plural(len(part.slos), 'SLO')}")
        if not part.probes:
            idle.append(i)
    for i in idle:
        # Placement is by SLO group: one SLO (or SLOs sharing probes) over most probes leaves few
        # keys to spread, and a shard may win none of them.
        lines.append(f"WARNING: shard {i} would run no probes: all the probes of an SLO (and of SLOs "
                     "that share probes) run on one shard, and there are too few such groups and "
                     "probes outside SLOs to give every shard some")
    return lines
