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

    parts = [f'<svg class="burndown" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
             f'viewBox="0 0 {CHART_W} {CHART_H}" role="img"><title>{html.escape(title)}</title>',
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


def probe_row(p: dict[str, Any]) -> str:
    """One probe's row (and its detail row when failing) of the status page."""
    last = p["last"]
    status = "pending" if last is None else ("ok" if last["success"] else last["reason"])
    css = "pending" if last is None else ("ok" if last["success"] else "fail")
    p5 = p["percentiles"]["5m"]
    day = p["windows"]["1d"]["success_ratio"]
    return (
        "<tr class='{}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            css, html.escape(p["name"]), html.escape(p["type"]), html.escape(p["target"]),
            html.escape(status),
            "" if last is None else f"{last['duration_seconds'] * 1000:.1f} ms",
            "&ndash;" if p5 is None else f"{p5['p50'] * 1000:.1f} / {p5['p99'] * 1000:.1f} ms",
            "&ndash;" if day is None else f"{day * 100:.2f}%",
        ) + ("" if last is None or not last["detail"] else
             f"<tr class='detail'><td></td><td colspan='6'>{html.escape(last['detail'])}</td></tr>")
    )


def page(count: int, slos: str, rows: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>probed</title>
<meta http-equiv="refresh" content="5">
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{padding:4px 10px;text-align:left;border-bottom:1px solid #ddd;vertical-align:middle}}
table.probes tr.ok td:nth-child(4){{color:#080}}
table.probes tr.fail td:nth-child(4){{color:#c00;font-weight:bold}}tr.detail td{{color:#666;font-size:12px}}
table.slos td.budget{{font-weight:bold;font-size:16px}}tr.slo.ok td.budget{{color:#080}}
tr.slo.low td.budget{{color:#d80}}tr.slo.over td.budget{{color:#c00}}td.warm{{color:#d80}}
td.hot{{color:#c00;font-weight:bold}}svg.burndown text{{font:10px system-ui,sans-serif;fill:#666}}
h2{{font-size:18px;margin:1em 0 .4em}}</style></head>
<body><h1>probed {__version__}</h1><p>{count} probes &middot; <a href="/metrics">/metrics</a>
&middot; <a href="/api/v1/probes">/api/v1/probes</a> &middot; <a href="/api/v1/slos">/api/v1/slos</a></p>
{slos}<h2>Probes</h2>
<table class='probes'><tr><th>probe</th><th>type</th><th>target</th><th>status</th><th>last</th><th>p50 / p99 (5m)</th>
<th>success (1d)</th></tr>{rows}</table></body></html>"""
