"""Every metric family probed exports, declared once.

The exposition renders from this list, `probed check` counts series from it, the docs' metric
reference is generated from it, and the rule and dashboard generators read it. A family is a
name, a type, a help text, the labels it adds to a probe's own label set (`probe`, `type`, the
global and the probe's labels) and the probe types that emit it.

Families per probe type come from the types themselves (`ProbeKind.aliases` and `.infos`), so a
new probe type brings its metrics with it and nothing here names a type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from probed.config.model import MetricsSettings, ProbeSpec, Profile
from probed.probes import KIND_NAMES, ProbeKind, get_kind
from probed.runtime.ring import DEFAULT_BUCKETS, QUANTILES
from probed.runtime.scheduler import LATENESS_BUCKETS
from probed.runtime.state import SKIP_CAUSES
from probed.runtime.windows import PERCENTILE_WINDOWS

MetricType = Literal["gauge", "counter", "histogram"]


FULL = MetricsSettings(profile="full")
"""Everything: what the reference lists and `probed check` counts unless told a profile."""


@dataclass(frozen=True)
class Family:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    """Labels added to the probe's own label set (or, for process-wide families, all labels)."""
    types: tuple[str, ...] | None = None
    """Probe types that emit it; None: every type."""
    per_probe: bool = True
    """False for families about probed itself (one series set per process)."""
    profile: Profile = "standard"
    """The leanest metrics profile that exports it (profiles nest: blackbox, standard, full)."""
    switch: str | None = None
    """The `metrics:` switch that turns it on or off whatever the profile (histogram, values ...)."""

    def exported(self, metrics: MetricsSettings) -> bool:
        if self.switch is not None:
            return metrics.wants(self.switch)
        return in_profile(self.profile, metrics)

    def series_for(self, kind: ProbeKind, metrics: MetricsSettings = FULL) -> int:
        """Series one probe of `kind` adds to a scrape (an estimate where it depends on results)."""
        if (self.types is not None and kind.name not in self.types) or not self.exported(metrics):
            return 0
        if self.name == LATENCY:
            return len(QUANTILES) * len(PERCENTILE_WINDOWS) if metrics.wants("percentiles") else len(LEAN_QUANTILES)
        count = _SERIES.get(self.name)
        return 1 if count is None else count(kind)


_RANK = {"blackbox": 0, "standard": 1, "full": 2}


def in_profile(profile: Profile, metrics: MetricsSettings) -> bool:
    """Whether what `profile` holds is exported under `metrics` (profiles nest)."""
    return _RANK[profile] <= _RANK[metrics.profile]
LATENCY = "probed_probe_latency_seconds"
LEAN_QUANTILES: Mapping[str, tuple[int, ...]] = {"5m": (QUANTILES.index(0.5), QUANTILES.index(0.99))}
"""Without `percentiles`, the latency family carries p50 and p99 over 5m only."""


def _phases(kind: ProbeKind) -> int:
    return len(kind.phases)


# Series per probe where it is not one; counters by reason or code exist only once they count.
_SERIES: dict[str, Callable[[ProbeKind], int]] = {
    "probed_probes_total": lambda k: 2,
    "probed_probe_failures_total": lambda k: 0,
    "probed_probe_error_codes_total": lambda k: 0,
    "probed_probe_duration_seconds": lambda k: len(DEFAULT_BUCKETS) + 3,
    "probed_probe_latency_seconds": lambda k: len(QUANTILES) * len(PERCENTILE_WINDOWS),
    "probed_probe_skipped_runs_total": lambda k: len(SKIP_CAUSES),
    "probed_probe_phase_seconds": _phases,
    "probe_http_duration_seconds": _phases,
    "probed_probe_value": lambda k: len(k.values) + len(k.aliases),
}

