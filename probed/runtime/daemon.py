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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from probed.config.model import Config, MetricsSettings, ProbeSpec
from probed.config.schema import ConfigError
from probed.runtime import collector
from probed.runtime.clock import Clock
from probed.runtime.probeset import ProbeSet, load_config
from probed.runtime.scheduler import Scheduler
from probed.runtime.shard import UNSHARDED, Shard
from probed.runtime.slicing import Slices
from probed.runtime.state import ProbeState
from probed.runtime.windows import exported_percentile_windows

log = logging.getLogger("probed.daemon")

SUMMARY_REFRESH_S = 5.0


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool
    last_success_ts: float


@dataclass
class ReloadOutcome:
    ok: bool
    errors: list[str]
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0


class Daemon:
    def __init__(self, config_path: str, clock: Clock | None = None,
                 on_new_state: Callable[[ProbeState], object] | None = None, shard: Shard | None = None) -> None:
        self.config_path = config_path
        self.shard = shard if shard is not None else UNSHARDED
        """Which part of the config this process runs (all of it unless sharded)."""
        self.probes_in_file = 0
        """Probes in the whole file, every shard's."""
        self._on_new_state = on_new_state
        """Called with each state made fresh, before its probe first runs (restores history)."""
        self.config: Config | None = None
        self.states: dict[str, ProbeState] = {}
        self.probes = ProbeSet()
        self.scheduler: Scheduler | None = None
        self._clock = clock
        self.reload_status = ReloadStatus(successful=False, last_success_ts=0.0)
        self._reload_lock = asyncio.Lock()
        self._summarizer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.ready = False

    # ---- start / stop
    async def start(self, config: Config | None = None) -> None:
        """Load the config (raising ConfigError if invalid) and start every probe."""
        config = self._select(config) if config is not None else await asyncio.to_thread(self._load)
        self.scheduler = Scheduler(config.scheduler.max_concurrency, self._clock)
        self.scheduler.start_lag_monitor()
        with collector.paused():  # see probed/heap.py: one collection at the end, not dozens meanwhile
            await self._apply(config)
            await self.probes.ready()
        self.reload_status = ReloadStatus(True, time.time())
        self._summarizer = asyncio.create_task(self._summarize(), name="summarizer")
        self._sweeper = asyncio.create_task(collector.sweep(), name="gc-sweeper")
        collector.settle()
        self.ready = True
        log.info("probed started with %d probes from %s", len(self.states), config.path)

    def _load(self) -> Config:
        """The config file, cut down to this shard's part."""
        return self._select(load_config(self.config_path))

    def _select(self, config: Config) -> Config:
        self.probes_in_file = len(config.probes)
        return self.shard.select(config)

    async def shutdown(self) -> None:
        self.ready = False
        grace = self.config.scheduler.shutdown_grace if self.config else 5.0
        for task in (self._summarizer, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.scheduler is not None:
            await self.scheduler.shutdown(grace)
        await self.probes.aclose()
        log.info("probed stopped")

    # ---- reload
    async def reload(self) -> ReloadOutcome:
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(self._load)
            except ConfigError as exc:
                return self._failed([str(i) for i in exc.issues])
            except Exception as exc:  # a reload never dies: SIGHUP has nobody to raise to
                # Not a config problem but a bug of ours: still a failed reload (400, the flag at 0), never a
                # 500 or "Task exception was never retrieved"; the traceback goes to the debug log only,
                # since its text may quote the file.
                log.debug("reload: loading %s raised", self.config_path, exc_info=True)
                return self._failed([f"{self.config_path}: internal error while loading the config "
                                     f"({type(exc).__name__}): please report it"])
            with collector.paused():
                outcome = await self._apply(config)
                await self.probes.ready()
            collector.settle()
            self.reload_status = ReloadStatus(True, time.time())
            log.info("reloaded %s: %d added, %d removed, %d changed, %d unchanged", config.path,
                     outcome.added, outcome.removed, outcome.changed, outcome.unchanged)
            return outcome

    def _failed(self, errors: list[str]) -> ReloadOutcome:
        self.reload_status = ReloadStatus(False, self.reload_status.last_success_ts)
        log.error("reload failed, keeping the running config: %s", "; ".join(errors))
        return ReloadOutcome(False, errors)

    async def _apply(self, config: Config) -> ReloadOutcome:
        assert self.scheduler is not None
        old_specs: Mapping[str, ProbeSpec] = {s.name: s for s in self.config.probes} if self.config else {}
        new_specs = {s.name: s for s in config.probes}
        outcome = ReloadOutcome(True, [])

        # A probe restarts when its own spec changed, its own secrets included (the fingerprint covers
        # them): another probe's new header or password is no reason to restart it. Unchanged probes
        # adopt the file's new secrets below, which is where their output is redacted.
        stale = [n for n in old_specs if n not in new_specs or old_specs[n].fingerprint != new_specs[n].fingerprint]
        for name in stale:
            await self.scheduler.stop(name)
            await self.probes.remove(name)
            if name not in new_specs:
                del self.states[name]
                outcome.removed += 1
        self.scheduler.resize(config.scheduler.max_concurrency)

        for name, spec in new_specs.items():
            if name in self.probes:
                outcome.unchanged += 1
                self.states[name].adopt(spec, config.secrets)  # e.g. static labels changed
                continue
            state = self.states.get(name)
            if state is not None and _ring_compatible(state.spec, spec):
                state.adopt(spec, config.secrets)
                outcome.changed += 1
            else:
                state = self.states[name] = ProbeState.new(spec, config.secrets)
                if self._on_new_state is not None:
                    self._on_new_state(state)
                outcome.added += 1 if name not in old_specs else 0
                outcome.changed += 1 if name in old_specs else 0
            self.scheduler.start(state, self.probes.build(spec, config.secrets))

        await self.probes.close_unused_shared({s.type for s in config.probes})
        self.config = config
        return outcome

    # ---- reading
    @property
    def static_labels(self) -> Mapping[str, str]:
        return self.config.labels if self.config else {}

    async def _summarize(self) -> None:
        """Keep the percentiles /metrics exports fresh in small slices, off the scrape path: a
        probe's are recomputed only when a sample entered or left one of those windows, and only
        for those windows (the API computes the others on demand)."""
        while True:
            await asyncio.sleep(SUMMARY_REFRESH_S)
            windows = exported_percentile_windows(self.config.metrics if self.config else MetricsSettings())
            if not windows:
                continue
            slices = Slices()
            for state in list(self.states.values()):
                now = time.time()
                if not state.percentiles_fresh(windows, now):
                    state.refresh_percentiles(windows, now)
                if slices.due():  # also between fresh ones: 100,000 checks are a stall too
                    await slices.pause()


def _ring_compatible(old: ProbeSpec, new: ProbeSpec) -> bool:
    """History stays meaningful when the probe still measures the same thing at the same rate."""
    return (old.type, old.target, old.interval) == (new.type, new.target, new.interval)
