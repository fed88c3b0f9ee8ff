"""Reloads in a loop against a real Daemon: memory stays flat, only changed probes restart, and no
input to a reload makes it raise.

Time stands still (a clock whose sleeps never end), so no attempt runs and nothing here depends on
timing: what is measured is what a reload itself keeps or replaces.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from probed.result import ProbeResult, Reason
from probed.runtime import collector, daemon
from probed.runtime.daemon import Daemon
from tests.peers.clocks import StillClock

PROBES = 300
RELOADS = 60


def write(path: Path, flip: int, token_var: str = "PROBED_RELOAD_TOKEN") -> None:
    """PROBES http probes; probe 0 has a literal header that `flip` changes, probe 1 a `${VAR}` one."""
    lines = ["defaults: {interval: 1h, timeout: 1s}", "probes:"]
    for i in range(PROBES):
        lines.append(f"  - name: p{i}")
        lines.append("    type: http")
        lines.append(f"    target: http://127.0.0.1:9/{i}")
        if i == 0:
            lines.append(f'    http: {{headers: {{X-Flip: "literal-{flip}"}}}}')
        elif i == 1:
            lines.append(f'    http: {{headers: {{Authorization: "Bearer ${{{token_var}}}"}}}}')
        else:
            lines.append(f'    http: {{headers: {{X-Static: "static-{i}"}}}}')
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Daemon, Path]]:
    monkeypatch.setenv("PROBED_RELOAD_TOKEN", "token-value-1")
    config = tmp_path / "probes.yaml"
    write(config, 0)
    d = Daemon(str(config), clock=StillClock())
    await d.start()
    try:
        yield d, config
    finally:
        await d.shutdown()


async def test_reloads_keep_memory_flat(running: tuple[Daemon, Path]) -> None:
    d, config = running
    for flip in range(1, 6):  # warm up: caches, interned strings, the first settle
        write(config, flip)
        assert (await d.reload()).ok
    frozen, objects = gc.get_freeze_count(), gc.get_freeze_count() + len(gc.get_objects())
    for flip in range(6, 6 + RELOADS):
        write(config, flip)
        assert (await d.reload()).ok
    # Before the fix every reload froze the probe it replaced for good (about 15 objects each
    # here; all PROBES probes' worth when every probe restarted): 900 and more after 60 reloads.
    assert gc.get_freeze_count() - frozen <= 200, (frozen, gc.get_freeze_count())
    assert gc.get_freeze_count() + len(gc.get_objects()) - objects <= 200


async def test_a_changed_header_restarts_only_its_probe(running: tuple[Daemon, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    d, config = running
    before = {name: d.probes[name] for name in d.states}
    write(config, 1)  # probe 0's literal header (a secret: header values are) changes
    outcome = await d.reload()
    assert (outcome.changed, outcome.unchanged, outcome.added, outcome.removed) == (1, PROBES - 1, 0, 0)
    assert d.probes["p0"] is not before["p0"]
    assert all(d.probes[n] is before[n] for n in before if n != "p0")

    # A new value of the variable probe 1 uses restarts probe 1, and only it.
    monkeypatch.setenv("PROBED_RELOAD_TOKEN", "token-value-2")
    outcome = await d.reload()
    assert (outcome.changed, outcome.unchanged) == (1, PROBES - 1)
    assert d.probes["p1"] is not before["p1"]
    assert all(d.probes[n] is before[n] for n in before if n not in ("p0", "p1"))
    # Every probe's output is redacted with the new secret (and still the old ones it knows).
    assert all("token-value-2" in state.secrets for state in d.states.values())

    # Nothing changed: nothing restarts.
    outcome = await d.reload()
    assert (outcome.changed, outcome.unchanged) == (0, PROBES)


async def test_a_password_kept_out_of_repr_still_restarts_its_probe(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "probes.yaml"
    text = ('probes:\n'
            '  - {name: db, type: postgres, target: "postgres://app@127.0.0.1:9/app", interval: 1h,\n'
            '     postgres: {password: "${PROBED_RELOAD_PW}"}}\n'
            '  - {name: web, type: http, target: "http://127.0.0.1:9/", interval: 1h}\n')
    config.write_text(text)
    monkeypatch.setenv("PROBED_RELOAD_PW", "first-password")
    d = Daemon(str(config), clock=StillClock())
    await d.start()
    try:
        db, web = d.probes["db"], d.probes["web"]
        monkeypatch.setenv("PROBED_RELOAD_PW", "second-password")
        outcome = await d.reload()
        assert (outcome.changed, outcome.unchanged) == (1, 1)
        assert d.probes["db"] is not db and d.probes["web"] is web
    finally:
        await d.shutdown()


async def test_a_reload_that_changes_a_probe_type_drops_that_probes_history_only(tmp_path: Path) -> None:
    """Same name and target, another type: its buckets would mix two measurements (and feed its
    SLOs both), so the probe starts clean; the probe beside it keeps every count."""
    config = tmp_path / "probes.yaml"

    def write_types(first: str) -> None:
        config.write_text("probes:\n"
                          f'  - {{name: edge, type: {first}, target: "127.0.0.1:9", interval: 1m}}\n'
                          '  - {name: core, type: tcp, target: "127.0.0.1:9", interval: 1m}\n')

    write_types("tcp")
    d = Daemon(str(config), clock=StillClock())
    await d.start()
    try:
        now = 1_800_000_000.0
        for i in range(90):  # an hour and a half of history, one attempt a minute, every tenth failing
            result = ProbeResult(i % 10 != 0, Reason.OK if i % 10 else Reason.CONNECTION_REFUSED, 0.01)
            for name in ("edge", "core"):
                d.states[name].record(result, now - 5400 + 60 * i)
        core_before = (d.states["core"].ring.minutes.block.tobytes(), d.states["core"].ring.hours.block.tobytes())
        assert d.states["edge"].ring.successes_total == 81 and d.states["edge"].ring.failures_total == 9

        write_types("tls")  # edge: tcp -> tls, same target and interval
        outcome = await d.reload()
        assert outcome.ok and (outcome.changed, outcome.unchanged) == (1, 1)

        edge, core = d.states["edge"], d.states["core"]
        assert edge.spec.type == "tls"
        assert (edge.ring.successes_total, edge.ring.failures_total, edge.last, edge.failures_by_reason) == (
            0, 0, None, {})
        assert not any(edge.ring.minutes.block) and not any(edge.ring.hours.block)
        assert (core.ring.successes_total, core.ring.failures_total) == (81, 9)
        assert core.failures_by_reason == {Reason.CONNECTION_REFUSED: 9} and core.last is not None
        assert (core.ring.minutes.block.tobytes(), core.ring.hours.block.tobytes()) == core_before
    finally:
        await d.shutdown()


@pytest.mark.parametrize("content", [
    pytest.param(b'probes: [{name: a, type: http, target: "http://${PROBED_UNSET_VAR}/"}]\n', id="unset-in-url"),
    pytest.param(b"probes: [{name: a, type: [http], target: x}]\n", id="type-list"),
    pytest.param(b'probes: [{name: "\xff", type: tcp, target: "x:1"}]\n', id="invalid-utf8"),
    pytest.param(b"probes: [{name: a, type: tcp, target: \"x:1\", interval: " + b"9" * 400 + b"s}]\n",
                 id="interval-of-400-nines"),
])
async def test_a_bad_config_is_a_failed_reload_not_an_exception(running: tuple[Daemon, Path],
                                                                content: bytes) -> None:
    d, config = running
    config.write_bytes(content)
    outcome = await d.reload()
    assert not outcome.ok and outcome.errors
    assert all(e.startswith(f"{config}") for e in outcome.errors), outcome.errors
    assert not d.reload_status.successful
    assert len(d.states) == PROBES  # the running config stays


async def test_a_bug_while_loading_is_a_failed_reload(running: tuple[Daemon, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    d, _config = running

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(daemon, "load_config", broken)
    outcome = await d.reload()
    assert not outcome.ok and "internal error while loading the config (RuntimeError)" in outcome.errors[0]
    assert not d.reload_status.successful


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
async def test_a_config_that_is_not_a_file_fails_fast(running: tuple[Daemon, Path], tmp_path: Path,
                                                      kind: str) -> None:
    d, _config = running
    if kind == "fifo":
        path = tmp_path / "fifo.yaml"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "dir.yaml"
        path.mkdir()
    else:
        path = Path("/dev/zero")
    d.config_path = str(path)
    outcome = await asyncio.wait_for(d.reload(), 10)
    assert not outcome.ok and "is not a regular file" in outcome.errors[0]


def test_settle_thaws_what_an_earlier_settle_froze() -> None:
    class Cyclic:
        def __init__(self) -> None:
            self.me = self

    kept = [Cyclic() for _ in range(1000)]
    collector.settle()
    frozen = gc.get_freeze_count()
    del kept  # a reload replaced them: a cycle, frozen
    collector.settle()
    assert gc.get_freeze_count() <= frozen - 1000