PROBE_FAMILIES: tuple[Family, ...] = (
    Family("probe_success", "gauge", "Whether the last attempt succeeded (1) or failed (0).", profile="blackbox"),
    Family("probe_duration_seconds", "gauge", "How long the last attempt took.", profile="blackbox"),
    Family("probed_probes_total", "counter", "Attempts by result.", ("result",)),
    Family("probed_probe_failures_total", "counter", "Failed attempts by reason.", ("reason",)),
    Family("probed_probe_warning", "gauge",
           "1 while the last attempt succeeded with a warning (e.g. cert_expiring), by reason; absent otherwise.",
           ("reason",)),
    Family("probed_probe_duration_seconds", "histogram", "Attempt duration, all attempts.", ("le",),
           profile="full", switch="histogram"),
    Family("probed_probe_latency_seconds", "gauge",
           "Latency quantiles of successful attempts over a trailing window, from the ring core.",
           ("quantile", "window")),
    Family("probed_probe_info", "gauge", "Configured probe (target with credentials removed).", ("target",)),
    Family("probed_probe_last_run_timestamp_seconds", "gauge",
           "Unix time the last attempt finished (for staleness alerts)."),
    Family("probed_probe_interval_seconds", "gauge", "Configured interval."),
    Family("probed_probe_skipped_runs_total", "counter",
           "Scheduled runs skipped, by cause (overrun: the previous run was still going).", ("cause",),
           profile="full", switch="skips"),
    Family("probed_probe_phase_seconds", "gauge", "Duration of each phase of the last attempt.", ("phase",),
           profile="full", switch="phases"),
    Family("probe_http_duration_seconds", "gauge",
           "Duration of each HTTP phase of the last attempt (blackbox_exporter).", ("phase",), ("http",),
           profile="blackbox"),
    Family("probed_probe_value", "gauge", "Numeric facts from the last attempt, by name.", ("name",),
           profile="full", switch="values"),
    Family("probed_probe_error_codes_total", "counter",
           "Failed attempts by the peer's own error code (AWS error codes, for example).", ("code",)),
)
"""Families every probe can carry, in exposition order."""

def _own(name: str, type_: MetricType, help_text: str, labels: tuple[str, ...] = ()) -> Family:
    return Family(name, type_, help_text, labels, per_probe=False)


PROCESS_FAMILIES: tuple[Family, ...] = (
    _own("probed_scheduler_lateness_seconds", "histogram", "How late each run started after its deadline.", ("le",)),
    _own("probed_scheduler_in_flight", "gauge", "Attempts running now."),
    _own("probed_scheduler_skipped_runs_total", "counter", "Runs skipped, all probes, by cause.", ("cause",)),
    _own("probed_event_loop_lag_seconds", "gauge", "Last measured event-loop lag."),
    _own("probed_event_loop_lag_max_seconds", "gauge", "Largest event-loop lag over the last minute."),
    _own("probed_probes_configured", "gauge", "Probes in the running config file (all shards)."),
    _own("probed_config_last_reload_successful", "gauge", "Whether the last config load or reload succeeded."),
    _own("probed_config_last_reload_success_timestamp_seconds", "gauge",
         "Unix time of the last successful config load or reload."),
    _own("probed_build_info", "gauge", "probed's version and runtime (value is always 1).", ("version", "python")),
    _own("probed_event_loop_tasks", "gauge", "asyncio tasks alive (one per running probe attempt, plus a few)."),
    _own("probed_gc_frozen_objects", "gauge",
         "Objects the collector no longer scans (frozen after a config is applied)."),
    _own("probed_shard_info", "gauge", "Which shard of how many this process is (value is always 1).",
         ("shard", "shards")),
    _own("probed_shard_probes", "gauge", "Probes this shard runs (of probed_probes_configured in the file)."),
    _own("probed_web_connections", "gauge", "Connections open on the web port."),
    _own("probed_web_connections_refused_total", "counter",
         "Connections closed when accepted: the web port's connection cap was reached."),
    _own("probed_web_connections_timed_out_total", "counter",
         "Connections dropped: no complete request head within the header timeout."),
    _own("probed_web_requests_refused_total", "counter",
         "Requests refused, by cause (host: DNS rebinding, cross_site, unauthorized).", ("cause",)),
    _own("probed_scrapes_total", "counter", "/metrics requests served."),
    _own("probed_scrape_renders_total", "counter",
         "/metrics bodies rendered: concurrent scrapes share one, so fewer than probed_scrapes_total."),
)
"""Families about probed itself, one series set per process."""

SLO_FAMILIES: tuple[Family, ...] = tuple(_own(*f) for f in (
    ("probed_slo_objective_ratio", "gauge", "The SLO's objective, as a ratio (99.9% is 0.999)."),
    ("probed_slo_sli_ratio", "gauge", "Share of good events (or good timeslices) over the window.", ("window",)),
    ("probed_slo_error_budget_remaining_ratio", "gauge",
     "1 - (bad/total)/(1 - objective) over the SLO window: 1 untouched, 0 spent, negative overspent."),
    ("probed_slo_burn_rate", "gauge",
     "(bad/total)/(1 - objective) over the window: 1 spends exactly the budget over the SLO window.", ("window",)),
    ("probed_slo_budget_exhaustion_seconds", "gauge",
     "Seconds until the budget is spent if the last hour's burn rate holds (+Inf when not burning)."),
    ("probed_slo_coverage_ratio", "gauge", "Share of the SLO window with data (time probed was not running is none)."),
    ("probed_slo_events_total", "counter",
     "Good and bad events (timeslices, with timeslice budgeting) counted for the SLO.", ("result",)),
))
"""Families per SLO, labelled `slo`, `service`, the SLO's and the global labels."""

