"""The status page `/`: HTML drawn on the server, SLOs first, then one row per probe.

No JavaScript and nothing fetched from elsewhere: the burn-down charts are inline SVG, so the
page works behind any firewall and in a terminal browser's screenshot. Every text that comes
from the config or a probe goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from probed import __version__
from probed.config.slo import SloSpec
from probed.runtime.state import ProbeState
from probed.runtime.windows import SUCCESS_WINDOWS
from probed.slo import math as slo_math
from probed.slo.engine import SloEngine

PAGE_BURN_WINDOWS = ("5m", "1h", "6h", "3d")
"""The burn rates the page shows (the API has them all)."""

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
"""Sent with every HTML page: nothing is loaded, run or submitted, and no other site may frame it (the
inline CSS is the one exception). Should an escape ever be missed, an injected script still cannot run."""


# --------------------------------------------------------------------------- burn-down


@dataclass(frozen=True)
class BurnDown:
    """Budget remaining at the end of each hour of the SLO window, counted from its start.

    remaining(h) = 1 - bad(start..h) / ((1 - objective) * total(start..now)): it starts at 1
    and ends at the window's budget remaining; it may go below 0. None before the first data.
    """

    slots: int
    """Hours on the x axis: the whole window (a calendar month is its whole length)."""
    start_ts: float
    remaining: tuple[float | None, ...]
    """One per hour from the window's start to the current hour."""
    gaps: tuple[tuple[int, int], ...]
    """Runs of hours (first, last) with no data after the first data: probed was not running."""


def burn_down(spec: SloSpec, states: Mapping[str, ProbeState], engine: SloEngine, now: float) -> BurnDown:
    current = int(now) // 3600
    if spec.calendar is not None:
        start = int(slo_math.calendar_start(now, spec.calendar)) // 3600
        slots = math.ceil(slo_math.calendar_length(now, spec.calendar) / 3600)
    else:
        slots = max(1, math.ceil(spec.window_s / 3600))
        start = current - slots + 1
    attempts, bad = _hourly(spec, states, engine, start, current)
    total = int(attempts.sum())
    seen = np.cumsum(attempts) > 0
    if total == 0:
        return BurnDown(slots, start * 3600.0, tuple(None for _ in attempts), ())
    remaining = 1.0 - np.cumsum(bad) / ((1.0 - spec.objective) * total)
    values = tuple(float(r) if s else None for r, s in zip(remaining, seen, strict=True))
    empty = seen & (attempts == 0)
    empty[-1] = False  # the current hour has only begun
    return BurnDown(slots, start * 3600.0, values, _runs(empty))


