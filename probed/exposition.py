"""Prometheus text exposition, rendered by hand from the probes' state at scrape time.

prometheus_client's metric objects and `generate_latest` cost several microseconds per line and
render on the event loop; at 10,000 probes x 40 series that is seconds of stalled probes. Here
each probe's label set is escaped once, lines are formatted straight from the ring's counters,
and rendering yields to the event loop every 2 ms of work so probes keep their schedule while a
scrape renders; the body is streamed out in chunks. Percentiles come from a cache the daemon's
summarizer refreshes in small slices in the background (computing them for 10,000 probes at once
would itself be a stall).

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
from probed.config import ProbeSpec
from probed.core.ring import QUANTILES
from probed.probes import MetricAlias, get_kind
from probed.redact import redact
from probed.scheduler import LATENESS_BUCKETS, SchedulerStats
from probed.state import AWS_ERROR_INFO, SKIP_CAUSES, ProbeState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_WINDOWS: tuple[tuple[str, float], ...] = (("1m", 60.0), ("5m", 300.0), ("1h", 3600.0))
SLICE_S = 0.002  # render work between yields to the event loop: bounds what a scrape adds to lateness
BATCH = 32  # probes per writer call, between looks at the clock


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# Durations print as `{x:.6g}`: six significant digits (microseconds at the millisecond scale)
# format about 3x faster than repr(), and durations are most of the floats a scrape prints.
# Counters' sums and other values keep full precision (`num`).


@functools.lru_cache(maxsize=1024)
def _label_pair(key: str, value: str) -> str:
    return f',{key}="{escape(value)}"'


def num(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool
    last_success_ts: float


@dataclass
class ExpositionView:
    """What a scrape reads. Built by the daemon; exposition never reaches back into it."""

    states: list[ProbeState]
    static_labels: Mapping[str, str]
    stats: SchedulerStats
    reload: ReloadStatus
    windows: tuple[tuple[str, float], ...] = DEFAULT_WINDOWS


@dataclass(frozen=True, slots=True)
class _ProbeText:
    """A probe's label set and constant lines, rendered once per spec and static labels."""

    spec: ProbeSpec
    static: Mapping[str, str]
    base: str
    info: str
    interval: str


def _probe_text(state: ProbeState, static: Mapping[str, str]) -> _ProbeText:
    cached = state.exposition_cache
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


async def render(view: ExpositionView, now: float | None = None) -> bytes:
    return b"".join([chunk async for chunk in render_chunks(view, now)])


# -- one writer per metric family: appends the lines of that family for a batch of probes
Batch = Sequence[tuple[ProbeState, _ProbeText]]
Writer = Callable[[list[str], Batch, float, Windows], None]


