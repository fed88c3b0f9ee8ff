"""Checkpoints: history and budgets survive restarts, a bad file never stops probed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed.config.model import Config
from probed.result import ProbeResult, Reason
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState
from probed.slo import checkpoint
from probed.slo.engine import SloEngine
from tests.peers.db import free_port

NOW = 1_779_998_400.0  # 2026-05-28 20:00 UTC: on an hour boundary, so bucket counts are easy to reason about
CONFIG = """
probes:
  - {name: api, type: tcp, target: "127.0.0.1:9", interval: 10s}
  - {name: db, type: tcp, target: "127.0.0.1:5432", interval: 10s}
slos:
  - {name: api-availability, probes: [api], objective: 99}
  - {name: api-minutes, probes: [api], objective: 99, budgeting: timeslices, timeslice: {good_ratio: 0.9}}
"""


def config(text: str = CONFIG) -> Config:
    return parse_config(text, "test.yaml", {})


def history(cfg: Config, hours: float = 3.0) -> dict[str, ProbeState]:
    """Every 10 s for `hours` up to NOW: api fails one attempt in ten, db never."""
    states = {s.name: ProbeState.new(s) for s in cfg.probes}
    steps = int(hours * 360)
    for i in range(steps):
        ts = NOW - (steps - i) * 10
        states["api"].record(ProbeResult.fail(Reason.TIMEOUT, "slow") if i % 10 == 0
                             else ProbeResult.ok(duration_s=0.01), ts=ts)
        states["db"].record(ProbeResult.ok(duration_s=0.002), ts=ts)
    return states


def evaluated(cfg: Config, states: dict[str, ProbeState], now: float = NOW) -> SloEngine:
    engine = SloEngine()
    engine.configure(cfg.slos)
    for spec in cfg.slos:
        engine.evaluate(spec, states, now)
    return engine


async def saved(tmp_path: Path, cfg: Config, states: dict[str, ProbeState], engine: SloEngine) -> Path:
    path = tmp_path / "state.ckpt"
    await checkpoint.Checkpointer(path).save(states, engine)
    return path


async def test_history_and_slo_state_come_back_after_a_restart(tmp_path: Path) -> None:
    cfg = config()
    before = history(cfg)
    engine = evaluated(cfg, before)
    path = await saved(tmp_path, cfg, before, engine)

    restorer = checkpoint.load(path)
    assert restorer is not None
    after = {s.name: ProbeState.new(s) for s in cfg.probes}
    assert all(restorer.restore_probe(state) for state in after.values())
    fresh = SloEngine()
    restorer.restore_slos(fresh)
    fresh.configure(cfg.slos)

    for name in ("api", "db"):
        old, new = before[name], after[name]
        for window in (300, 3600, 6 * 3600, 86400, 30 * 86400):
            assert new.ring.window_counts(NOW, window) == old.ring.window_counts(NOW, window), (name, window)
        assert (new.ring.successes_total, new.ring.failures_total, new.ring.fast_total) == (
            old.ring.successes_total, old.ring.failures_total, old.ring.fast_total)
        assert list(new.ring.hist_counts) == list(old.ring.hist_counts)
        assert new.last == old.last and new.last_ts == old.last_ts
        assert new.last_failure == old.last_failure and new.last_failure_ts == old.last_failure_ts
    assert after["api"].failures_by_reason == {Reason.TIMEOUT: 108}
    for spec in cfg.slos:
        again = fresh.evaluate(spec, after, NOW)
        first = engine.reports[spec.name]
        assert again.windows == first.windows and again.budget_remaining == first.budget_remaining
        assert again.events == first.events, spec.name
    assert fresh.ledgers["api-minutes"].good_total + fresh.ledgers["api-minutes"].bad_total == 180


async def test_the_time_probed_was_down_is_no_data(tmp_path: Path) -> None:
    cfg = config()
    states = history(cfg, hours=2)
    path = await saved(tmp_path, cfg, states, evaluated(cfg, states))
    restorer = checkpoint.load(path)
    assert restorer is not None
    after = {s.name: ProbeState.new(s) for s in cfg.probes}
    for state in after.values():
        restorer.restore_probe(state)
    # Down for two hours, then one more hour of attempts.
    restart = NOW + 2 * 3600
    for i in range(360):
        after["api"].record(ProbeResult.ok(duration_s=0.01), ts=restart + i * 10)
    later = restart + 3600
    report = SloEngine().evaluate(cfg.slos[0], after, later)
    assert report.windows["6h"].total == 2 * 360 + 360  # the gap added nothing, good or bad
    assert report.windows["1h"].bad == 0
    # Of the 30-day window's hours, the ones with data: 2 before the gap, 1 after (+ the edge).
    assert report.coverage == pytest.approx(3 / 720, abs=1.5 / 720)


async def test_a_probe_that_changed_type_target_or_interval_starts_clean_and_only_it(tmp_path: Path) -> None:
    cfg = config()
    states = history(cfg)
    path = await saved(tmp_path, cfg, states, evaluated(cfg, states))
    changed = config(CONFIG.replace('"127.0.0.1:5432"', '"127.0.0.1:5433"'))
    restorer = checkpoint.load(path)
    assert restorer is not None
    after = {s.name: ProbeState.new(s) for s in changed.probes}
    assert restorer.restore_probe(after["api"]) is True
    assert restorer.restore_probe(after["db"]) is False
    assert after["db"].ring.successes_total == 0 and after["db"].last is None
    assert after["api"].ring.failures_total == 108


@pytest.mark.parametrize("damage", ["garbage", "truncated", "future-version", "empty", "bad-header"])
async def test_an_unusable_state_file_is_set_aside_with_a_warning(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config()
    states = history(cfg, hours=1)
    path = await saved(tmp_path, cfg, states, evaluated(cfg, states))
    data = path.read_bytes()
    path.write_bytes({
        "garbage": os.urandom(len(data)),
        "truncated": data[: len(data) * 2 // 3],
        "future-version": data[:8] + (99).to_bytes(4, "little") + data[12:],
        "empty": b"",
        "bad-header": data[:16] + b"\xff" + data[17:],
    }[damage])
    with caplog.at_level(logging.WARNING, logger="probed.checkpoint"):
        assert checkpoint.load(path) is None
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert str(path) in caplog.text and "starting without history" in caplog.text


async def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config()
    states = history(cfg, hours=1)
    engine = evaluated(cfg, states)
    path = await saved(tmp_path, cfg, states, engine)
    good = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    states["api"].record(ProbeResult.ok(duration_s=0.01), ts=NOW)
    monkeypatch.setattr(os, "replace", crash)
    await checkpoint.Checkpointer(path).save(states, engine)  # logs, does not raise
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert checkpoint.load(path) is not None


async def test_a_second_probed_on_the_same_state_file_runs_without_one(tmp_path: Path) -> None:
    first = await checkpoint.Store.open(str(tmp_path), "probes.yaml")
    second = await checkpoint.Store.open(str(tmp_path), "probes.yaml")
    other = await checkpoint.Store.open(str(tmp_path), "other.yaml")
    try:
        assert first.checkpointer is not None and other.checkpointer is not None
        assert second.checkpointer is None
    finally:
        for store in (first, second, other):
            store.close()


# --------------------------------------------------------------------------- a real process, kill -9


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + json.dumps(dict(sorted(s.labels.items())))
            out[key] = s.value
    return out


def value(metrics: dict[str, float], name: str, **labels: str) -> float:
    found = [v for k, v in metrics.items() if k.startswith(name + "{") and all(
        f'"{lk}": "{lv}"' in k for lk, lv in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def start(config_path: Path, state: Path, port: int) -> subprocess.Popen[bytes]:
    log = config_path.with_name(f"probed-{port}.log")
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "probed", "run", "--config", str(config_path), "--listen",
                                 f"127.0.0.1:{port}", "--state-dir", str(state), "--checkpoint-interval", "0.5"],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    raise AssertionError("probed did not start listening")


async def test_kill_9_mid_run_loses_at_most_one_checkpoint_interval(tmp_path: Path) -> None:
    closed = free_port()
    config_path = tmp_path / "probes.yaml"
    config_path.write_text(f"""
