"""The SLO engine over real rings, for tests: two probes, attempts recorded at chosen wall times."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime

from probed.config.model import Config
from probed.result import ProbeResult, Reason
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState
from probed.slo.engine import SloEngine, SloReport

DAY = 86400.0
NOW = datetime(2024, 3, 10, 12, 0, 30, tzinfo=UTC).timestamp()
"""30 s into a minute and an hour: every window's edges fall between buckets."""


def config(slos: str, probes: str = "") -> Config:
    """Probe `a` (with a latency threshold) and `b`, plus `probes` (list entries), and `slos`."""
    text = textwrap.dedent("""\
        probes:
          - {name: a, type: tcp, target: "127.0.0.1:1", interval: 10s, latency_threshold: 100ms}
          - {name: b, type: tcp, target: "127.0.0.1:2", interval: 10s}
        """) + textwrap.indent(textwrap.dedent(probes), "  ") + "slos:\n" + textwrap.indent(textwrap.dedent(slos), "  ")
    return parse_config(text, "probes.yaml", {})


def states_of(cfg: Config) -> dict[str, ProbeState]:
    return {s.name: ProbeState.new(s) for s in cfg.probes}


def record(state: ProbeState, at: float, ok: int, failed: int = 0, latency: float = 0.01) -> None:
    for i in range(ok):
        state.record(ProbeResult.ok(duration_s=latency), ts=at + i * 0.001)
    for i in range(failed):
        state.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503", duration_s=latency), ts=at + 0.5 + i * 0.001)


def evaluate(cfg: Config, states: Mapping[str, ProbeState], now: float = NOW, name: str | None = None) -> SloReport:
    spec = cfg.slos[0] if name is None else next(s for s in cfg.slos if s.name == name)
    return SloEngine().evaluate(spec, states, now)


def totals(report: SloReport) -> dict[str, tuple[int, int]]:
    return {label: (c.total, c.bad) for label, c in report.windows.items()}
