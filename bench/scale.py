"""10,000 configured probes: start-up time, memory, /metrics render cost, lateness while scraped.

    python -m bench.scale [--probes 10000] [--seconds 30] [--scrape-every 5]

Mixed intervals (10 s, 15 s, 30 s, 60 s) of HTTP and TCP probes against a local nginx (or
aiohttp) on the other core. The daemon runs as in production, with its HTTP server; a scrape of
/metrics over loopback runs every `--scrape-every` seconds while probes run (Prometheus scrapes
every 15-60 s; 5 s is the harsh case), and lateness is measured meanwhile. The scraper is a
separate process on the other core. `scrape_cpu_ms` is the daemon's CPU while a scrape runs
(render and write, plus the probes that ran while the render yielded); `render_cpu_ms` is one
render alone. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.targets import free_port, http_target, other_core, pin_to_first_core
from probed.output.exposition import ExpositionView, render
from probed.output.web import make_app
from probed.runtime import slicing
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import load_config

INTERVALS = ("10s", "15s", "30s", "60s")
SCRAPER = """
import sys, time, urllib.request
t = time.perf_counter()
n = len(urllib.request.urlopen(sys.argv[1], timeout=30).read())
print(n, time.perf_counter() - t)
"""


def _on_other_core() -> None:
    core = other_core()
    if core:
        os.sched_setaffinity(0, core)


def make_config(url: str, probes: int, intervals: tuple[str, ...] = INTERVALS, profile: str = "standard") -> str:
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
    return "\n".join(lines) + "\n"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(url: str, probes: int, seconds: float, scrape_every: float,
              profile: str = "standard") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.yaml"
        path.write_text(make_config(url, probes, profile=profile))
        rss_before = rss_mib()
        t0 = time.perf_counter()
        config = await asyncio.to_thread(load_config, path)
        t_parse = time.perf_counter() - t0
        daemon = Daemon(str(path))
        await daemon.start(config)
        startup = time.perf_counter() - t0
        port = free_port()
        runner = web.AppRunner(make_app(daemon), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            # Let every probe run at least once (the longest interval) before measuring.
            await asyncio.sleep(min(61.0, seconds))
            assert daemon.scheduler is not None
            stats = daemon.scheduler.stats
            runs0 = stats.runs_total
            scrape_cpu: list[float] = []
            scrape_wall: list[float] = []
            sizes: list[int] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                # The scraper is another process on the other core, as Prometheus would be: the
                # body it reads is not held (or counted) in the daemon's memory.
                c0 = time.process_time()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics",
                    stdout=asyncio.subprocess.PIPE, preexec_fn=_on_other_core)
                out, _ = await proc.communicate()
                scrape_cpu.append(time.process_time() - c0)
                size, wall = out.split()
                sizes.append(int(size))
                scrape_wall.append(float(wall))
                await asyncio.sleep(scrape_every)
            runs = stats.runs_total - runs0
            lateness_p50, lateness_p99 = stats.lateness_quantile(0.5), stats.lateness_quantile(0.99)
            # One render without yielding, so its CPU time is the render's alone (the scrapes'
            # figure above also holds the probes that ran while the render yielded to them).
            slicing.SLICE_S = float("inf")
            c0 = time.process_time()
            body = await render(ExpositionView.of(daemon))
            render_cpu = time.process_time() - c0
            lines = body.count(b"\n")
            return {
                "probes": probes,
                "startup_seconds": round(startup, 3),
                "config_parse_seconds": round(t_parse, 3),
                "rss_mib": round(rss_mib(), 1),
                "rss_growth_mib": round(rss_mib() - rss_before, 1),
                "metrics_lines": lines,
                "metrics_bytes": sizes[-1],
                "render_cpu_ms": round(render_cpu * 1000, 1),
                "scrape_cpu_ms_median": round(sorted(scrape_cpu)[len(scrape_cpu) // 2] * 1000, 1),
                "scrape_cpu_ms_max": round(max(scrape_cpu) * 1000, 1),
                "scrape_wall_ms_median": round(sorted(scrape_wall)[len(scrape_wall) // 2] * 1000, 1),
                "scrapes": len(sizes),
                "runs_while_scraping": runs,
                "lateness_p50_ms": round(lateness_p50 * 1000, 3),
                "lateness_p99_ms": round(lateness_p99 * 1000, 3),
                "loop_lag_max_ms": round(stats.loop_lag_max_s * 1000, 2),
                "failures": sum(s.ring.failures_total for s in daemon.states.values()),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        finally:
            await runner.cleanup()
            await daemon.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=30.0, help="scraping period after warm-up (max 300)")
    p.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes")
    p.add_argument("--profile", choices=("blackbox", "standard", "full"), default="standard",
                   help="the metrics profile (standard is the default of a config that names none)")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= 300:
        p.error("--seconds must be in (0, 300]")
    import uvloop

    pin_to_first_core()
    with http_target() as (url, server):
        result = uvloop.run(run(url, args.probes, args.seconds, args.scrape_every, args.profile))
    result["server"] = server
    result["profile"] = args.profile
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