probes:
  - {{name: down, type: tcp, target: "127.0.0.1:{closed}", interval: 100ms, timeout: 50ms}}
slos:
  - {{name: down-availability, probes: [down], objective: 99}}
""")
    state = tmp_path / "state"
    port = free_port()
    proc = start(config_path, state, port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            before = await asyncio.to_thread(scrape, port)
            if value(before, "probed_probes_total", result="failure") >= 30 and \
                    value(before, "probed_slo_events_total", result="bad") >= 10:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.7)  # at least one checkpoint after the scrape
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    failures, bad = value(before, "probed_probes_total", result="failure"), value(
        before, "probed_slo_events_total", result="bad")
    port = free_port()
    proc = start(config_path, state, port)
    try:
        after = await asyncio.to_thread(scrape, port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert value(after, "probed_probes_total", result="failure") >= failures
    assert value(after, "probed_slo_events_total", result="bad") >= bad
    assert proc.returncode == 0


def test_counters_restore_across_a_change_of_width() -> None:
    from array import array

    from probed.runtime.ring import Buckets

    narrow = Buckets(4, 60, "B")
    checkpoint._fill(narrow, array("H", [1, 300, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 3)
    assert list(narrow.block) == [1, 255, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    wide = Buckets(4, 60, "H")
    checkpoint._fill(wide, array("B", [7] * 12), 3)
    assert list(wide.block) == [7] * 12


@pytest.mark.parametrize(("saved_threshold", "restored_threshold"), [(None, "50ms"), ("50ms", None)])
async def test_history_carries_over_when_a_probe_gains_or_loses_its_latency_threshold(
        tmp_path: Path, saved_threshold: str | None, restored_threshold: str | None) -> None:
    def with_threshold(threshold: str | None) -> Config:
        extra = "" if threshold is None else f", latency_threshold: {threshold}"
        return config(f'probes:\n  - {{name: api, type: tcp, target: "127.0.0.1:9", interval: 10s{extra}}}\n'
                      '  - {name: db, type: tcp, target: "127.0.0.1:5432", interval: 10s}\n')

    before = history(with_threshold(saved_threshold))  # every success within 10 ms: all fast either way
    path = await saved(tmp_path, with_threshold(saved_threshold), before, SloEngine())
    restorer = checkpoint.load(path)
    assert restorer is not None
    after = ProbeState.new(with_threshold(restored_threshold).probes[0])
    assert restorer.restore_probe(after)

    for window in (300.0, 3600.0, 86400.0):
        assert after.ring.window_counts(NOW, window) == before["api"].ring.window_counts(NOW, window)
