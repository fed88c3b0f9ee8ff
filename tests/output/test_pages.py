"""The status page: the SLO section above the probes, the burn-down computed from hour buckets and
drawn as inline SVG, every text escaped."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from probed.output.pages import BurnDown, burn_down, burn_down_svg, human_duration
from probed.result import ProbeResult, Reason
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState
from probed.slo.engine import SloEngine

NOW = 1_710_072_030.0  # 2024-03-10 12:00:30 UTC
H = 3600.0

CONFIG = """\
probes:
  - {name: p, type: tcp, target: "127.0.0.1:1", interval: 10s}
slos:
  - {name: s, probes: [p], objective: 90, window: 7d}
  - {name: t, probes: [p], objective: 90, window: 7d, budgeting: timeslices, timeslice: {good_ratio: 0.9}}
"""


def record(state: ProbeState, at: float, ok: int, failed: int = 0) -> None:
    for i in range(ok):
        state.record(ProbeResult.ok(duration_s=0.01), ts=at + i)
    for i in range(failed):
        state.record(ProbeResult.fail(Reason.TIMEOUT, "timed out"), ts=at + 30 + i)


def test_burn_down_is_cumulative_from_the_window_start_and_ends_at_the_budget_remaining() -> None:
    config = parse_config(CONFIG, "probes.yaml", {})
    states = {"p": ProbeState.new(config.probe("p"))}
    record(states["p"], NOW - 5 * H, 10)
    record(states["p"], NOW - 3 * H, 8, 2)
    record(states["p"], NOW - 1 * H, 10)
    engine = SloEngine()
    chart = burn_down(config.slos[0], states, engine, NOW)
    assert chart.slots == 168
    assert chart.start_ts == (int(NOW) // 3600 - 167) * H
    # total 30, budget 0.1 * 30 = 3 bad events; 2 bad by hour -3
    assert chart.remaining[:-6] == (None,) * 162
    assert chart.remaining[-6:] == pytest.approx((1.0, 1.0, 1 - 2 / 3, 1 - 2 / 3, 1 - 2 / 3, 1 - 2 / 3))
    assert chart.gaps == ((163, 163), (165, 165))  # hours -4 and -2: no data; the current hour is not a gap
    report = engine.evaluate(config.slos[0], states, NOW)
    assert chart.remaining[-1] == pytest.approx(report.budget_remaining)


def test_burn_down_goes_negative_and_reads_timeslices_from_the_ledger() -> None:
    config = parse_config(CONFIG, "probes.yaml", {})
    states = {"p": ProbeState.new(config.probe("p"))}
    record(states["p"], NOW - 2 * H, 5)
    record(states["p"], NOW - 600, 0, 5)
    engine = SloEngine()
    chart = burn_down(config.slos[0], states, engine, NOW)
    # hours -2, -1 (10 minutes ago is in the previous hour) and now: 5 bad of 10, budget 1
    assert chart.remaining[-3:] == pytest.approx((1.0, 1 - 5 / 1, 1 - 5 / 1))
    engine.evaluate(config.slos[1], states, NOW)  # fills the slice ledger
    slices = burn_down(config.slos[1], states, engine, NOW)
    # minutes: the good one 2 h ago and the bad ones 10 min ago: 2 slices, 1 bad, budget 0.2
    assert slices.remaining[-3:] == pytest.approx((1.0, 1 - 1 / 0.2, 1 - 1 / 0.2))
    svg = burn_down_svg(chart, "s <&>")
    assert "<title>s &lt;&amp;&gt;</title>" in svg
    assert 'class="zero"' in svg and "-400%" in svg
    assert re.search(r'<polyline class="budget"[^>]*stroke="#c00"', svg)


def test_an_empty_chart_says_no_data() -> None:
    svg = burn_down_svg(BurnDown(720, 0.0, (None,) * 10, ()), "x")
    assert "no data yet" in svg and "polyline" not in svg


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "&ndash;"), (math.inf, "&infin;"), (0.0, "exhausted"), (-5.0, "exhausted"), (45.0, "45s"),
    (42 * 60 + 5, "42m"), (5 * H + 12 * 60, "5h 12m"), (3 * H, "3h"), (3 * 86400 + 4 * H + 59, "3d 4h"),
    (2 * 86400 + 59 * 60, "2d"),
])
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


async def test_the_page_shows_slos_above_probes_escaped_without_scripts(slo_client: TestClient[Any, Any]) -> None:
    response = await slo_client.get("/")
    assert response.status == 200
    page = await response.text()
    assert page.index("<h2>SLOs</h2>") < page.index("<h2>Probes</h2>")
    assert "&lt;svc&gt;" in page and "<svc>" not in page
    assert page.count('<svg class="burndown"') == 3
    assert "<script" not in page and "src=" not in page
    assert "budget burning because down: connection_refused" in page
    row = page[page.index("<b>burning</b>"):page.index("<b>both</b>")]
    assert "-99900.0%" in row and "exhausted" in row and "1000.00&times;" in row
    healthy = page[page.index("<b>healthy</b>"):page.index("<b>burning</b>")]
    assert "100.0%" in healthy and "&infin;" in healthy