CLIENT_FAMILIES: tuple[Family, ...] = tuple(_own(*f) for f in (
    ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
    ("process_open_fds", "gauge", "Number of open file descriptors."),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors."),
    ("python_gc_objects_collected_total", "counter", "Objects collected during gc", ("generation",)),
    ("python_gc_objects_uncollectable_total", "counter", "Uncollectable objects found during GC", ("generation",)),
    ("python_gc_collections_total", "counter", "Number of times this generation was collected", ("generation",)),
    ("python_info", "gauge", "Python platform information",
     ("implementation", "major", "minor", "patchlevel", "version")),
))
"""prometheus_client's process, GC and platform collectors (`probed.output.process`), after probed's own
families; their help texts are the library's. Linux only for `process_*`, as in every exporter."""

INFO_HELP = "Information about the last attempt (value is always 1)."


def profile_of(metric: str) -> Profile:
    """A type's own metric under blackbox_exporter's name (`probe_*`) is in every profile; under
    probed's (`probed_*`), from `standard` on."""
    return "blackbox" if metric.startswith("probe_") else "standard"


def kind_families(kind: ProbeKind) -> list[Family]:
    """The dedicated metrics of one probe type: blackbox-named values and info metrics."""
    families = [Family(a.metric, "gauge" if a.kind == "gauge" else "counter", a.help, (), (kind.name,),
                       profile=profile_of(a.metric)) for a in kind.aliases.values()]
    families += [Family(metric, "gauge", help_text, (), (kind.name,), profile=profile_of(metric))
                 for metric, help_text in kind.infos.items()]
    return families


def all_families(type_names: Iterable[str] = KIND_NAMES) -> list[Family]:
    """Every family the given probe types can export, each once (types share some aliases)."""
    merged: dict[str, Family] = {f.name: f for f in PROBE_FAMILIES}
    for name in type_names:
        for f in kind_families(get_kind(name)):
            known = merged.get(f.name)
            if known is None:
                merged[f.name] = f
            elif known.types is not None:
                merged[f.name] = dataclasses.replace(known, types=(*known.types, *(f.types or ())))
    return [*merged.values(), *SLO_FAMILIES, *PROCESS_FAMILIES]


def series_per_probe(kind: ProbeKind, metrics: MetricsSettings = FULL) -> int:
    """Series one probe of this type adds to every scrape (counters by reason or code come on top,
    one per reason or code seen)."""
    return sum(f.series_for(kind, metrics) for f in (*PROBE_FAMILIES, *kind_families(kind)))


def estimate_series(specs: Sequence[ProbeSpec], metrics: MetricsSettings = FULL) -> int:
    """Series a scrape carries for these probes, plus probed's own."""
    per_type: dict[str, int] = {}
    for spec in specs:
        if spec.type not in per_type:
            per_type[spec.type] = series_per_probe(get_kind(spec.type), metrics)
    own = sum(len(LATENESS_BUCKETS) + 3 if f.type == "histogram" else 1 for f in PROCESS_FAMILIES)
    return sum(per_type[s.type] for s in specs) + own


def reference_markdown() -> str:
    """The docs' metric reference (docs/reference/metrics.md), made from this catalog."""

    def row(f: Family) -> str:
        labels = ", ".join(f"`{label}`" for label in f.labels if label != "le") or "&ndash;"
        types = "all" if f.types is None else ", ".join(f.types)
        profile = "always" if not f.per_probe else f.profile + (f" (`{f.switch}`)" if f.switch else "")
        return f"| `{f.name}` | {f.type} | {labels} | {types} | {profile} | {f.help.replace('|', '&#124;')} |"

    head = "| metric | type | labels | probe types | profile | what |\n|---|---|---|---|---|---|"
    per_probe = [f for f in all_families() if f.per_probe]
    parts = [
        "### Per probe\n\nEvery series also carries `probe`, `type`, the global `labels` and the probe's own.\n",
        head, *(row(f) for f in per_probe),
        "\n### Per SLO\n\nEvery series also carries `slo`, `service`, the global `labels` and the SLO's own.\n",
        head, *(row(f) for f in SLO_FAMILIES),
        "\n### probed itself\n",
        head, *(row(f) for f in PROCESS_FAMILIES),
        "\n### Standard process series\n\nprometheus_client's own process, GC and platform collectors, as every "
        "Python exporter has them (help texts are the library's; `process_*` on Linux only).\n",
        head, *(row(f) for f in CLIENT_FAMILIES),
    ]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # python -m probed.output.catalog > the generated part of docs/reference/metrics.md
    print(reference_markdown(), end="")
