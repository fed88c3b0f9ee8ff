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
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed.config.model import Config
from probed.result import ProbeResult, Reason
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState
from probed.slo import checkpoint
from probed.slo.engine import SloEngine
from tests.peers.net import free_port

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


def start(config_path: Path, state: Path | None, port: int, interval: float = 0.5,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`probed run` as its own process; `state` None: no --state-dir flag (the environment's)."""
    log = config_path.with_name(f"probed-{port}.log")
    state_flag = [] if state is None else ["--state-dir", str(state)]
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "probed", "run", "--config", str(config_path), "--listen",
                                 f"127.0.0.1:{port}", *state_flag, "--checkpoint-interval", str(interval)],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    raise AssertionError("probed did not start listening")


def slo_api(port: int, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/slos/{name}", timeout=5) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


async def wait_for_failures(port: int, failures: int, bad: int) -> dict[str, float]:
    """Scrapes until the probe has failed `failures` times and its SLO counted `bad` bad events."""
    deadline = time.monotonic() + 30
    while True:
        metrics = await asyncio.to_thread(scrape, port)
        if value(metrics, "probed_probes_total", result="failure") >= failures and \
                value(metrics, "probed_slo_events_total", result="bad") >= bad:
            return metrics
        assert time.monotonic() < deadline, "the probe did not fail often enough in 30 s"
        await asyncio.sleep(0.2)


def always_down(tmp_path: Path) -> Path:
    config_path = tmp_path / "probes.yaml"
    config_path.write_text(f"""
probes:
  - {{name: down, type: tcp, target: "127.0.0.1:{free_port()}", interval: 100ms, timeout: 50ms}}
slos:
  - {{name: down-availability, probes: [down], objective: 99}}
""")
    return config_path


async def test_probed_run_checkpoints_at_shutdown_into_probed_state_dir(tmp_path: Path) -> None:
    """No --state-dir flag: PROBED_STATE_DIR says where. No periodic checkpoint in the test's
    time (an hour's interval): what the restart finds was written at SIGTERM."""
    config_path, state = always_down(tmp_path), tmp_path / "from-env"
    env = {**os.environ, "PROBED_STATE_DIR": str(state)}
    port = free_port()
    proc = start(config_path, None, port, interval=3600, env=env)
    try:
        before = await wait_for_failures(port, 20, 10)
        assert not list(state.glob("*.ckpt"))  # nothing written yet: the interval has not passed
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    assert [p.suffix for p in state.glob("probed-*.ckpt")] == [".ckpt"]

    port = free_port()
    proc = start(config_path, None, port, interval=3600, env=env)
    try:
        after = await asyncio.to_thread(scrape, port)
        slo = await asyncio.to_thread(slo_api, port, "down-availability")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    failures = value(before, "probed_probes_total", result="failure")
    assert value(after, "probed_probes_total", result="failure") >= failures
    assert value(after, "probed_slo_events_total", result="bad") >= value(
        before, "probed_slo_events_total", result="bad")
    assert slo["windows"]["30d"]["bad"] >= failures  # the budget's window holds the attempts from before


async def test_kill_9_mid_run_loses_at_most_one_checkpoint_interval(tmp_path: Path) -> None:
    config_path, state = always_down(tmp_path), tmp_path / "state"
    port = free_port()
    proc = start(config_path, state, port)
    try:
        before = await wait_for_failures(port, 30, 10)
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
        slo = await asyncio.to_thread(slo_api, port, "down-availability")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert value(after, "probed_probes_total", result="failure") >= failures
    # The SLO continues: its event counters and the attempts its budget is computed from are the
    # ones from before the kill, not a fresh count.
    assert value(after, "probed_slo_events_total", result="bad") >= bad
    assert slo["windows"]["30d"]["bad"] >= failures and slo["windows"]["30d"]["total"] >= failures
    assert slo["budget_remaining_ratio"] is not None and slo["budget_remaining_ratio"] < 0
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


async def test_the_last_known_certificate_expiry_survives_failures_and_a_restart(tmp_path: Path) -> None:
    cfg = config('probes:\n  - {name: site, type: tls, target: "127.0.0.1:9", interval: 10s}\n')
    (state,) = (ProbeState.new(s) for s in cfg.probes)
    expiry = NOW + 20 * 86400
    state.record(ProbeResult.ok(duration_s=0.01, values={"cert_expiry_timestamp_seconds": expiry,
                                                         "cert_days_remaining": 20.0}), ts=NOW - 20)
    state.record(ProbeResult.fail(Reason.TIMEOUT, "no handshake within 1s"), ts=NOW - 10)  # no certificate seen
    assert state.last is not None and "cert_expiry_timestamp_seconds" not in state.last.values
    assert state.cert_expiry == expiry

    path = await saved(tmp_path, cfg, {"site": state}, SloEngine())
    restorer = checkpoint.load(path)
    assert restorer is not None
    (after,) = (ProbeState.new(s) for s in cfg.probes)
    assert restorer.restore_probe(after)
    assert after.cert_expiry == expiry and after.last is not None and not after.last.success
