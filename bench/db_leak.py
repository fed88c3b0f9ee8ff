"""Do the database probes leak connections? One attempt per second per engine, for minutes.

    python -m bench.db_leak [--seconds 300] [--interval 1]

Starts throwaway PostgreSQL, MariaDB and Redis servers (bench/servers.py: free loopback ports,
temp dirs, never the machine's own servers), runs a postgres, a mysql and a redis probe side by
side through `run_attempt` (the scheduler's runner) at the interval, and counts the probe user's
connections on each server before, every 10 s during, and after the run (pg_stat_activity rows of
the probe user, Threads_connected minus the asking session, Redis connected_clients minus
redis-cli); and this process's open file descriptors before and after. A leak shows as
`after > baseline` on either side. Every fifth attempt is made to fail, in turn each way that
engine can (a query error; a query slower than the timeout, so the abandoned-query cleanup runs:
PostgreSQL's cancel request, MySQL's KILL QUERY; a wrong password), so the error paths are
covered too. Prints one JSON object last; exits 1 on a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, suppress
from typing import Any

from bench.servers import (
    MY_PASSWORD,
    PG_PASSWORD,
    PG_USER,
    REDIS_PASSWORD,
    MariaDbServer,
    PostgresServer,
    RedisServer,
)
from probed.config.model import ProbeSpec
from probed.probes.mysql import MysqlProbeConfig
from probed.probes.postgres import PostgresProbeConfig
from probed.probes.redis import RedisProbeConfig
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import ProbeSet

TIMEOUT_S = 0.9
SAMPLE_EVERY_S = 10.0
SETTLE_S = 5.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Engine:
    """One server, a healthy probe and failing ones, and how to count the probe's connections."""

    def __init__(self, name: str, healthy: Any, failing: list[Any], count: Callable[[], int]) -> None:
        self.name, self.healthy, self.failing, self._count = name, healthy, failing, count
        self.results: Counter[str] = Counter()
        self.samples: list[int] = []

    async def count(self) -> int:
        return await asyncio.to_thread(self._count)

    async def run(self, seconds: float, interval: float) -> None:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            probe = self.failing[n // 5 % len(self.failing)] if n % 5 == 4 else self.healthy
            result = await run_attempt(probe, TIMEOUT_S)
            self.results[result.reason.value] += 1
            n += 1
            # Drift-free: the next attempt is due at start + n * interval, whatever this one took.
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))

    async def sampler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append(await self.count())
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def settle(count: Callable[[], Awaitable[int]], baseline: int) -> int:
    """The server closes a session a few milliseconds after its client left: wait for it."""
    for _ in range(int(SETTLE_S / 0.1)):  # polling a server: nothing to wait on locally
        value = await count()
        if value <= baseline:
            break
        await asyncio.sleep(0.1)
    return value


async def measure(engines: list[Engine], seconds: float, interval: float) -> dict[str, Any]:
    baselines = {e.name: await e.count() for e in engines}
    fds_before = open_fds()
    stop = asyncio.Event()
    samplers = [asyncio.create_task(e.sampler(stop)) for e in engines]
    await asyncio.gather(*(e.run(seconds, interval) for e in engines))
    stop.set()
    await asyncio.gather(*samplers)
    for e in engines:
        for probe in (e.healthy, *e.failing):
            await probe.aclose()
    report: dict[str, Any] = {"seconds": seconds, "interval_s": interval, "engines": {}}
    leak = False
    for e in engines:
        after = await settle(e.count, baselines[e.name])
        leaked = after - baselines[e.name]
        leak |= leaked > 0
        report["engines"][e.name] = {
            "attempts": sum(e.results.values()), "results": dict(e.results),
            "server_connections": {"baseline": baselines[e.name], "max_during": max(e.samples, default=0),
                                   "after": after},
            "leaked": leaked,
        }
    fds_after = open_fds()
    leak |= fds_after > fds_before
    report["process_fds"] = {"before": fds_before, "after": fds_after}
    report["leak_free"] = not leak
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    with ExitStack() as stack:
        pg = stack.enter_context(PostgresServer())
        my = stack.enter_context(MariaDbServer())
        rd = stack.enter_context(RedisServer())
        for server in (pg, my, rd):
            server.start()
        pg.setup_users()
        my.setup_users()

        def pg_count() -> int:
            return int(pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{PG_USER}'"))

        built = ProbeSet()

        def probe(kind: str, url: str, settings: Any) -> Any:
            """Built as the daemon builds it, each under a name of its own."""
            spec = ProbeSpec(name=f"{kind}-{len(built.probes)}", type=kind, target=url, interval=10.0,
                             timeout=TIMEOUT_S, labels={}, settings=settings)
            return built.build(spec, frozenset())

        checks = {"check_connections": True, "expect_role": "primary", "max_long_running_queries": 10}
        def pg_probe(**settings: Any) -> Any:
            return probe("postgres", pg.url(), PostgresProbeConfig(password=PG_PASSWORD, **settings))

        def my_probe(**settings: Any) -> Any:
            return probe("mysql", my.url(), MysqlProbeConfig(password=MY_PASSWORD, **settings))

        engines = [
            Engine("postgres", pg_probe(**checks),
                   [pg_probe(query="SELECT 1/0"), pg_probe(query="SELECT pg_sleep(5)"),
                    probe("postgres", pg.url(), PostgresProbeConfig(password="wrong-password"))],
                   pg_count),
            Engine("mysql", my_probe(**checks),
                   [my_probe(query="SELECT * FROM nope"), my_probe(query="SELECT SLEEP(5)"),
                    probe("mysql", my.url(), MysqlProbeConfig(password="wrong-password"))],
                   my.threads_connected),
            Engine("redis", probe("redis", rd.url(), RedisProbeConfig(password=REDIS_PASSWORD, max_memory_ratio=0.9)),
                   [probe("redis", rd.url(), RedisProbeConfig(password="wrong-password"))],
                   rd.connected_clients),
        ]
        report = asyncio.run(measure(engines, args.seconds, args.interval))
    print(json.dumps(report, indent=2))
    return 0 if report["leak_free"] else 1


if __name__ == "__main__":
    sys.exit(main())
