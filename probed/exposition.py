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
from collections.abc import AsyncIterator, Mapping, Sequence
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
CHECK_EVERY = 16  # probes between looks at the clock


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def seconds(value: float) -> str:
    """A duration: six significant digits (microseconds at the millisecond scale) format about 3x
    faster than repr(), and durations are most of the floats a scrape prints."""
    return f"{value:.6g}"


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


class _Family:
    """One metric family, accumulated probe by probe, emitted as one contiguous block.

    Lines are joined into a chunk at the end of every render slice, so the cost of building the
    body is spread over the slices instead of one long join at the end.
    """

    __slots__ = ("chunks", "header", "lines")

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.header = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        self.lines: list[str] = []
        self.chunks: list[bytes] = []

    def seal(self) -> None:
        if self.lines:
            self.lines.append("")
            self.chunks.append("\n".join(self.lines).encode())
            self.lines.clear()


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


async def render(view: ExpositionView, now: float | None = None) -> bytes:
    return b"".join([chunk async for chunk in render_chunks(view, now)])


async def render_chunks(view: ExpositionView, now: float | None = None) -> AsyncIterator[bytes]:
    """The exposition body in chunks. Yields to the event loop every SLICE_S of work."""
    now = time.time() if now is None else now
    fam: dict[str, _Family] = {}

    def family(name: str, kind: str, help_text: str) -> list[str]:
        f = fam.get(name)
        if f is None:
            f = fam[name] = _Family(name, kind, help_text)
        return f.lines

    # Declared up front so the order is stable and the core families exist even with no results.
    success = family("probe_success", "gauge", "Whether the last attempt succeeded (1) or failed (0).")
    duration = family("probe_duration_seconds", "gauge", "How long the last attempt took.")
    totals = family("probed_probes_total", "counter", "Attempts by result.")
    failures = family("probed_probe_failures_total", "counter", "Failed attempts by reason.")
    hist = family("probed_probe_duration_seconds", "histogram", "Attempt duration, all attempts.")
    latency = family("probed_probe_latency_seconds", "gauge",
                     "Latency quantiles of successful attempts over a trailing window, from the ring core.")
    info = family("probed_probe_info", "gauge", "Configured probe (target with credentials removed).")
    last_ts = family("probed_probe_last_run_timestamp_seconds", "gauge",
                     "Unix time the last attempt finished (for staleness alerts).")
    interval = family("probed_probe_interval_seconds", "gauge", "Configured interval.")
    skipped = family("probed_probe_skipped_runs_total", "counter",
                     "Scheduled runs skipped, by cause (overrun: the previous run was still going).")
    phases = family("probed_probe_phase_seconds", "gauge", "Duration of each phase of the last attempt.")
    http_phases = family("probe_http_duration_seconds", "gauge",
                         "Duration of each HTTP phase of the last attempt (blackbox_exporter).")
    values = family("probed_probe_value", "gauge", "Numeric facts from the last attempt, by name.")
    aws_errors = family("probed_aws_errors_total", "counter", "Failed AWS calls by AWS error code.")

    clock = time.perf_counter
    slice_end = clock() + SLICE_S
    for i, state in enumerate(view.states):
        if i % CHECK_EVERY == 0 and clock() > slice_end:
            for f in fam.values():
                f.seal()
            await asyncio.sleep(0)
            slice_end = clock() + SLICE_S
        text = _probe_text(state, view.static_labels)
        base = text.base
        ring = state.ring
        info.append(text.info)
        interval.append(text.interval)
        totals.append(f'probed_probes_total{{{base},result="success"}} {ring.successes_total}')
        totals.append(f'probed_probes_total{{{base},result="failure"}} {ring.failures_total}')
        for cause in SKIP_CAUSES:
            skipped.append(f'probed_probe_skipped_runs_total{{{base},cause="{cause}"}} {state.skipped[cause]}')
        _histogram(hist, "probed_probe_duration_seconds", base, ring.buckets, ring.hist_counts, ring.hist_sum)
        _percentiles(latency, state, base, view.windows, now)
        for reason, count in list(state.failures_by_reason.items()):
            failures.append(f'probed_probe_failures_total{{{base},reason="{reason.value}"}} {count}')
        for code, count in list(state.aws_error_codes.items()):
            aws_errors.append(f'probed_aws_errors_total{{{base},code="{escape(code)}"}} {count}')
        last = state.last
        if last is None:
            continue
        last_ts.append(f"probed_probe_last_run_timestamp_seconds{{{base}}} {state.last_ts:.3f}")
        success.append(f"probe_success{{{base}}} {1 if last.success else 0}")
        duration.append(f"probe_duration_seconds{{{base}}} {seconds(last.duration_s)}")
        is_http = state.spec.type == "http"
        for phase, secs in last.phases.items():
            sample = f"{{{base}{_label_pair('phase', phase)}}} {seconds(secs)}"
            phases.append("probed_probe_phase_seconds" + sample)
            if is_http:
                http_phases.append("probe_http_duration_seconds" + sample)
        aliases = _aliases(state.spec.type)
        for name, value in last.values.items():
            sample = f"{{{base}{_label_pair('name', name)}}} {num(value)}"
            values.append("probed_probe_value" + sample)
            alias = aliases.get(name)
            if alias is not None:
                family(alias.metric, alias.kind, alias.help).append(f"{alias.metric}{{{base}}} {num(value)}")
        for metric, labels in last.info.items():
            if metric == AWS_ERROR_INFO:
                continue
            extra = "".join(f',{k}="{escape(redact(v, state.secrets))}"' for k, v in labels.items())
            family(metric, "gauge", "Information about the last attempt (value is always 1).").append(
                f"{metric}{{{base}{extra}}} 1")

    for f in fam.values():
        f.seal()
        if f.chunks:
            yield f.header.encode()
            for chunk in f.chunks:
                yield chunk
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
    for label, window_s in windows:
        quantiles = cache.values.get(window_s)
        if quantiles is None:
            continue
        for q, v in zip(QUANTILES, quantiles, strict=True):
            lines.append(f'probed_probe_latency_seconds{{{base},quantile="{q}",window="{label}"}} {seconds(v)}')


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
