"""A crowd of concurrent /metrics scrapers: scheduler lateness, loop lag and RSS while they scrape.

    python -m bench.scrapes [--probes 2000] [--scrapers 200] [--rounds 5] [--every 5] [--encoding gzip]

HTTP and TCP probes (5 s and 10 s intervals) against a local nginx (or aiohttp) on the other core;
the daemon serves as `probed run` does (run.start_web: shared renders, the connection guard). First
an idle phase as long as the scraping one, then `--rounds` rounds, `--every` seconds apart, of
`--scrapers` concurrent scrapes from one client process on the other core (HA Prometheus pairs,
federation and a few dashboards at once, multiplied). Lateness is over the runs of each phase, RSS is
sampled every 20 ms. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scale import make_config, rss_mib
from bench.targets import free_port, http_target, other_core, pin_to_first_core
from probed.output.connections import WebLimits
from probed.run import start_web
from probed.runtime.daemon import Daemon
from probed.runtime.scheduler import LATENESS_RESERVOIR, SchedulerStats

INTERVALS = ("5s", "10s")
SCRAPERS = """
import asyncio, json, sys, time, aiohttp
url, n, encoding = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def one(session):
    async with session.get(url, headers={"Accept-Encoding": encoding}) as r:
        return len(await r.read())
async def main():
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        for _ in sys.stdin:  # one line per round
            t = time.perf_counter()
            sizes = await asyncio.gather(*(one(session) for _ in range(n)), return_exceptions=True)
            ok = [s for s in sizes if isinstance(s, int)]
            print(json.dumps({"wall": time.perf_counter() - t, "ok": len(ok), "bytes": max(ok, default=0),
                              "errors": sorted({type(s).__name__ for s in sizes if not isinstance(s, int)})}),
                  flush=True)
asyncio.run(main())
"""


def lateness_ms(stats: SchedulerStats, runs_before: int, q: float) -> float:
    """Quantile q of the lateness of the runs since `runs_before` (the newest of them, at most the reservoir)."""
    n = min(stats.runs_total - runs_before, LATENESS_RESERVOIR)
    if n <= 0:
        return 0.0
    data = sorted(stats.recent_lateness[(stats.runs_total - 1 - i) % LATENESS_RESERVOIR] for i in range(n))
    return round(data[min(n - 1, int(q * n))] * 1000, 2)


class Sampler:
    """RSS and loop lag, sampled every 20 ms on the daemon's loop."""

    def __init__(self) -> None:
        self.rss_max = 0.0
        self.lag_max = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.02)
            self.lag_max = max(self.lag_max, loop.time() - t - 0.02)
            self.rss_max = max(self.rss_max, rss_mib())

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def run(url: str, probes: int, scrapers: int, rounds: int, every: float, encoding: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scrapes.yaml"
        path.write_text(make_config(url, probes, INTERVALS))
        daemon = Daemon(str(path))
        await daemon.start()
        port = free_port()
        runner, site = await start_web(daemon, None, "127.0.0.1", port, None, WebLimits(max_connections=4096), 4096)
        try:
            assert daemon.scheduler is not None
            stats = daemon.scheduler.stats
            # Started once, before measuring: forking a process of this size holds the loop for a while.
            crowd = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCRAPERS, f"http://127.0.0.1:{port}/metrics", str(scrapers), encoding,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=_on_other_core)
            assert crowd.stdin is not None and crowd.stdout is not None
            await asyncio.sleep(11)  # every probe has run at least once
            phase_s = rounds * every
            runs0 = stats.runs_total
            with Sampler() as idle:
                await asyncio.sleep(phase_s)
            idle_p50, idle_p99 = lateness_ms(stats, runs0, 0.5), lateness_ms(stats, runs0, 0.99)
            runs1 = stats.runs_total
            failures0 = sum(s.ring.failures_total for s in daemon.states.values())
            results = []
            with Sampler() as scraped:
                for _ in range(rounds):
                    started = time.monotonic()
                    crowd.stdin.write(b"go\n")
                    results.append(json.loads(await crowd.stdout.readline()))
                    await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
            crowd.stdin.close()
            await crowd.wait()
            web = site.stats
            return {
                "probes": probes, "scrapers": scrapers, "rounds": rounds, "encoding": encoding,
                "lateness_p50_ms_idle": idle_p50, "lateness_p99_ms_idle": idle_p99,
                "lateness_p50_ms_scraped": lateness_ms(stats, runs1, 0.5),
                "lateness_p99_ms_scraped": lateness_ms(stats, runs1, 0.99),
                "loop_lag_max_ms_idle": round(idle.lag_max * 1000, 1),
                "loop_lag_max_ms_scraped": round(scraped.lag_max * 1000, 1),
                "rss_max_mib_idle": round(idle.rss_max, 1), "rss_max_mib_scraped": round(scraped.rss_max, 1),
                "scrapes_ok": sum(r["ok"] for r in results), "scrape_errors": sorted({e for r in results
                                                                                    for e in r["errors"]}),
                "body_bytes": max(r["bytes"] for r in results),
                "round_wall_s_max": round(max(r["wall"] for r in results), 2),
                "renders": web.renders_total, "scrapes": web.scrapes_total,
                "false_failures": sum(s.ring.failures_total for s in daemon.states.values()) - failures0,
            }
        finally:
            await runner.cleanup()
            await daemon.shutdown()


def _on_other_core() -> None:
    core = other_core()
    if core:
        os.sched_setaffinity(0, core)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--scrapers", type=int, default=200, help="concurrent scrapes per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--every", type=float, default=5.0, help="seconds between rounds")
    p.add_argument("--encoding", default="gzip", help="the scrapers' Accept-Encoding (gzip, identity)")
    args = p.parse_args(argv)
    import uvloop

    pin_to_first_core()
    with http_target() as (url, server):
        result = uvloop.run(run(url, args.probes, args.scrapers, args.rounds, args.every, args.encoding))
    result["server"] = server
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
