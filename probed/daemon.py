"""Lifecycle: build probes from a config, run them, reload, shut down.

The daemon owns the mutable world (states, probe instances, shared clients) and is the only
thing that changes it; everything else reads. A reload parses the whole new file first (off the
event loop) and changes nothing unless it is valid; then it stops removed probes, restarts
changed ones and starts added ones, keeping the history (rings) of every probe that survives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probed import heap
from probed.config import Config, ConfigError, ProbeSpec, load_config
from probed.exposition import DEFAULT_WINDOWS, ExpositionView, ReloadStatus, refresh_percentiles
from probed.probes import Probe, ProbeContext, get_kind
from probed.scheduler import Clock, Scheduler
from probed.state import ProbeState

log = logging.getLogger("probed.daemon")

SUMMARY_REFRESH_S = 5.0
SUMMARY_SLICE_S = 0.002  # yield to the loop after this much percentile work
SHARED_READY_S = 5.0


@dataclass
class ReloadOutcome:
    ok: bool
    errors: list[str]
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0


class Daemon:
    def __init__(self, config_path: str, clock: Clock | None = None) -> None:
        self.config_path = config_path
        self.config: Config | None = None
        self.states: dict[str, ProbeState] = {}
        self.probes: dict[str, Probe] = {}
        self.shared: dict[str, Any] = {}
        self.scheduler: Scheduler | None = None
        self._clock = clock
        self.reload_status = ReloadStatus(successful=False, last_success_ts=0.0)
        self._reload_lock = asyncio.Lock()
        self._summarizer: asyncio.Task[None] | None = None
        self.ready = False

    # ---- start / stop
    async def start(self, config: Config | None = None) -> None:
        """Load the config (raising ConfigError if invalid) and start every probe."""
        if config is None:
            config = await asyncio.to_thread(load_config, self.config_path)
        self.scheduler = Scheduler(config.scheduler.max_concurrency, self._clock)
        self.scheduler.start_lag_monitor()
        with heap.paused():  # see probed/heap.py: one collection at the end, not dozens meanwhile
            await self._apply(config)
            await self._shared_ready()
        self.reload_status = ReloadStatus(True, time.time())
        self._summarizer = asyncio.create_task(self._summarize(), name="summarizer")
        heap.settle()
        self.ready = True
        log.info("probed started with %d probes from %s", len(self.states), config.path)

    async def shutdown(self) -> None:
        self.ready = False
        grace = self.config.scheduler.shutdown_grace if self.config else 5.0
        if self._summarizer is not None:
            self._summarizer.cancel()
            await asyncio.gather(self._summarizer, return_exceptions=True)
        if self.scheduler is not None:
            await self.scheduler.shutdown(grace)
        await asyncio.gather(*(p.aclose() for p in self.probes.values()), return_exceptions=True)
        await self._close_shared(set(self.shared))
        self.probes.clear()
        log.info("probed stopped")

    # ---- reload
    async def reload(self) -> ReloadOutcome:
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.reload_status = ReloadStatus(False, self.reload_status.last_success_ts)
                errors = [str(i) for i in exc.issues]
                log.error("reload failed, keeping the running config: %s", "; ".join(errors))
                return ReloadOutcome(False, errors)
            with heap.paused():
                outcome = await self._apply(config)
                await self._shared_ready()
            heap.settle()
            self.reload_status = ReloadStatus(True, time.time())
            log.info("reloaded %s: %d added, %d removed, %d changed, %d unchanged", config.path,
                     outcome.added, outcome.removed, outcome.changed, outcome.unchanged)
            return outcome

    async def _apply(self, config: Config) -> ReloadOutcome:
        assert self.scheduler is not None
        old_specs: Mapping[str, ProbeSpec] = {s.name: s for s in self.config.probes} if self.config else {}
        new_specs = {s.name: s for s in config.probes}
        secrets_changed = self.config is not None and self.config.secrets != config.secrets
        outcome = ReloadOutcome(True, [])

        stale = [n for n in old_specs if n not in new_specs or
                 old_specs[n].fingerprint != new_specs[n].fingerprint or secrets_changed]
        for name in stale:
            await self.scheduler.stop(name)
            await self.probes.pop(name).aclose()
            if name not in new_specs:
                del self.states[name]
                outcome.removed += 1
        self.scheduler.resize(config.scheduler.max_concurrency)

        ctx = ProbeContext(secrets=config.secrets, shared=self.shared)
        for name, spec in new_specs.items():
            if name in self.probes:
                outcome.unchanged += 1
                self.states[name].adopt(spec, config.secrets)  # e.g. static labels changed
                continue
            kind = get_kind(spec.type)
            if kind.shared is not None and spec.type not in self.shared:
                self.shared[spec.type] = kind.shared()
            state = self.states.get(name)
            if state is not None and _ring_compatible(state.spec, spec):
                state.adopt(spec, config.secrets)
                outcome.changed += 1
            else:
                state = self.states[name] = ProbeState.new(spec, config.secrets)
                outcome.added += 1 if name not in old_specs else 0
                outcome.changed += 1 if name in old_specs else 0
            self.probes[name] = kind.factory(spec, ctx)
            self.scheduler.start(state, self.probes[name])

        await self._close_shared({k for k in self.shared if k not in {s.type for s in config.probes}})
        self.config = config
        return outcome

    async def _shared_ready(self) -> None:
        """Let shared resources finish building (AWS clients parse their API models) before the
        heap is frozen, so those long-lived objects are frozen too. Bounded: a slow AssumeRole
        must not hold start-up; what is still pending finishes in the background."""
        waits = [asyncio.ensure_future(obj.ready()) for obj in self.shared.values() if hasattr(obj, "ready")]
        if waits:
            await asyncio.wait(waits, timeout=SHARED_READY_S)

    async def _close_shared(self, kinds: set[str]) -> None:
        for kind in kinds:
            obj = self.shared.pop(kind)
            close = getattr(obj, "aclose", None)
            if close is not None:
                await close()

    # ---- reading
    def view(self) -> ExpositionView:
        assert self.scheduler is not None
        labels = self.config.labels if self.config else {}
        return ExpositionView(list(self.states.values()), labels, self.scheduler.stats, self.reload_status)

    async def _summarize(self) -> None:
        """Keep every probe's percentile cache fresh in small slices, off the scrape path."""
        # perf_counter, not loop.time(): uvloop's clock is cached per loop iteration and does not
        # advance inside one step, so slicing on it never yielded (a 150 ms stall at 10k probes).
        clock = time.perf_counter
        while True:
            await asyncio.sleep(SUMMARY_REFRESH_S)
            slice_end = clock() + SUMMARY_SLICE_S
            for state in list(self.states.values()):
                now = time.time()
                if state.percentiles.written == state.ring.written and now - state.percentiles.computed_at < 30:
                    continue
                refresh_percentiles(state, DEFAULT_WINDOWS, now)
                if clock() > slice_end:
                    await asyncio.sleep(0)
                    slice_end = clock() + SUMMARY_SLICE_S


def _ring_compatible(old: ProbeSpec, new: ProbeSpec) -> bool:
    """History stays meaningful when the probe still measures the same thing at the same rate."""
    return (old.type, old.target, old.interval) == (new.type, new.target, new.interval)
