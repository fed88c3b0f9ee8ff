"""The scheduler alone at scale: start-up, memory, GC-tracked objects, lateness and CPU.

    python -m bench.dispatch [--probes 100000] [--seconds 20] [--scheduler-from FILE]

Probes whose attempt returns at once (no I/O: what is measured is the scheduler's own cost), at
intervals of 10, 15, 30 and 60 s, on uvloop pinned to one core, started as the daemon starts
them: collection paused while they are built and started, then `collector.settle()`.

- `start_seconds`: every `start()` plus the loop's first pass over what they created.
- `gc_objects_per_probe`: objects the collector tracks per sleeping probe, beyond the probe's own
  state (what every full collection walked, before `settle()` froze the start-up ones).
- `gc_unfrozen_per_probe_end`: what full collections walk at the end, per probe (objects the
  scheduler keeps re-creating after `settle()` froze the rest); `gc_full_max_ms` the longest one.
- Lateness of every run over `--seconds` (not only the stats reservoir's most recent ones), and
  `cpu_pct`: the process's CPU over that window, in percent of one core. `gc_pause_max_ms`: the
  longest collection of any generation meanwhile.
- `waited_for_cpu_pct`: the share of the window the loop was ready but another process held the
  core. Lateness from a run where it is above a percent or so measures the neighbours.

`--scheduler-from FILE` takes the Scheduler from another file, to compare with an earlier one:
`git show HEAD~1:probed/runtime/scheduler.py > /tmp/old_scheduler.py`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import resource
import sys
import time
from array import array
from types import ModuleType
from typing import Any

from bench.scale import rss_mib
from bench.targets import pin_to_first_core
from probed.config.model import ProbeSpec
from probed.result import ProbeResult
from probed.runtime import collector, scheduler
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState

INTERVALS = (10.0, 15.0, 30.0, 60.0)
OK = ProbeResult.ok()


class InstantProbe:
    async def probe(self) -> ProbeResult:
        return OK

    async def aclose(self) -> None:
        pass


class RecordingStats(SchedulerStats):
    """The scheduler's stats, keeping every lateness too (the reservoir holds the last 8192)."""

    def __init__(self) -> None:
        super().__init__()
        self.all_lateness = array("d")

    def observe_lateness(self, lateness: float) -> None:
        super().observe_lateness(lateness)
        self.all_lateness.append(max(0.0, lateness))  # as the stats count it: early is on time


class GcPauses:
    """Times CPython's collections through gc.callbacks, full (generation 2) ones apart."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.full: list[float] = []
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        pause = time.perf_counter() - self._t0
        self.pauses.append(pause)
        if info["generation"] == 2:
            self.full.append(pause)


def waited_for_cpu_s() -> float:
    """Time this thread was ready to run but another process had the core (/proc schedstat): on a
    shared machine, lateness that is not the scheduler's own."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def load_scheduler(path: str | None) -> ModuleType:
    if path is None:
        return scheduler
    spec = importlib.util.spec_from_file_location("bench_scheduler_under_test", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def quantile(data: list[float], q: float) -> float:
    return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0


async def run(probes: int, seconds: float, module: ModuleType) -> dict[str, Any]:
    rss_before = rss_mib()
    with collector.paused():
        states = [ProbeState.new(ProbeSpec(name=f"probe-{i}", type="tcp", target="127.0.0.1:1",
                                           interval=INTERVALS[i % len(INTERVALS)], timeout=2.0, labels={},
                                           settings=None))
                  for i in range(probes)]
        instances = [InstantProbe() for _ in range(probes)]
        gc.collect()
        objects0 = len(gc.get_objects())
        t0 = time.perf_counter()
        sched = module.Scheduler(2000)
        stats = sched.stats = RecordingStats()
        for state, probe in zip(states, instances, strict=True):
            sched.start(state, probe)
        await asyncio.sleep(0)  # one task per probe (before) runs its first step: it goes to sleep
        start_s = time.perf_counter() - t0
        await asyncio.sleep(0.2)
        gc.collect()
        per_probe = (len(gc.get_objects()) - objects0) / probes
    collector.settle()
    unfrozen0 = len(gc.get_objects())
    await asyncio.sleep(1.0)  # runs due while settle() held the loop start late: not the steady state
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    try:
        del stats.all_lateness[:]
        runs0 = stats.runs_total
        skipped0 = dict(stats.skipped)
        c0, w0, q0 = time.process_time(), time.perf_counter(), waited_for_cpu_s()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0)
        waited = (waited_for_cpu_s() - q0) / (time.perf_counter() - w0)
        lateness = sorted(stats.all_lateness)
        skipped = {cause: n - skipped0[cause] for cause, n in stats.skipped.items()}
        runs = stats.runs_total - runs0
    finally:
        gc.callbacks.remove(gc_pauses)
    gc.collect()
    unfrozen_end = len(gc.get_objects())
    rss = rss_mib()
    await sched.shutdown(0)
    return {
        "scheduler": module.__file__,
        "probes": probes,
        "start_seconds": round(start_s, 3),
        "rss_mib": round(rss, 1),
        "rss_growth_mib": round(rss - rss_before, 1),
        "gc_objects_per_probe": round(per_probe, 2),
        "gc_unfrozen_per_probe_end": round((unfrozen_end - unfrozen0) / probes, 2),
        "gc_collections": len(gc_pauses.pauses),
        "gc_pause_max_ms": round(max(gc_pauses.pauses, default=0.0) * 1000, 2),
        "gc_full_collections": len(gc_pauses.full),
        "gc_full_max_ms": round(max(gc_pauses.full, default=0.0) * 1000, 2),
        "runs": runs,
        "runs_per_second": round(runs / seconds),
        "skipped": skipped,
        "lateness_p50_ms": round(quantile(lateness, 0.5) * 1000, 3),
        "lateness_p99_ms": round(quantile(lateness, 0.99) * 1000, 3),
        "lateness_max_ms": round(lateness[-1] * 1000 if lateness else 0.0, 3),
        "cpu_pct": round(cpu * 100, 1),
        "waited_for_cpu_pct": round(waited * 100, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=20.0, help="measuring period after start-up")
    p.add_argument("--scheduler-from", metavar="FILE", help="load the Scheduler from this file instead")
    args = p.parse_args(argv)
    import uvloop

    pin_to_first_core()
    result = uvloop.run(run(args.probes, args.seconds, load_scheduler(args.scheduler_from)))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
