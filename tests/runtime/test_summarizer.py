"""The percentile summarizer keeps exactly what /metrics exports fresh, and recomputes a probe only
when a sample entered or left one of those windows.

Time stands still for the scheduler (no attempt runs); the rings are filled by hand with samples
at real wall times, since the summarizer judges freshness by `time.time()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from probed.config.model import MetricsSettings
from probed.runtime import daemon
from probed.runtime.daemon import Daemon
from probed.runtime.ring import ProbeRing
from probed.runtime.windows import PERCENTILE_WINDOWS, exported_percentile_windows
from tests.peers.clocks import StillClock

PROBES = 5


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], AsyncIterator[Daemon]]:
    monkeypatch.setattr(daemon, "SUMMARY_REFRESH_S", 0.01)

    async def running(metrics: str) -> AsyncIterator[Daemon]:
        config = tmp_path / "probes.yaml"
        probes = "".join(f"  - {{name: p{i}, type: tcp, target: '127.0.0.1:9'}}\n" for i in range(PROBES))
        config.write_text(f"metrics: {metrics}\ndefaults: {{interval: 10s, timeout: 1s}}\nprobes:\n{probes}")
        d = Daemon(str(config), clock=StillClock())
        await d.start()
        try:
            yield d
        finally:
            await d.shutdown()
    return running


def fill(ring: ProbeRing) -> None:
    """A sample every 10 s for the last 20 minutes, the newest 5 s ago."""
    now = time.time()
    for k in range(120, 0, -1):
        ring.record(now - 5 - 10 * (k - 1), 0.001 * k, 0)


async def passes(d: Daemon, n: int) -> None:
    """Let the summarizer make at least `n` more passes (it sleeps between them)."""
    for _ in range(n):
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("metrics", "windows"), [
    ("{profile: standard}", {300.0}),
    ("{profile: standard, percentiles: true}", {60.0, 300.0, 3600.0}),
    ("{profile: full}", {60.0, 300.0, 3600.0}),
    ("{profile: blackbox}", set()),
])
async def test_only_the_exported_windows_are_computed(start: Callable[[str], AsyncIterator[Daemon]],
                                                      metrics: str, windows: set[float]) -> None:
    async for d in start(metrics):
        for state in d.states.values():
            fill(state.ring)
        await passes(d, 5)
        for state in d.states.values():
            assert set(state.percentiles.values) == windows


async def test_a_probe_is_recomputed_only_when_its_windows_change(
        start: Callable[[str], AsyncIterator[Daemon]], monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[float] = []
    original = ProbeRing.percentiles_until

    def counting(self: ProbeRing, now: float, *args: object) -> object:
        computed.append(now)
        return original(self, now, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ProbeRing, "percentiles_until", counting)
    async for d in start("{profile: standard}"):
        for state in d.states.values():
            fill(state.ring)
        await passes(d, 3)
        assert len(computed) == PROBES  # once each: nothing entered or left the 5m window since
        state = d.states["p0"]
        state.ring.record(time.time(), 0.5, 0)  # a new attempt of one probe
        await passes(d, 3)
        assert len(computed) == PROBES + 1
        assert state.percentiles.values[300.0] is not None
        # When the window's oldest sample is due to leave, the next pass recomputes it.
        state.percentiles.valid_until = time.time()
        await passes(d, 3)
        assert len(computed) == PROBES + 2


def test_the_standard_profile_exports_p50_and_p99_over_the_lean_window() -> None:
    from probed.output import catalog

    lean = exported_percentile_windows(MetricsSettings())
    assert {label for label, _ in lean} == set(catalog.LEAN_QUANTILES)
    assert exported_percentile_windows(MetricsSettings(profile="full")) == PERCENTILE_WINDOWS
