"""Many probes in one process: ready time, memory, lateness idle and while scraped, scrape cost.

    python -m bench.scale [--probes 10000] [--rate 1000] [--seconds 30] [--scrape-every 5]
    python -m bench.scale --probes 100000 --rate 1000 --scrape-every 15
    python -m bench.scale --probes 10000 --rate 1000 --slos 1000

HTTP and TCP probes (3:1) against a local nginx (or aiohttp) on the other core, their intervals
`--probes / --rate` seconds, so that `--rate` probes start per second (phases spread evenly). The
daemon runs as in production, with its HTTP server, on the first core. After a warm-up long
enough for every probe to run once, it measures scheduler lateness with nobody scraping
(`--seconds`), then with a scraper process on the other core fetching /metrics every
`--scrape-every` seconds with `Accept-Encoding: gzip`, as Prometheus does (`--seconds` again).
One scrape before the idle period is measured apart (`first_scrape_*`): it renders every probe.

Prints one JSON line with the goal figures of docs/performance.md: `ready_seconds` (config read
to `/-/ready`), `rss_mib`, lateness p50/p99/max idle and scraped (every attempt's lateness, not a
sample), `scrape_wall_ms` (the scraper's wall time for one gzip body) and `scrape_cpu_ms` (the
daemon's CPU while it runs, which includes the probes that ran meanwhile), `render_cpu_ms` (one
render alone, every probe's cached lines dropped first), `render_cpu_ms_warm` (a second one right
after), `rss_mib_scraped` (after the scrapes, with every probe's lines cached), body bytes raw and
gzip, series per probe by type, the longest garbage-collector pass while scraped, and
`false_failures`: failed attempts against a healthy peer, by reason.

`--slos N` adds N SLOs over the probes (each over probes/N of them, every tenth with timeslice
budgeting) and runs the SLO engine as the daemon does, so lateness includes its evaluation passes.

`--trace` adds, idle and scraped: the CPU share, the share of time the loop's thread waited for a
CPU (another process had it), GC passes per generation, each SLO pass (wall, process CPU, the
engine's own time), lateness during SLO passes and outside, and the loop stalls over 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import gzip
import json
import os
import pstats
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.targets import free_port, http_target, other_core, pin_to_first_core
from probed.output import fragments
from probed.output.exposition import ExpositionView, render
from probed.output.web import make_app
from probed.runtime import slicing
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import load_config
from probed.runtime.scheduler import SchedulerStats
from probed.slo.engine import SloEngine

INTERVALS = ("10s", "15s", "30s", "60s")
# One scraper process for the whole run, started before the daemon grows: forking a process of
# a gigabyte to start one per scrape would itself hold the event loop (page tables are copied).
SCRAPER = """
import sys, time, urllib.request
for _ in sys.stdin:
    t = time.perf_counter()
    request = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
    n = len(urllib.request.urlopen(request, timeout=120).read())
    print(n, time.perf_counter() - t, flush=True)
