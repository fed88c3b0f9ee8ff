"""End-to-end probe throughput per CPU-second: schedule, probe with phase timings, record.

    python -m bench.throughput --type http|tcp --seconds 10 [--rate 3000] [--target URL_OR_HOST:PORT]

The daemon's scheduler, probes and ring record run exactly as in production (the real `Daemon`,
on uvloop), pinned to one core; the target server runs in another process on the other core.
CPU time of this process is the figure to trust on a shared machine, so the headline number is
probes per CPU-second. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.targets import http_target, pin_to_first_core
from probed.config import load_config
from probed.daemon import Daemon

DEFAULT_RATE = {"http": 3000.0, "tcp": 6000.0}


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def make_config(kind: str, target: str, probes: int, interval: float, timeout: float) -> str:
    lines = ["scheduler: {max_concurrency: 2000}", "probes:"]
    for i in range(probes):
        lines.append(f"  - {{name: bench-{i}, type: {kind}, target: '{target}', interval: {interval * 1000:.0f}ms, "
                     f"timeout: {timeout * 1000:.0f}ms}}")
    return "\n".join(lines) + "\n"


async def measure(kind: str, target: str, rate: float, seconds: float, probes: int, warmup: float) -> dict[str, Any]:
    interval = max(0.1, probes / rate)
    timeout = min(2.0, interval)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(make_config(kind, target, probes, interval, timeout))
        daemon = Daemon(str(path))
        await daemon.start(load_config(path))
        try:
            await asyncio.sleep(warmup)
            assert daemon.scheduler is not None
            stats = daemon.scheduler.stats

            def totals() -> tuple[int, int]:
                ok = sum(s.ring.successes_total for s in daemon.states.values())
                bad = sum(s.ring.failures_total for s in daemon.states.values())
                return ok, bad

            ok0, bad0 = totals()
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            runs0 = stats.runs_total
            await asyncio.sleep(seconds)
            cpu1, wall1 = cpu_seconds(), time.perf_counter()
            ok1, bad1 = totals()
            reasons: dict[str, int] = {}
            for s in daemon.states.values():
                for r, n in s.failures_by_reason.items():
                    reasons[r.value] = reasons.get(r.value, 0) + n
            done = (ok1 - ok0) + (bad1 - bad0)
            cpu = cpu1 - cpu0
            return {
                "type": kind,
                "target": target,
                "configured_probes": probes,
                "interval_seconds": round(interval, 4),
                "offered_rate": rate,
                "probes_per_second": round(done / (wall1 - wall0), 1),
                "cpu_seconds": round(cpu, 3),
                "cpu_utilisation": round(cpu / (wall1 - wall0), 3),
                "probes_per_cpu_second": round(done / cpu, 1) if cpu else None,
                "us_per_probe": round(cpu / done * 1e6, 1) if done else None,
                "lateness_p50_ms": round(stats.lateness_quantile(0.50) * 1000, 3),
                "lateness_p99_ms": round(stats.lateness_quantile(0.99) * 1000, 3),
                "runs_measured": stats.runs_total - runs0,
                "errors": bad1 - bad0,
                "error_reasons": reasons,
                "skipped": dict(stats.skipped),
            }
        finally:
            await daemon.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", choices=("http", "tcp"), default="http")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=None, help="offered probes per second (default per type)")
    p.add_argument("--probes", type=int, default=1000, help="configured probes sharing the rate")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--target", default=None, help="probe this existing server instead of starting one")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600:
        p.error("--seconds must be in (0, 600]")

    import uvloop

    pin_to_first_core()
    rate = args.rate or DEFAULT_RATE[args.type]
    with ExitStack() as stack:
        server = "external"
        target = args.target
        if target is None:
            url, server = stack.enter_context(http_target())
            target = url if args.type == "http" else url.split("/")[2]
        result = uvloop.run(measure(args.type, target, rate, args.seconds, args.probes, args.warmup))
    result["server"] = server
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