def _w_success(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    out += [f"probe_success{{{t.base}}} {1 if s.last.success else 0}" for s, t in batch if s.last is not None]


def _w_duration(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    out += [f"probe_duration_seconds{{{t.base}}} {s.last.duration_s:.6g}" for s, t in batch
            if s.last is not None]


def _w_totals(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        out.append(f'probed_probes_total{{{t.base},result="success"}} {s.ring.successes_total}')
        out.append(f'probed_probes_total{{{t.base},result="failure"}} {s.ring.failures_total}')


def _w_failures(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        if s.failures_by_reason:
            for reason, count in list(s.failures_by_reason.items()):
                out.append(f'probed_probe_failures_total{{{t.base},reason="{reason.value}"}} {count}')


def _w_histogram(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        ring = s.ring
        _histogram(out, "probed_probe_duration_seconds", t.base, ring.buckets, ring.hist_counts, ring.hist_sum)


def _w_latency(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        _percentiles(out, s, t.base, w, now)


def _w_info(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    out += [t.info for _, t in batch]


def _w_last_run(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    out += [f"probed_probe_last_run_timestamp_seconds{{{t.base}}} {s.last_ts:.3f}" for s, t in batch
            if s.last is not None]


def _w_interval(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    out += [t.interval for _, t in batch]


def _w_skipped(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        for cause in SKIP_CAUSES:
            out.append(f'probed_probe_skipped_runs_total{{{t.base},cause="{cause}"}} {s.skipped[cause]}')


def _phase_writer(metric: str, only_type: str | None = None) -> Writer:
    """The last attempt's phases under `metric`; blackbox's HTTP name carries only http probes."""

    def write(out: list[str], batch: Batch, now: float, w: Windows) -> None:
        for s, t in batch:
            if s.last is not None and (only_type is None or t.spec.type == only_type):
                for phase, secs in s.last.phases.items():
                    out.append(f"{metric}{{{t.base}{_label_pair('phase', phase)}}} {secs:.6g}")
    return write


def _w_values(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        if s.last is not None:
            for name, value in s.last.values.items():
                out.append(f"probed_probe_value{{{t.base}{_label_pair('name', name)}}} {num(value)}")


def _w_aws_errors(out: list[str], batch: Batch, now: float, w: Windows) -> None:
    for s, t in batch:
        if s.aws_error_codes:
            for code, count in list(s.aws_error_codes.items()):
                out.append(f'probed_aws_errors_total{{{t.base},code="{escape(code)}"}} {count}')


def _alias_writer(metric: str, names_by_type: Mapping[str, str]) -> Writer:
    """`metric` carries value `names_by_type[type]` of each probe (e.g. status_code for http)."""

    def write(out: list[str], batch: Batch, now: float, w: Windows) -> None:
        for s, t in batch:
            name = names_by_type.get(t.spec.type)
            if name is not None and s.last is not None:
                value = s.last.values.get(name)
                if value is not None:
                    out.append(f"{metric}{{{t.base}}} {num(value)}")
    return write


def _info_writer(metric: str) -> Writer:
    def write(out: list[str], batch: Batch, now: float, w: Windows) -> None:
        for s, t in batch:
            labels = s.last.info.get(metric) if s.last is not None else None
            if labels is not None:
                extra = "".join(f',{k}="{escape(redact(v, s.secrets))}"' for k, v in labels.items())
                out.append(f"{metric}{{{t.base}{extra}}} 1")
    return write


# Always present, in this order, so the core families exist even before any result.
_FAMILIES: tuple[tuple[str, str, str, Writer], ...] = (
    ("probe_success", "gauge", "Whether the last attempt succeeded (1) or failed (0).", _w_success),
    ("probe_duration_seconds", "gauge", "How long the last attempt took.", _w_duration),
    ("probed_probes_total", "counter", "Attempts by result.", _w_totals),
    ("probed_probe_failures_total", "counter", "Failed attempts by reason.", _w_failures),
    ("probed_probe_duration_seconds", "histogram", "Attempt duration, all attempts.", _w_histogram),
    ("probed_probe_latency_seconds", "gauge",
     "Latency quantiles of successful attempts over a trailing window, from the ring core.", _w_latency),
    ("probed_probe_info", "gauge", "Configured probe (target with credentials removed).", _w_info),
    ("probed_probe_last_run_timestamp_seconds", "gauge",
     "Unix time the last attempt finished (for staleness alerts).", _w_last_run),
    ("probed_probe_interval_seconds", "gauge", "Configured interval.", _w_interval),
    ("probed_probe_skipped_runs_total", "counter",
     "Scheduled runs skipped, by cause (overrun: the previous run was still going).", _w_skipped),
    ("probed_probe_phase_seconds", "gauge", "Duration of each phase of the last attempt.",
     _phase_writer("probed_probe_phase_seconds")),
    ("probe_http_duration_seconds", "gauge",
     "Duration of each HTTP phase of the last attempt (blackbox_exporter).",
     _phase_writer("probe_http_duration_seconds", "http")),
    ("probed_probe_value", "gauge", "Numeric facts from the last attempt, by name.", _w_values),
    ("probed_aws_errors_total", "counter", "Failed AWS calls by AWS error code.", _w_aws_errors),
)


def _dynamic_families(pairs: list[tuple[ProbeState, _ProbeText]]) -> list[tuple[str, str, str, Writer]]:
    """Dedicated value metrics (blackbox names) and info metrics the current results carry."""
    aliased: dict[str, tuple[MetricAlias, dict[str, str]]] = {}
    infos: dict[str, None] = {}
    for state, text in pairs:
        last = state.last
        if last is None:
            continue
        aliases = _aliases(text.spec.type)
        for name in last.values:
            alias = aliases.get(name)
            if alias is not None:
                aliased.setdefault(alias.metric, (alias, {}))[1][text.spec.type] = name
        for metric in last.info:
            if metric != AWS_ERROR_INFO:
                infos[metric] = None
    families = [(a.metric, a.kind, a.help, _alias_writer(a.metric, names)) for a, names in aliased.values()]
    families += [(m, "gauge", "Information about the last attempt (value is always 1).", _info_writer(m))
                 for m in infos]
    return families


async def render_chunks(view: ExpositionView, now: float | None = None) -> AsyncIterator[bytes]:
    """The exposition body, family by family, in chunks of at most SLICE_S of work each.

    Families are rendered one after the other over all probes, so a chunk can leave as soon as
    it is made: the process holds one slice of the body at a time, not all 60 MB of a 10,000
    probe scrape. Between slices the generator yields to the event loop.
    """
    now = time.time() if now is None else now
    static = view.static_labels
    pairs = [(state, _probe_text(state, static)) for state in view.states]
    clock = time.perf_counter
    slice_end = clock() + SLICE_S
    windows = view.windows
    for name, kind, help_text, write in (*_FAMILIES, *_dynamic_families(pairs)):
        header = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        lines: list[str] = []
        for i in range(0, len(pairs), BATCH):
            write(lines, pairs[i:i + BATCH], now, windows)
            if clock() > slice_end:
                if lines:
                    lines.append("")
                    yield (header + "\n".join(lines)).encode()
                    header, lines = "", []
                await asyncio.sleep(0)
                slice_end = clock() + SLICE_S
        if lines:
            lines.append("")
            yield (header + "\n".join(lines)).encode()
    yield _self_metrics(view, len(view.states)).encode()


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


def _percentiles(lines: list[str], state: ProbeState, base: str,
                 windows: tuple[tuple[str, float], ...], now: float) -> None:
    cache = state.percentiles
    if cache.written != state.ring.written and cache.written < 0:
        refresh_percentiles(state, windows, now)  # first scrape of a probe: compute on demand
    head = "probed_probe_latency_seconds{" + base
    for label, window_s in windows:
        quantiles = cache.values.get(window_s)
        if quantiles is None:
            continue
        for suffix, v in zip(_quantile_suffixes(label), quantiles, strict=True):
            lines.append(f"{head}{suffix}{v:.6g}")


@functools.lru_cache(maxsize=64)
def _quantile_suffixes(window: str) -> tuple[str, ...]:
    return tuple(f',quantile="{q}",window="{window}"}} ' for q in QUANTILES)


def refresh_percentiles(state: ProbeState, windows: tuple[tuple[str, float], ...], now: float) -> None:
    cache = state.percentiles
    cache.values = state.ring.percentiles(now, [seconds for _, seconds in windows])
    cache.written, cache.computed_at = state.ring.written, now


_alias_cache: dict[str, Mapping[str, MetricAlias]] = {}


def _aliases(type_name: str) -> Mapping[str, MetricAlias]:
    aliases = _alias_cache.get(type_name)
    if aliases is None:
        aliases = _alias_cache[type_name] = get_kind(type_name).aliases
    return aliases


def _self_metrics(view: ExpositionView, probe_count: int) -> str:
    s = view.stats
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, *samples: str) -> None:
        lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        lines.extend(sample + "\n" for sample in samples)

    lateness: list[str] = []
    _histogram(lateness, "probed_scheduler_lateness_seconds", "", LATENESS_BUCKETS, s.lateness_counts, s.lateness_sum)
    metric("probed_scheduler_lateness_seconds", "histogram",
           "How late each run started after its deadline.", *(ln.replace("{,", "{").replace("{}", "")
                                                                for ln in lateness))
    metric("probed_scheduler_in_flight", "gauge", "Attempts running now.", f"probed_scheduler_in_flight {s.in_flight}")
    metric("probed_scheduler_skipped_runs_total", "counter", "Runs skipped, all probes, by cause.",
           *(f'probed_scheduler_skipped_runs_total{{cause="{c}"}} {n}' for c, n in s.skipped.items()))
    metric("probed_event_loop_lag_seconds", "gauge", "Last measured event-loop lag.",
           f"probed_event_loop_lag_seconds {num(s.loop_lag_s)}")
    metric("probed_event_loop_lag_max_seconds", "gauge", "Largest event-loop lag over the last minute.",
           f"probed_event_loop_lag_max_seconds {num(s.loop_lag_max_s)}")
    metric("probed_probes_configured", "gauge", "Probes in the running config.",
           f"probed_probes_configured {probe_count}")
    metric("probed_config_last_reload_successful", "gauge", "Whether the last config load or reload succeeded.",
           f"probed_config_last_reload_successful {1 if view.reload.successful else 0}")
    metric("probed_config_last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last successful config load or reload.",
           f"probed_config_last_reload_success_timestamp_seconds {num(view.reload.last_success_ts)}")
    metric("probed_build_info", "gauge", "probed's version and runtime (value is always 1).",
           f'probed_build_info{{version="{__version__}",python="{platform.python_version()}"}} 1')
    return "".join(lines)
