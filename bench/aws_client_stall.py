"""How long creating aiobotocore clients blocks the event loop, and where probed pays for it.

    python -m bench.aws_client_stall [--repeat 3]

While clients are created, a ticker sleeps 1 ms at a time on the same loop (uvloop, as the
daemon runs); the longest gap between its wake-ups is the stall every in-flight probe would
have suffered. Each scenario runs in a fresh process, so botocore's caches start cold:

- `lazy_first_client`: a client per service made on the loop the naive way, as a probe's first
  attempt would (no warm-up): JSON models are parsed on the loop.
- `warmup_first_client`: the same with aiobotocore's `warm_up_loader_caches` (models parsed in a
  thread by the C JSON scanner, which holds the GIL throughout, plus files clients never read).
- `pool_first_client`: the first client per service made by probed's ClientPool (only the files
  a client needs, parsed in a thread by the pure-Python scanner, which lets the loop run).
- `pool_first_client_gc_frozen`: the same with `gc.freeze()` after each client, so the models
  (permanent anyway) leave the garbage collector's work: what remains of the stall above is
  mostly full (generation 2) collections triggered by the allocation burst, not parsing.
- `later_client`: once the shared loader holds a service's model, another client of it (other
  region or identity), through the pool: the cost of every client after the first.
- `pool_startup`: ClientPool leases for every check's service at once, as the daemon's start-up
  (or a reload adding them all) does.
- `pool_startup_paused`: the same inside `probed.collector.paused()`, awaiting `ClientPool.ready()`
  before `collector.settle()` (reported separately): what start-up would cost if the daemon waited for
  the clients inside its paused block, so that the models are parsed without collections and
  frozen with the rest of the heap.
- `hot_path`: the per-attempt cost of getting the client from the pool once it exists.

No network is touched: credentials are fake static keys and no call is made. Prints one JSON
object: per scenario, the median over `--repeat` processes of the worst stall and the total
time, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

SERVICES = ("ecs", "elbv2", "rds", "s3", "sts", "cloudfront", "ec2", "cloudwatch", "acm", "sns", "secretsmanager",
            "ecr", "elasticache")
SCENARIOS = ("lazy_first_client", "warmup_first_client", "pool_first_client", "pool_first_client_gc_frozen",
             "later_client", "pool_startup", "pool_startup_paused", "hot_path")
TICK_S = 0.001


class StallMeter:
    """The longest gap between 1 ms ticks while something runs on the same loop."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.01)  # let it settle
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not self._stop.is_set():
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self.worst = max(self.worst, now - last - TICK_S)
            last = now


async def measure(work: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    start = time.perf_counter()
    async with StallMeter() as meter:
        await work()
    return {"worst_stall_ms": round(meter.worst * 1000, 2), "total_ms": round((time.perf_counter() - start) * 1000, 1)}


async def scenario(name: str) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    from probed.probes.aws.clients import ClientKey, ClientPool, Identity

    clients: list[Any] = []

    async def make(session: AioSession, service: str, region: str, warm: bool) -> None:
        ctx = session.create_client(service, region_name=region, config=AioConfig(warm_up_loader_caches=warm))
        clients.append((ctx, await ctx.__aenter__()))

    async def close_all() -> None:
        for ctx, _ in clients:
            await ctx.__aexit__(None, None, None)

    per_service: dict[str, dict[str, float]] = {}
    if name in ("lazy_first_client", "warmup_first_client"):
        session = AioSession()
        warm = name == "warmup_first_client"
        for service in SERVICES:
            per_service[service] = await measure(functools.partial(make, session, service, "us-east-1", warm))
        await close_all()
    elif name in ("pool_first_client", "pool_first_client_gc_frozen", "later_client"):
        pool = ClientPool()
        if name == "later_client":  # the loader's cache already holds every model
            for service in SERVICES:
                await pool.lease(ClientKey(Identity(), service, "us-east-1", None, 10.0)).client()
        region = "eu-west-1" if name == "later_client" else "us-east-1"
        for service in SERVICES:
            lease = pool.lease(ClientKey(Identity(), service, region, None, 10.0))
            per_service[service] = await measure(lease.client)
            if name == "pool_first_client_gc_frozen":
                gc.freeze()
        await pool.aclose()
    elif name == "pool_startup":
        pool = ClientPool()
        keys = [ClientKey(Identity(), service, "us-east-1", None, 10.0) for service in SERVICES]

        async def start_all() -> None:
            leases = [pool.lease(key) for key in keys]
            await asyncio.gather(*(lease.client() for lease in leases))

        per_service["all"] = await measure(start_all)
        await pool.aclose()
    elif name == "pool_startup_paused":
        from probed.runtime import collector

        pool = ClientPool()
        keys = [ClientKey(Identity(), service, "us-east-1", None, 10.0) for service in SERVICES]

        async def start_paused() -> None:
            with collector.paused():
                for key in keys:
                    pool.lease(key)
                await pool.ready()

        async def settle() -> None:
            collector.settle()

        per_service["ready"] = await measure(start_paused)
        per_service["settle"] = await measure(settle)
        await pool.aclose()
    elif name == "hot_path":
        pool = ClientPool()
        lease = pool.lease(ClientKey(Identity(), "sts", "us-east-1", None, 10.0))
        await lease.client()
        n = 100_000
        start = time.perf_counter()
        for _ in range(n):
            await lease.client()
        per_service["sts"] = {"per_attempt_us": round((time.perf_counter() - start) / n * 1e6, 3)}
        await pool.aclose()
    return per_service


def run_one(name: str) -> dict[str, Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIABENCHFAKE0000000", "AWS_SECRET_ACCESS_KEY": "bench-fake",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE":
           "/nonexistent"}
    out = subprocess.run([sys.executable, "-m", "bench.aws_client_stall", "--scenario", name], capture_output=True,
                         text=True, env=env, check=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median per service and metric over the runs, plus the worst stall and summed total."""
    merged: dict[str, dict[str, float]] = {}
    for service in runs[0]:
        merged[service] = {metric: statistics.median(r[service][metric] for r in runs) for metric in runs[0][service]}
    summary: dict[str, Any] = {"per_service": merged}
    stalls = [m["worst_stall_ms"] for m in merged.values() if "worst_stall_ms" in m]
    if stalls:
        summary["worst_stall_ms"] = max(stalls)
        summary["worst_service"] = max(merged, key=lambda s: merged[s].get("worst_stall_ms", 0.0))
        summary["sum_total_ms"] = round(sum(m["total_ms"] for m in merged.values()), 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(json.dumps(runner.run(scenario(args.scenario))))
        return
    report = {name: summarize([run_one(name) for _ in range(args.repeat)]) for name in SCENARIOS}
    report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
