"""bench.state runs end to end at a tiny size and reports every figure the docs quote."""

from __future__ import annotations

import asyncio
import math
import random

from bench import state as bench_state
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState

FIGURES = {
    "evaluate_cpu_s", "evaluate_wall_s", "evaluate_max_stall_ms", "evaluate_core_share_at_10s",
    "checkpoint_snapshot_cpu_s", "checkpoint_write_cpu_s", "checkpoint_write_wall_s",
    "checkpoint_max_stall_ms", "checkpoint_core_share", "checkpoint_bytes", "checkpoint_bytes_per_probe",
    "restore_wall_s",
}


def test_measurement_at_a_tiny_size_reports_every_figure() -> None:
    result = asyncio.run(bench_state.measure(probes=200, slos=20, interval=30.0))
    assert (result["probes"], result["slos"]) == (200, 20)
    assert result.keys() >= FIGURES
    for key in FIGURES:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, (key, value)
    assert isinstance(result["checkpoint_bytes"], int) and result["checkpoint_bytes"] > 0


def test_fill_writes_the_rows_each_tier_keeps() -> None:
    """A probe without a latency threshold keeps two rows, one with a threshold three."""
    cfg = parse_config(
        "probes:\n"
        "  - {name: plain, type: tcp, target: '127.0.0.1:1', interval: 30s}\n"
        "  - {name: timed, type: tcp, target: '127.0.0.1:1', interval: 30s, latency_threshold: 1s}\n",
        "bench.yaml", {})
    states = {s.name: ProbeState.new(s) for s in cfg.probes}
    rows = {name: (st.ring.minutes.rows_kept, st.ring.hours.rows_kept) for name, st in states.items()}
    assert rows == {"plain": (2, 2), "timed": (3, 3)}
    for st in states.values():
        bench_state.fill(st, 1_800_000_000.0, random.Random(1))
        for tier in (st.ring.minutes, st.ring.hours):
            assert len(tier.block) == tier.rows_kept * tier.size
            assert tier.block[0] > 0
