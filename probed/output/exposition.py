"""Prometheus text exposition, rendered by hand from the probes' state at scrape time.

prometheus_client's metric objects and `generate_latest` cost microseconds per line and render
on the event loop in one piece: with tens of thousands of probes, seconds of stalled probes. Here
each probe's label set is escaped once, lines are formatted straight from the ring's counters
and kept per probe until something they show changes (fragments.py), and rendering yields to
the event loop between slices of work (runtime/slicing.py) so probes keep their schedule while
a scrape renders; the body is streamed out in chunks. Percentiles come
from a cache the daemon's summarizer refreshes in small slices in the background (computing them
for every probe at once would itself be a stall).

Metric names: blackbox_exporter's for the last attempt (`probe_success`, `probe_duration_seconds`,
`probe_http_*`, ...) so existing dashboards and alerts work, and `probed_*` for everything else.
Every numeric value of a result is `probed_probe_value{name=...}`; probe kinds may also export a
value under a dedicated name (`ProbeKind.aliases`).
"""

from __future__ import annotations

import asyncio
import functools
import platform
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from probed import __version__
from probed.config.model import MetricsSettings, ProbeSpec
from probed.output import catalog, fragments, process
from probed.output.webstats import REFUSAL_CAUSES, WebStats
from probed.probes import MetricAlias, get_kind
from probed.redact import redact
from probed.runtime import collector
from probed.runtime.daemon import Daemon, ReloadStatus
from probed.runtime.ring import QUANTILES
from probed.runtime.scheduler import LATENESS_BUCKETS, SchedulerStats
from probed.runtime.shard import UNSHARDED, Shard
from probed.runtime.slicing import Slices
from probed.runtime.state import SKIP_CAUSES, ProbeState
from probed.runtime.windows import PERCENTILE_WINDOWS, Window
from probed.slo.engine import SloEngine, SloReport

STANDARD = MetricsSettings()
"""The default profile."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# Durations print as `{x:.6g}`: six significant digits (microseconds at the millisecond scale)
# format much faster than repr(), and durations are most of the floats a scrape prints.
# Counters' sums and other values keep full precision (`num`).


@functools.lru_cache(maxsize=1024)
def _label_pair(key: str, value: str) -> str:
    return f',{key}="{escape(value)}"'


def num(value: float) -> str:
    value = float(value)
    if value.is_integer() and -_EXACT < value < _EXACT:  # the common case first: counts, codes, sizes
        return str(int(value))
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


_EXACT = float(2**53)  # integers beyond this are not exact in a float: print them as floats
_INF = float("inf")


@dataclass
class ExpositionView:
    """What a scrape reads: a snapshot of the daemon's probes and its own figures."""

    states: list[ProbeState]
    static_labels: Mapping[str, str]
    stats: SchedulerStats
    reload: ReloadStatus
    windows: tuple[Window, ...] = PERCENTILE_WINDOWS
    slos: Sequence[SloReport] = ()
    metrics: MetricsSettings = STANDARD
    shard: Shard = UNSHARDED
    probes_in_file: int = 0
    web: WebStats | None = None

    @classmethod
    def of(cls, daemon: Daemon, engine: SloEngine | None = None, web: WebStats | None = None) -> ExpositionView:
        assert daemon.scheduler is not None
        reports = [] if engine is None else [r for s in engine.specs if (r := engine.reports.get(s.name)) is not None]
        return cls(list(daemon.states.values()), daemon.static_labels, daemon.scheduler.stats,
                   daemon.reload_status, slos=reports, shard=daemon.shard, probes_in_file=daemon.probes_in_file,
                   web=web, metrics=daemon.config.metrics if daemon.config else STANDARD)


@dataclass(frozen=True, slots=True)
class _ProbeText:
    """A probe's label set and constant lines, rendered once per spec and static labels."""

    spec: ProbeSpec
    static: Mapping[str, str]
    base: str
    info: str
    interval: str