def _hourly(spec: SloSpec, states: Mapping[str, ProbeState], engine: SloEngine, lo: int,
            hi: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Events (or slices) and bad ones per hour lo..hi."""
    n = hi - lo + 1
    attempts = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    if spec.budgeting == "timeslices":
        ledger = engine.ledgers.get(spec.name)
        if ledger is not None:
            rows = ledger.hours.rows(lo, hi).astype(np.int64)
            attempts += rows[0]
            bad += rows[1]
        return attempts, bad
    for name in spec.probes:
        state = states.get(name)
        if state is None:
            continue
        rows = state.ring.hours.rows(lo, hi).astype(np.int64)
        attempts += rows[0]
        bad += rows[0] - rows[2] if spec.sli == "latency" else rows[1]
    return attempts, bad


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for i in np.flatnonzero(mask):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], int(i))
        else:
            out.append((int(i), int(i)))
    return tuple(out)


CHART_W, CHART_H, PAD_L, PAD_R, PAD_T, PAD_B = 330, 90, 46, 8, 6, 16


def burn_down_svg(chart: BurnDown, title: str) -> str:
    """The chart as inline SVG: the budget line, a dashed 0 line, grey bands where there is no data."""
    w, h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    values = [v for v in chart.remaining if v is not None]
    low = min(0.0, *values) if values else 0.0
    high = max(1.0, *values) if values else 1.0

    def x(i: float) -> float:  # i hours after the window's start
        return PAD_L + w * i / chart.slots

    def y(v: float) -> float:
        return PAD_T + h * (high - v) / (high - low)

    # Scales with its column (the viewBox keeps the drawing whole): at a fixed width the chart pushed
    # the table past a narrow window and clipped its right end, the newest hour. Narrow windows shrink
    # it (CSS: svg.burndown), down to a size where it still reads.
    parts = [f'<svg class="burndown" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
             f'viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="xMinYMid meet" role="img">'
             f'<title>{html.escape(title)}</title>',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>']
    for first, last in chart.gaps:
        parts.append(f'<rect class="gap" x="{x(first):.1f}" y="{PAD_T}" width="{max(1.0, x(last + 1) - x(first)):.1f}" '
                     f'height="{h}" fill="#e4e4e4"><title>no data</title></rect>')
    parts.append(f'<line class="zero" x1="{PAD_L}" x2="{PAD_L + w}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
                 'stroke="#c00" stroke-dasharray="3 3"/>')
    if y(0) - y(1) >= 10:
        parts.append(f'<text x="{PAD_L - 3}" y="{y(1) + 4:.1f}" text-anchor="end">100%</text>')
    parts.append(f'<text x="{PAD_L - 3}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>')
    if y(low) - y(0) >= 10:
        parts.append(f'<text x="{PAD_L - 3}" y="{y(low):.1f}" text-anchor="end">{low * 100:.0f}%</text>')
    # Each value is the budget at the end of its hour; the line starts at 100% where data begins.
    first_data = next((i for i, v in enumerate(chart.remaining) if v is not None), None)
    if first_data is not None:
        coords = [(x(first_data), y(1.0))] + [(x(i + 1), y(v)) for i, v in enumerate(chart.remaining) if v is not None]
        final = values[-1]
        colour = "#080" if final >= 0.5 else ("#d80" if final >= 0 else "#c00")
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        parts.append(f'<polyline class="budget" fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
                     f'<circle cx="{coords[-1][0]:.1f}" cy="{coords[-1][1]:.1f}" r="2.5" fill="{colour}"/>')
    else:
        parts.append(f'<text x="{PAD_L + w / 2}" y="{PAD_T + h / 2}" text-anchor="middle">no data yet</text>')
    start = datetime.fromtimestamp(chart.start_ts, UTC).strftime("%b %d")
    end = datetime.fromtimestamp(chart.start_ts + chart.slots * 3600, UTC).strftime("%b %d")
    parts.append(f'<text x="{PAD_L}" y="{CHART_H - 3}">{start}</text>'
                 f'<text x="{PAD_L + w}" y="{CHART_H - 3}" text-anchor="end">{end}</text></svg>')
    return "".join(parts)


# --------------------------------------------------------------------------- text


def human_duration(seconds: float | None) -> str:
    """3d 4h, 5h 12m, 42m, 30s; "∞" when not burning, "exhausted" at 0, a dash with no data (HTML entities)."""
    if seconds is None:
        return "&ndash;"
    if math.isinf(seconds):
        return "&infin;"
    if seconds <= 0:
        return "exhausted"
    s = int(seconds)
    for big, big_unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m")):
        if s >= big:
            rest = (s % big) // small
            return f"{s // big}{big_unit}" + (f" {rest}{small_unit}" if rest else "")
    return f"{s // 60}m" if s >= 60 else f"{s}s"


def _percent(ratio: float | None, digits: int = 1) -> str:
    return "&ndash;" if ratio is None else f"{ratio * 100:.{digits}f}%"


def _burn(rate: float | None) -> str:
    if rate is None:
        return "<td>&ndash;</td>"
    css = " class='hot'" if rate >= 14.4 else (" class='warm'" if rate > 1 else "")
    return f"<td{css}>{rate:.2f}&times;</td>"


def slo_row(s: dict[str, Any], chart: BurnDown) -> str:
    """One SLO of the status page: its figures and its burn-down chart, its diagnosis below."""
    spec = s["spec"]
    remaining = s["budget_remaining_ratio"]
    css = "nodata" if remaining is None else ("ok" if remaining >= 0.25 else ("low" if remaining >= 0 else "over"))
    exhaustion = human_duration(
        None if s["burning"] is None else (s["exhaustion_seconds"] if s["burning"] else math.inf))
    name = html.escape(s["name"])
    title = f"{s['name']}: budget remaining over the {spec['window']} window"
    cells = "".join(_burn(s["windows"][w]["burn_rate"]) for w in PAGE_BURN_WINDOWS)
    row = (
        f"<tr class='slo {css}'><td><b>{name}</b><br><small>{html.escape(spec['service'])} &middot; "
        f"{html.escape(spec['sli'])} &middot; {html.escape(spec['budgeting'])}</small></td>"
        f"<td>{spec['objective_percent']:g}% / {html.escape(spec['window'])}</td>"
        f"<td class='budget'>{_percent(remaining)}</td>{cells}<td>{exhaustion}</td>"
        f"<td>{_percent(s['coverage_ratio'], 1)}</td><td>{burn_down_svg(chart, title)}</td></tr>"
    )
    if s["diagnosis"]:
        row += f"<tr class='detail'><td></td><td colspan='9'>{html.escape(s['diagnosis'])}</td></tr>"
    return row


def slo_section(rows: Sequence[str]) -> str:
    if not rows:
        return ""
    heads = "".join(f"<th>burn {w}</th>" for w in PAGE_BURN_WINDOWS)
    return ("<h2>SLOs</h2><table class='slos'><tr><th>SLO</th><th>objective</th><th>budget left</th>"
            f"{heads}<th>exhausted in</th><th>coverage</th><th>budget burn-down</th></tr>{''.join(rows)}</table>")


# --------------------------------------------------------------------------- probes

MAX_ROWS = 500
"""Probes the page lists unless asked for all: every failing one first, then the rest."""


def status_of(success: bool | None, warning: object | None) -> str:
    """A probe's row class from its last result (success None: no result yet), for the page and
    for the API's `?state=` filter alike."""
    if success is None:
        return "pending"
    if success:
        # A warning (an expiring certificate) is amber, not red: the service still works.
        return "ok" if warning is None else "warn"
    return "fail"


def status_class(p: dict[str, Any]) -> str:
    last = p["last"]
    return status_of(None, None) if last is None else status_of(last["success"], last.get("warning"))


def _ago(now: float, ts: float | None) -> str:
    return "&ndash;" if not ts else f"{human_duration(max(now - ts, 0.0))} ago"


def _success(window: dict[str, Any], label: str, interval_s: float) -> str:
    """The success share with its attempt count; a window not yet filled says how much it holds
    (after a minute of uptime, "100% (1d)" would claim a day)."""
    ratio, attempts = window["success_ratio"], window["attempts"]
    if ratio is None:
        return "&ndash;"
    # Hour buckets say "some time in this hour"; attempts times the interval is closer when the
    # probe ran to schedule. Either can overstate: take the smaller.
    covered = min(window["covered_seconds"], attempts * interval_s)
    span = f" over {human_duration(covered)}" if covered < 0.9 * _WINDOW_S[label] else ""
    return f"{ratio * 100:.2f}% <small>of {attempts}{span}</small>"


_WINDOW_S = dict(SUCCESS_WINDOWS)
"""The API's attempt windows, by label: the page shows the same ones."""


def _labels(labels: Mapping[str, str]) -> str:
    return " ".join(f"<span class='label'>{html.escape(k)}={html.escape(v)}</span>" for k, v in labels.items())


def probe_row(p: dict[str, Any], now: float) -> str:
    """One probe's row (and its detail row when it is failing) of the status page."""
    last, css = p["last"], status_class(p)
    status = "pending" if last is None else ((last.get("warning") or "ok") if last["success"] else last["reason"])
    p5 = p["percentiles"]["5m"]
    name = html.escape(p["name"])
    cells = (
        f"<td><a href='/probes/{html.escape(p['name'], quote=True)}'>{name}</a></td>",
        f"<td>{html.escape(p['type'])}</td><td>{_labels(p['labels'])}</td>",
        f"<td class='status'>{html.escape(status)}</td>",
        f"<td>{_ago(now, p['failing_since'])}</td>",
        f"<td>{_ago(now, last['timestamp'] if last else None)}</td>",
        "<td>&ndash;</td>" if last is None else f"<td>{last['duration_seconds'] * 1000:.1f} ms</td>",
        "<td>&ndash;</td>" if p5 is None else f"<td>{p5['p50'] * 1000:.1f} / {p5['p99'] * 1000:.1f} ms</td>",
        f"<td>{_success(p['windows']['1h'], '1h', p['interval_seconds'])}</td>",
        f"<td>{_success(p['windows']['1d'], '1d', p['interval_seconds'])}</td>",
    )
    detail = "" if last is None or css not in ("fail", "warn") or not last["detail"] else (
        f"<tr class='detail'><td></td><td colspan='9'>{html.escape(last['detail'])}</td></tr>")
    return f"<tr class='{css}'>{''.join(cells)}</tr>{detail}"


def probes_section(rows: Sequence[str], counts: Mapping[str, int], shown: int, total: int) -> str:
    summary = " &middot; ".join(f"<span class='{c}'>{counts.get(c, 0)} {word}</span>" for c, word in (
        ("fail", "failing"), ("warn", "warning"), ("pending", "pending"), ("ok", "ok")))
    more = "" if shown == total else (f" &middot; showing {shown} of {total}, failing first: "
                                      "<a href='/?all=1'>show all</a>")
    return (f"<h2>Probes</h2><p class='counts'>{summary}{more}</p><table class='probes'><tr><th>probe</th>"
            "<th>type</th><th>labels</th><th>status</th><th>failing since</th><th>last check</th><th>took</th>"
            f"<th>p50 / p99 (5m)</th><th>success (1h)</th><th>success (1d)</th></tr>{''.join(rows)}</table>")


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def detail_page(p: dict[str, Any], recent: Mapping[str, int], now: float) -> str:
    """One probe: its spec, last result with phases and values, its last failure, percentiles,
    success per window and failures by reason. `recent`: failures by reason over the last hour."""
    last, failure = p["last"], p["last_failure"]
    spec = _table([("type", html.escape(p["type"])), ("target", html.escape(p["target"])),
                   ("interval / timeout", f"{p['interval_seconds']:g}s / {p['timeout_seconds']:g}s"),
                   ("labels", _labels(p["labels"]) or "&ndash;"),
                   ("failing since", _ago(now, p["failing_since"]))])

    def result(r: dict[str, Any] | None, title: str) -> str:
        if r is None:
            return f"<h2>{title}</h2><p>none</p>"
        rows = [("when", _ago(now, r["timestamp"])),
                ("result", html.escape("ok" if r["success"] else r["reason"])),
                ("took", f"{r['duration_seconds'] * 1000:.1f} ms"), ("detail", html.escape(r["detail"]) or "&ndash;")]
        rows += [(f"phase {html.escape(k)}", f"{v * 1000:.2f} ms") for k, v in r["phases"].items()]
        rows += [(html.escape(k), html.escape(f"{v:g}")) for k, v in r["values"].items()]
        return f"<h2>{title}</h2>{_table(rows)}"

    pct = "".join(f"<tr><th>{w}</th>" + ("<td colspan='4'>&ndash;</td>" if q is None else "".join(
        f"<td>{q[k] * 1000:.1f} ms</td>" for k in ("p50", "p90", "p95", "p99"))) + "</tr>"
        for w, q in p["percentiles"].items())
    windows = "".join(f"<tr><th>{w}</th><td>{c['attempts']}</td><td>{c['failures']}</td>"
                      f"<td>{_percent(c['success_ratio'], 2)}</td></tr>" for w, c in p["windows"].items())
    reasons = "".join(f"<tr><th>{html.escape(r)}</th><td>{recent.get(r, 0)}</td><td>{n}</td></tr>"
                      for r, n in sorted(p["counts"]["by_reason"].items(), key=lambda kv: -kv[1]))
    name = html.escape(p["name"])
    link = f"/api/v1/probes/{html.escape(p['name'], quote=True)}"
    body = (f"<p><a href='/'>&larr; all probes</a> &middot; <a href='{link}'>JSON</a></p><h1>{name}</h1>"
            f"{spec}{result(last, 'Last attempt')}{result(failure, 'Last failure')}"
            "<h2>Latency of successful attempts</h2><table><tr><th></th><th>p50</th><th>p90</th><th>p95</th>"
            f"<th>p99</th></tr>{pct}</table><h2>Attempts</h2><table><tr><th></th><th>attempts</th><th>failures</th>"
            f"<th>success</th></tr>{windows}</table><h2>Failures by reason</h2>"
            + (f"<table><tr><th></th><th>last hour</th><th>since start</th></tr>{reasons}</table>" if reasons
               else "<p>none</p>"))
    return _document(f"probed: {name}", body)


# --------------------------------------------------------------------------- the page


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #ddd;vertical-align:middle}
table.probes tr.ok td.status{color:#080}table.probes tr.fail td.status{color:#c00;font-weight:bold}
table.probes tr.warn td.status{color:#b70;font-weight:bold}table.probes tr.pending td.status{color:#888}
span.fail{color:#c00;font-weight:bold}span.warn{color:#b70}span.ok{color:#080}
tr.detail td{color:#666;font-size:12px}span.label{background:#eef;border-radius:3px;padding:0 4px;font-size:12px}
table.kv th{font-weight:normal;color:#555}small{color:#666}
table.slos td.budget{font-weight:bold;font-size:16px}tr.slo.ok td.budget{color:#080}
tr.slo.low td.budget{color:#d80}tr.slo.over td.budget{color:#c00}td.warm{color:#d80}
td.hot{color:#c00;font-weight:bold}svg.burndown text{font:10px system-ui,sans-serif;fill:#666}
svg.burndown{display:block;width:100%;min-width:170px;max-width:330px;height:auto}
h2{font-size:18px;margin:1em 0 .4em}"""

REFRESH_S = 30
"""The page reloads itself this often: a glance stays current without re-rendering every few seconds."""


def _document(title: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta http-equiv="refresh" content="{REFRESH_S}"><style>{_STYLE}</style></head>'
            f"<body>{body}</body></html>")


def page(count: int, slos: str, probes: str) -> str:
    return _document("probed", (
        f"<h1>probed {__version__}</h1><p>{count} probes &middot; <a href='/metrics'>/metrics</a> &middot; "
        "<a href='/api/v1/probes'>/api/v1/probes</a> &middot; <a href='/api/v1/slos'>/api/v1/slos</a></p>"
        f"{slos}{probes}"))