"""
MAX_SECONDS = 600


def _on_other_core() -> None:
    core = other_core()
    if core:
        os.sched_setaffinity(0, core)


def intervals_for(probes: int, rate: float | None) -> tuple[str, ...]:
    """One interval that starts `rate` probes per second (the warm-up waits for the longest)."""
    if rate is None:
        return INTERVALS
    return (f"{max(1.0, probes / rate):.4g}s",)


def make_config(url: str, probes: int, intervals: tuple[str, ...] = INTERVALS, profile: str = "standard",
                slos: int = 0) -> str:
    hostport = url.split("/")[2]
    lines = ["labels: {location: bench}", "scheduler: {max_concurrency: 2000}", f"metrics: {{profile: {profile}}}",
             "probes:"]
    for i in range(probes):
        interval = intervals[i % len(intervals)]
        if i % 4 == 3:
            lines.append(f"  - {{name: tcp-{i}, type: tcp, target: '{hostport}', interval: {interval}, timeout: 2s}}")
        else:
            lines.append(f"  - {{name: http-{i}, type: http, target: '{url}?n={i}', interval: {interval}, "
                         "timeout: 2s, labels: {team: bench}}")
    if slos:
        per = max(1, probes // slos)
        lines.append("slos:")
        for j in range(slos):
            names = ", ".join(f"{'tcp' if n % 4 == 3 else 'http'}-{n}" for n in
                              ((j * per + k) % probes for k in range(per)))
            budgeting = ", budgeting: timeslices" if j % 10 == 0 else ""
            lines.append(f"  - {{name: slo-{j}, probes: [{names}], objective: 99.9{budgeting}}}")
    return "\n".join(lines) + "\n"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Lateness:
    """Every attempt's lateness while `on`: the scheduler's own reservoir holds only the last 8,192."""

    def __init__(self, stats: SchedulerStats) -> None:
        self.samples: list[float] = []
        self.started: list[float] = []
        self.on = False
        observe = stats.observe_lateness

        def observe_and_keep(lateness: float) -> None:
            observe(lateness)
            if self.on:
                self.samples.append(lateness)
                self.started.append(time.perf_counter())

        stats.observe_lateness = observe_and_keep  # type: ignore[method-assign]

    def take(self, passes: list[tuple[float, float, float, float]] | None = None) -> dict[str, Any]:
        """Quantiles of the lateness kept since the last take; with `passes` (`Trace.slo_passes`),
        also apart for the attempts that started during an SLO pass and for the others."""
        samples, started, self.samples, self.started = self.samples, self.started, [], []
        out = _quantiles(samples)
        if passes:
            during = [any(p <= t < p + w for p, w, _, _ in passes) for t in started]
            for key, want in (("in_slo_pass", True), ("outside_slo_pass", False)):
                out[key] = _quantiles([x for x, d in zip(samples, during, strict=True) if d is want])
        return out


def _quantiles(samples: list[float]) -> dict[str, Any]:
    data = sorted(samples)
    if not data:
        return {"n": 0}
    pick = lambda q: round(data[min(len(data) - 1, int(q * len(data)))] * 1000, 2)  # noqa: E731
    return {"n": len(data), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(data[-1] * 1000, 2)}


class GcPasses:
    """The longest garbage-collector pass while `on` (each one holds the event loop), and with
    `--trace` every pass: (start, seconds, generation, CPU seconds)."""

    def __init__(self) -> None:
        self.on = False
        self.longest = 0.0
        self.passes: list[tuple[float, float, int, float]] | None = None
        self._started = self._cpu = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._cpu = time.perf_counter(), time.thread_time()
            return
        took = time.perf_counter() - self._started
        if self.on:
            self.longest = max(self.longest, took)
        if self.passes is not None:
            self.passes.append((self._started, took, info["generation"], time.thread_time() - self._cpu))


class Trace:
    """`--trace`: where the loop's time goes. A 1 ms ticker keeps every stall over 5 ms (start,
    seconds); SLO passes are timed (start, wall, CPU); `summary()` relates them to GC passes."""

    def __init__(self, gc_passes: GcPasses) -> None:
        self.gc = gc_passes
        gc_passes.passes = []
        self.stalls: list[tuple[float, float]] = []
        self.slo_passes: list[tuple[float, float, float, float]] = []  # start, wall, CPU, engine's own
        self._evaluating = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            gap = time.perf_counter() - before - 0.001
            if gap > 0.005:
                self.stalls.append((before, gap))

    def time_slo_passes(self, engine: SloEngine) -> None:
        run_pass, evaluate = engine.run, engine.evaluate

        async def timed(*args: Any) -> None:
            w0, c0, self._evaluating = time.perf_counter(), time.process_time(), 0.0
            await run_pass(*args)
            self.slo_passes.append((w0, time.perf_counter() - w0, time.process_time() - c0, self._evaluating))

        def timed_evaluate(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return evaluate(*args)
            finally:
                self._evaluating += time.perf_counter() - t0

        engine.run = timed  # type: ignore[method-assign, assignment]
        engine.evaluate = timed_evaluate  # type: ignore[method-assign, assignment]

    @staticmethod
    def mark() -> tuple[float, float, float]:
        """(wall, process CPU, time spent runnable but waiting for a CPU: /proc/self/schedstat)."""
        with open("/proc/self/schedstat") as f:
            waited = int(f.read().split()[1]) / 1e9
        return time.perf_counter(), time.process_time(), waited

    def summary(self, lo: float, hi: float, cpu: tuple[float, float, float] | None = None) -> dict[str, Any]:
        """Between perf_counter times lo and hi; `cpu`: mark() at lo minus mark() at hi."""
        gcs = [g for g in self.gc.passes or () if lo <= g[0] < hi]
        by_gen: dict[str, Any] = {}
        for gen in (0, 1, 2):
            took, gc_cpu = [t for _, t, g, _ in gcs if g == gen], [c for _, _, g, c in gcs if g == gen]
            if took:
                by_gen[str(gen)] = {"n": len(took), "total_ms": round(sum(took) * 1000, 1),
                                    "max_ms": round(max(took) * 1000, 2), "cpu_total_ms": round(sum(gc_cpu) * 1000, 1),
                                    "cpu_max_ms": round(max(gc_cpu) * 1000, 2)}
        passes = [p for p in self.slo_passes if lo <= p[0] < hi]
        stalls = [s for s in self.stalls if lo <= s[0] < hi]
        in_pass = [s for s in stalls if any(p <= s[0] < p + w for p, w, _, _ in passes)]
        with_gc = [s for s in stalls if any(s[0] <= g < s[0] + s[1] + 0.001 for g, _, _, _ in gcs)]
        ms = lambda xs: sorted(round(x * 1000, 1) for x in xs)  # noqa: E731
        return {"cpu_share": cpu and round(cpu[1] / cpu[0], 3),
                "waited_for_cpu_share": cpu and round(cpu[2] / cpu[0], 3), "gc": by_gen,
                "slo_passes": [{"wall_ms": round(w * 1000), "cpu_ms": round(c * 1000), "engine_ms": round(e * 1000)}
                               for _, w, c, e in passes],
                "stalls_over_5ms": len(stalls), "stalls_ms": ms(g for _, g in stalls)[-20:],
                "stalls_in_slo_pass": len(in_pass), "stalls_with_gc": len(with_gc),
                "stall_ms_total": round(sum(g for _, g in stalls) * 1000, 1)}


async def _ready(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(6000):  # 60 s at most
            async with session.get(f"http://127.0.0.1:{port}/-/ready") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.01)
    raise RuntimeError("probed never became ready")


def series_by_type(body: bytes) -> dict[str, float]:
    """Series per probe of each type, counted from the body (lines carrying a probe's label)."""
    per_probe = Counter(m.group(1) for m in re.finditer(rb'probe="(\w+)-\d+"', body))
    probes = Counter(m.group(1) for m in re.finditer(rb'probed_probe_info\{[^}]*probe="(\w+)-\d+"', body))
    return {kind.decode(): round(per_probe[kind] / n, 1) for kind, n in probes.items() if n}


async def _scraper(port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=_on_other_core)


async def _scrape(scraper: asyncio.subprocess.Process) -> tuple[float, float, int]:
    """(daemon CPU seconds, scraper wall seconds, gzip bytes) of one scrape from the other core."""
    assert scraper.stdin is not None and scraper.stdout is not None
    c0 = time.process_time()
    scraper.stdin.write(b"scrape\n")
    size, wall = (await scraper.stdout.readline()).split()
    return time.process_time() - c0, float(wall), int(size)


async def run(url: str, probes: int, seconds: float, scrape_every: float, profile: str = "standard",
              rate: float | None = None, slos: int = 0, trace: bool = False) -> dict[str, Any]:
    intervals = intervals_for(probes, rate)
    gc_passes = GcPasses()
    tracer = Trace(gc_passes) if trace else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.yaml"
        path.write_text(make_config(url, probes, intervals, profile, slos))
        rss_before = rss_mib()
        port = free_port()
        scraper = await _scraper(port)
        daemon = Daemon(str(path))
        engine = SloEngine() if slos else None
        evaluating: asyncio.Task[None] | None = None
        runner = web.AppRunner(make_app(daemon, engine), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        t0 = time.perf_counter()
        try:
            config = await asyncio.to_thread(load_config, path)
            t_parse = time.perf_counter() - t0
            await daemon.start(config)
            if tracer is not None:
                tracer.start()
                if engine is not None:
                    tracer.time_slo_passes(engine)
            if engine is not None:  # as probed run does: a pass every 10 s, in slices
                evaluating = asyncio.create_task(engine.loop(lambda: (config.slos, daemon.states)))
            await _ready(port)
            ready = time.perf_counter() - t0
            assert daemon.scheduler is not None
            lateness = Lateness(daemon.scheduler.stats)
            # Every probe runs at least once before measuring (the longest interval).
            await asyncio.sleep(max(float(i.rstrip("s")) for i in intervals) + 2)
            rss = rss_mib()
            # The first scrape after a start renders every probe's lines (later ones only the
            # probes that ran since): measured on its own, before the steady state.
            first_cpu, first_wall, _ = await _scrape(scraper)
            await asyncio.sleep(scrape_every)  # the attempts it delayed are done before measuring
            failures0 = _failures(daemon)

            lateness.on = True
            m_idle = Trace.mark()
            await asyncio.sleep(seconds)
            idle = lateness.take(tracer.slo_passes if tracer else None)
            m_scraped = Trace.mark()

            scrape_cpu: list[float] = []
            scrape_wall: list[float] = []
            sizes: list[int] = []
            gc_passes.on = True
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.monotonic()
                cpu, wall, size = await _scrape(scraper)
                scrape_cpu.append(cpu)
                scrape_wall.append(wall)
                sizes.append(size)
                await asyncio.sleep(max(0.0, scrape_every - (time.monotonic() - started)))
            scraped = lateness.take(tracer.slo_passes if tracer else None)
            lateness.on = gc_passes.on = False
            m_end = Trace.mark()
            delta = lambda a, b: tuple(y - x for x, y in zip(a, b, strict=True))  # noqa: E731
            traced = {} if tracer is None else {
                "trace_idle": tracer.summary(m_idle[0], m_scraped[0], delta(m_idle, m_scraped)),
                "trace_scraped": tracer.summary(m_scraped[0], m_end[0], delta(m_scraped, m_end))}
            false_failures = _failures(daemon) - failures0

            # One render without yielding, so its CPU time is the render's alone (the scrapes'
            # figure above also holds the probes that ran while the render yielded to them).
            # Cold: every probe's cached lines dropped first (fragments.py), as after a start or a
            # reload; warm: a second render right after, which finds every probe unchanged but
            # those that ran meanwhile.
            rss_scraped = rss_mib()
            slicing.SLICE_S = float("inf")
            fragments.forget(list(daemon.states.values()))
            c0 = time.process_time()
            body = await render(ExpositionView.of(daemon))
            render_cpu = time.process_time() - c0
            profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE_RENDER") else None
            c0 = time.process_time()
            if profiler is not None:
                profiler.enable()
            await render(ExpositionView.of(daemon))
            render_cpu_warm = time.process_time() - c0
            if profiler is not None:  # the warm render's hot spots, on stderr
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
            median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            return {
                "probes": probes, "slos": slos,
                "rate_per_s": round(sum(1 / s.interval for s in config.probes), 1),
                "intervals": list(intervals), "profile": profile,
                "ready_seconds": round(ready, 2), "config_parse_seconds": round(t_parse, 2),
                "rss_mib": round(rss, 1), "kib_per_probe": round((rss - rss_before) * 1024 / probes, 2),
                "lateness_idle": idle, "lateness_scraped": scraped,
                "scrape_every_s": scrape_every, "scrapes": len(sizes),
                "scrape_wall_ms_median": round(median(scrape_wall) * 1000),
                "scrape_wall_ms_max": round(max(scrape_wall) * 1000),
                "scrape_cpu_ms_median": round(median(scrape_cpu) * 1000),
                "first_scrape_cpu_ms": round(first_cpu * 1000), "first_scrape_wall_ms": round(first_wall * 1000),
                "scrape_cpu_ms_each": [round(c * 1000) for c in scrape_cpu],
                "scrape_wall_ms_each": [round(w * 1000) for w in scrape_wall],
                "render_cpu_ms": round(render_cpu * 1000), "render_cpu_ms_warm": round(render_cpu_warm * 1000),
                "rss_mib_scraped": round(rss_scraped, 1),
                "body_bytes": len(body), "body_gzip_bytes": len(gzip.compress(body, 1)),
                "series": body.count(b"\n") - body.count(b"\n#"), "series_per_probe": series_by_type(body),
                "longest_gc_pass_scraped_ms": round(gc_passes.longest * 1000, 1),
                "false_failures": dict(false_failures),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **traced,
            }
        finally:
            if evaluating is not None:
                evaluating.cancel()
            if tracer is not None:
                tracer.stop()
            scraper.kill()
            await scraper.wait()
            await runner.cleanup()
            await daemon.shutdown()


def _failures(daemon: Daemon) -> Counter[str]:
    counts: Counter[str] = Counter()
    for state in daemon.states.values():
        for reason, n in state.failures_by_reason.items():
            counts[reason.value] += n
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=None,
                   help="probes started per second on average (default: intervals of 10-60 s)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds measured idle, then scraped (each)")
    p.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes")
    p.add_argument("--profile", choices=("blackbox", "standard", "full"), default="standard",
                   help="the metrics profile (standard is the default of a config that names none)")
    p.add_argument("--slos", type=int, default=0, help="SLOs over the probes, evaluated as the daemon does")
    p.add_argument("--trace", action="store_true",
                   help="also report GC passes per generation, loop stalls over 5 ms and SLO passes")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 0 < args.probes <= 200_000:
        p.error("--probes must be in (0, 200000]")
    import uvloop

    pin_to_first_core()
    load = os.getloadavg()[0]
    with http_target() as (url, server):
        result = uvloop.run(run(url, args.probes, args.seconds, args.scrape_every, args.profile, args.rate,
                                  args.slos, args.trace))
    result["server"] = server
    result["load_before"] = round(load, 2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