def _probe_text(state: ProbeState, static: Mapping[str, str]) -> _ProbeText:
    cached = fragments.text_of(state.exposition_cache)
    if isinstance(cached, _ProbeText) and cached.spec is state.spec and cached.static is static:
        return cached
    spec = state.spec
    pairs = [("probe", spec.name), ("type", spec.type), *static.items(), *spec.labels.items()]
    base = ",".join(f'{k}="{escape(v)}"' for k, v in pairs)
    text = _ProbeText(
        spec, static, base,
        f'probed_probe_info{{{base},target="{escape(redact(spec.target, state.secrets))}"}} 1',
        f"probed_probe_interval_seconds{{{base}}} {num(spec.interval)}",
    )
    state.exposition_cache = text
    return text


Windows = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Render:
    """What every family writer of one scrape shares."""

    now: float
    windows: Windows
    quantiles: Mapping[str, tuple[int, ...]] | None
    """Window label -> indices into QUANTILES to export; None: every quantile of every window."""


_ALL_QUANTILES = tuple(range(len(QUANTILES)))


async def render(view: ExpositionView, now: float | None = None) -> bytes:
    return b"".join([chunk async for chunk in render_chunks(view, now)])


# -- one writer per metric family: appends the lines of that family for a batch of probes
Batch = Sequence[tuple[ProbeState, _ProbeText]]
Writer = Callable[[list[str], Batch, "Render"], None]


def _w_success(out: list[str], batch: Batch, ctx: Render) -> None:
    out += [f"probe_success{{{t.base}}} {1 if s.last.success else 0}" for s, t in batch if s.last is not None]


def _w_duration(out: list[str], batch: Batch, ctx: Render) -> None:
    out += [f"probe_duration_seconds{{{t.base}}} {s.last.duration_s:.6g}" for s, t in batch
            if s.last is not None]


def _w_totals(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        out.append(f'probed_probes_total{{{t.base},result="success"}} {s.ring.successes_total}')
        out.append(f'probed_probes_total{{{t.base},result="failure"}} {s.ring.failures_total}')


def _w_failures(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        if s.failures_by_reason:
            for reason, count in list(s.failures_by_reason.items()):
                out.append(f'probed_probe_failures_total{{{t.base},reason="{reason.value}"}} {count}')


def _w_warning(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        if s.last is not None and s.last.warning is not None:
            out.append(f'probed_probe_warning{{{t.base},reason="{s.last.warning.value}"}} 1')


def _w_histogram(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        ring = s.ring
        _histogram(out, "probed_probe_duration_seconds", t.base, ring.buckets, ring.hist_counts, ring.hist_sum)


def _w_latency(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        _percentiles(out, s, t.base, ctx)


def _w_info(out: list[str], batch: Batch, ctx: Render) -> None:
    out += [t.info for _, t in batch]


def _w_last_run(out: list[str], batch: Batch, ctx: Render) -> None:
    out += [f"probed_probe_last_run_timestamp_seconds{{{t.base}}} {s.last_ts:.3f}" for s, t in batch
            if s.last is not None]


def _w_interval(out: list[str], batch: Batch, ctx: Render) -> None:
    out += [t.interval for _, t in batch]


def _w_skipped(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        for cause in SKIP_CAUSES:
            out.append(f'probed_probe_skipped_runs_total{{{t.base},cause="{cause}"}} {s.skipped[cause]}')


def _phase_writer(metric: str) -> Writer:
    """The last attempt's phases under `metric`."""

    def write(out: list[str], batch: Batch, ctx: Render) -> None:
        for s, t in batch:
            if s.last is not None:
                for phase, secs in s.last.phases.items():
                    out.append(f"{metric}{{{t.base}{_label_pair('phase', phase)}}} {secs:.6g}")
    return write


def _w_values(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        if s.last is not None:
            for name, value in s.last.values.items():
                out.append(f"probed_probe_value{{{t.base}{_label_pair('name', name)}}} {num(value)}")


def _w_error_codes(out: list[str], batch: Batch, ctx: Render) -> None:
    for s, t in batch:
        if s.error_codes:
            for code, count in list(s.error_codes.items()):
                out.append(f'probed_probe_error_codes_total{{{t.base},code="{escape(code)}"}} {count}')


def _alias_writer(metric: str, names_by_type: Mapping[str, str]) -> Writer:
    """`metric` carries value `names_by_type[type]` of each probe (e.g. status_code for http)."""

    def write(out: list[str], batch: Batch, ctx: Render) -> None:
        for s, t in batch:
            name = names_by_type.get(t.spec.type)
            if name is not None and s.last is not None:
                value = s.last.values.get(name)
                if value is not None:
                    out.append(f"{metric}{{{t.base}}} {num(value)}")
    return write


def _info_writer(metric: str) -> Writer:
    def write(out: list[str], batch: Batch, ctx: Render) -> None:
        for s, t in batch:
            labels = s.last.info.get(metric) if s.last is not None else None
            if labels is not None:
                extra = "".join(f',{k}="{escape(redact(v, s.secrets))}"' for k, v in labels.items())
                out.append(f"{metric}{{{t.base}{extra}}} 1")
    return write


_WRITERS: Mapping[str, Writer] = {
    "probe_success": _w_success,
    "probe_duration_seconds": _w_duration,
    "probed_probes_total": _w_totals,
    "probed_probe_failures_total": _w_failures,
    "probed_probe_warning": _w_warning,
    "probed_probe_duration_seconds": _w_histogram,
    "probed_probe_latency_seconds": _w_latency,
    "probed_probe_info": _w_info,
    "probed_probe_last_run_timestamp_seconds": _w_last_run,
    "probed_probe_interval_seconds": _w_interval,
    "probed_probe_skipped_runs_total": _w_skipped,
    "probed_probe_phase_seconds": _phase_writer("probed_probe_phase_seconds"),
    "probe_http_duration_seconds": _phase_writer("probe_http_duration_seconds"),
    "probed_probe_value": _w_values,
    "probed_probe_error_codes_total": _w_error_codes,
}


def _of_types(family: catalog.Family, writer: Writer) -> Writer:
    """Lines only for the probe types the catalog declares for `family` (None: every type)."""
    if family.types is None:
        return writer
    types = frozenset(family.types)
    return lambda out, batch, ctx: writer(out, [(s, t) for s, t in batch if t.spec.type in types], ctx)


# In catalog order; each is present (HELP and TYPE) even before any result, when its profile has it.
_FAMILIES: tuple[tuple[catalog.Family, Writer], ...] = tuple(
    (f, _of_types(f, _WRITERS[f.name])) for f in catalog.PROBE_FAMILIES)


def _dynamic_families(pairs: list[tuple[ProbeState, _ProbeText]], metrics: MetricsSettings,
                      ) -> tuple[list[tuple[str, str, str, Writer]], tuple[object, ...]]:
    """The probe types' own families (blackbox-named values, info metrics) the results carry,
    and what they render from (equal for two renders whose families write alike)."""
    aliased: dict[str, tuple[MetricAlias, dict[str, str]]] = {}
    infos: dict[str, str] = {}
    for state, text in pairs:  # one probe per distinct set of names (fragments.label_texts)
        last = state.last
        if last is None:
            continue
        kind = get_kind(text.spec.type)
        for name in last.values:
            alias = kind.aliases.get(name)
            if alias is not None and catalog.in_profile(catalog.profile_of(alias.metric), metrics):
                aliased.setdefault(alias.metric, (alias, {}))[1][text.spec.type] = name
        for metric in last.info:
            if catalog.in_profile(catalog.profile_of(metric), metrics):
                infos.setdefault(metric, kind.infos.get(metric, catalog.INFO_HELP))
    families = [(a.metric, a.kind, a.help, _alias_writer(a.metric, names)) for a, names in aliased.values()]
    families += [(m, "gauge", help_text, _info_writer(m)) for m, help_text in infos.items()]
    signature = (tuple((a.metric, a.kind, a.help, tuple(names.items())) for a, names in aliased.values()),
                 tuple(infos.items()))
    return families, signature


async def render_chunks(view: ExpositionView, now: float | None = None) -> AsyncIterator[bytes]:
    """The exposition body, family by family, in chunks of at most one slice of work each.

    Each probe's lines come from its fragment (fragments.py), re-rendered only when something
    they depend on changed; then every family is gathered from the fragments' segments, so a
    chunk can leave as soon as it is made and the process never holds the whole body of a
    large scrape. Between slices the generator yields to the event loop.
    """
    now = time.time() if now is None else now
    static = view.static_labels
    pairs, distinct = fragments.label_texts(view.states, lambda state: _probe_text(state, static))
    slices = Slices()
    metrics = view.metrics
    ctx = Render(now, view.windows, None if metrics.wants("percentiles") else catalog.LEAN_QUANTILES)
    fixed = [(f.name, f.type, f.help, write) for f, write in _FAMILIES if f.exported(metrics)]
    dynamic, dynamic_signature = _dynamic_families(distinct, metrics)
    families = (*fixed, *dynamic)
    names = [name for name, *_ in families]
    layout = fragments.layout(
        (metrics, ctx.windows, ctx.quantiles, tuple(names[:len(fixed)]), dynamic_signature),
        [write for *_, write in families], names.index(catalog.LATENCY) if catalog.LATENCY in names else None)
    cut = await fragments.current_all(pairs, layout, ctx, slices)
    headers = [f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode() for name, kind, help_text, _ in families]
    async for chunk in fragments.family_chunks(headers, cut, slices):
        yield chunk
    if view.slos:
        yield _slo_metrics(view.slos, view.static_labels).encode()
    yield _self_metrics(view, len(view.states)).encode()
    yield process.render()  # process_*, python_gc_*, python_info: prometheus_client's own collectors


@functools.lru_cache(maxsize=64)
def _bucket_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    return (*(f',le="{num(b)}"}} ' for b in bounds), ',le="+Inf"} ')


def _histogram(lines: list[str], name: str, base: str, bounds: tuple[float, ...],
               counts: Sequence[int], total: float) -> None:
    bucket = f"{name}_bucket{{{base}"
    cumulative = 0
    for le, count in zip(_bucket_labels(bounds), counts, strict=True):
        cumulative += count
        lines.append(f"{bucket}{le}{cumulative}")
    lines.append(f"{name}_sum{{{base}}} {num(total)}")
    lines.append(f"{name}_count{{{base}}} {cumulative}")


def _percentiles(lines: list[str], state: ProbeState, base: str, ctx: Render) -> None:
    cache = state.percentiles
    if cache.written != state.ring.written and cache.written < 0:
        state.refresh_percentiles(ctx.windows, ctx.now)  # first scrape of a probe: compute on demand
    head = "probed_probe_latency_seconds{" + base
    for label, window_s in ctx.windows:
        picks = ctx.quantiles.get(label) if ctx.quantiles is not None else _ALL_QUANTILES
        quantiles = cache.values.get(window_s)
        if quantiles is None or not picks:
            continue
        suffixes = _quantile_suffixes(label)
        for i in picks:
            lines.append(f"{head}{suffixes[i]}{quantiles[i]:.6g}")


@functools.lru_cache(maxsize=64)
def _quantile_suffixes(window: str) -> tuple[str, ...]:
    return tuple(f',quantile="{q}",window="{window}"}} ' for q in QUANTILES)


def _slo_metrics(reports: Sequence[SloReport], static: Mapping[str, str]) -> str:
    """Every SLO's figures; help and type from the catalog. Ratios with no data are left out."""
    samples: dict[str, list[str]] = {f.name: [] for f in catalog.SLO_FAMILIES}
    for r in reports:
        spec = r.spec
        pairs = [("slo", spec.name), ("service", spec.service), *static.items(), *spec.labels.items()]
        base = ",".join(f'{k}="{escape(v)}"' for k, v in pairs)

        def put(name: str, value: float | None, extra: str = "", base: str = base) -> None:
            if value is not None:
                samples[name].append(f"{name}{{{base}{extra}}} {num(value)}")

        put("probed_slo_objective_ratio", spec.objective)
        for label in r.windows:
            put("probed_slo_sli_ratio", r.sli(label), _label_pair("window", label))
            put("probed_slo_burn_rate", r.burn_rate(label), _label_pair("window", label))
        put("probed_slo_error_budget_remaining_ratio", r.budget_remaining)
        put("probed_slo_budget_exhaustion_seconds", r.exhaustion_s)
        put("probed_slo_coverage_ratio", r.coverage)
        put("probed_slo_events_total", r.events.good, ',result="good"')
        put("probed_slo_events_total", r.events.bad, ',result="bad"')
    out: list[str] = []
    for family in catalog.SLO_FAMILIES:
        out.append(f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.type}\n")
        out.extend(line + "\n" for line in samples[family.name])
    return "".join(out)


def _self_metrics(view: ExpositionView, probe_count: int) -> str:
    """probed's own families, help and type from the catalog, samples from the view."""
    s = view.stats
    web = view.web if view.web is not None else WebStats()
    lateness: list[str] = []
    _histogram(lateness, "probed_scheduler_lateness_seconds", "", LATENESS_BUCKETS, s.lateness_counts, s.lateness_sum)
    samples: dict[str, list[str]] = {
        "probed_scheduler_lateness_seconds": [ln.replace("{,", "{").replace("{}", "") for ln in lateness],
        "probed_scheduler_in_flight": [f"probed_scheduler_in_flight {s.in_flight}"],
        "probed_scheduler_skipped_runs_total": [
            f'probed_scheduler_skipped_runs_total{{cause="{c}"}} {n}' for c, n in s.skipped.items()],
        "probed_event_loop_lag_seconds": [f"probed_event_loop_lag_seconds {num(s.loop_lag_s)}"],
        "probed_event_loop_lag_max_seconds": [f"probed_event_loop_lag_max_seconds {num(s.loop_lag_max_s)}"],
        "probed_probes_configured": [f"probed_probes_configured {view.probes_in_file or probe_count}"],
        "probed_config_last_reload_successful": [
            f"probed_config_last_reload_successful {1 if view.reload.successful else 0}"],
        "probed_config_last_reload_success_timestamp_seconds": [
            f"probed_config_last_reload_success_timestamp_seconds {num(view.reload.last_success_ts)}"],
        "probed_build_info": [f'probed_build_info{{version="{__version__}",python="{platform.python_version()}"}} 1'],
        "probed_event_loop_tasks": [f"probed_event_loop_tasks {len(asyncio.all_tasks())}"],
        "probed_gc_frozen_objects": [f"probed_gc_frozen_objects {collector.frozen_objects()}"],
        "probed_shard_info": [f'probed_shard_info{{shard="{view.shard.index}",shards="{view.shard.count}"}} 1'],
        "probed_shard_probes": [f"probed_shard_probes {probe_count}"],
        "probed_web_connections": [f"probed_web_connections {web.connections_open}"],
        "probed_web_connections_refused_total": [
            f"probed_web_connections_refused_total {web.connections_refused_total}"],
        "probed_web_connections_timed_out_total": [
            f"probed_web_connections_timed_out_total {web.connections_timed_out_total}"],
        "probed_web_requests_refused_total": [
            f'probed_web_requests_refused_total{{cause="{c}"}} {web.requests_refused[c]}' for c in REFUSAL_CAUSES],
        "probed_scrapes_total": [f"probed_scrapes_total {web.scrapes_total}"],
        "probed_scrape_renders_total": [f"probed_scrape_renders_total {web.renders_total}"],
    }
    out: list[str] = []
    for family in catalog.PROCESS_FAMILIES:
        out.append(f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.type}\n")
        out.extend(sample + "\n" for sample in samples[family.name])
    return "".join(out)
