"""End-to-end probe throughput per CPU-second: schedule, probe with phase timings, record.

    python -m bench.throughput --type http|tcp|tls|dns --seconds 10 [--rate N] [--target ...]

The daemon's scheduler, probes and ring record run exactly as in production (the real `Daemon`,
on uvloop), pinned to one core; the target server runs in another process on the other core.
CPU time of this process is the figure to trust on a shared machine, so the headline number is
probes per CPU-second. Prints one JSON object last.

Peers (bench/targets.py) and what `--target` means per type:

- http: nginx (`return 200`), a new connection per attempt. `--target URL`.
- tcp: a plain connect to the same nginx. `--target HOST:PORT`.
- tls: nginx with a `listen ... ssl` server, a chain minted at start (root -> intermediate ->
  leaf for localhost/127.0.0.1; `--tls-key rsa|ecdsa`), session tickets and cache off, so every
  attempt is a full handshake (the probe never offers a session either; checked at start:
  `resumption_refused`). `--target HOST:PORT` with `--ca-file` / `--server-name` as needed.
- dns: dnsmasq answering `bench.test A` from its configuration, over UDP. `--target IP:PORT`
  is the DNS server to ask and `--dns-name` the name to resolve.

The default offered rate per type keeps the probing core ~50-70% busy, so the daemon is not
saturated (lateness p99 stays within a few ms) and the per-CPU-second figure is a steady state.
The cost per probe depends on the rate: the less busy the core, the more each wake-up costs
(tls at 200/s: ~1.7 ms of CPU per probe, at 600/s ~1.1 ms), so compare figures at one rate.

Other load on the machine skews every figure. `other_cpu_utilisation` is the CPU (in cores)
that neither this process nor its peer used during the window; above 0.1, or with fewer than
97% of the offered probes done, the run is marked `contended`: leave it out.
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

from bench.targets import (
    dns_target,
    http_target,
    machine_busy_seconds,
    peer_cpu_seconds,
    pin_to_first_core,
    tls_target,
)
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import load_config

TYPES = ("http", "tcp", "tls", "dns")
DEFAULT_RATE = {"http": 3000.0, "tcp": 6000.0, "tls": 600.0, "dns": 7000.0}
GOAL_PER_CPU_SECOND = {"http": 4240.0, "tcp": 10400.0, "tls": 1000.0, "dns": 8000.0}
"""What each type should reach (README "Cost per probe"; tls: blackbox_exporter's ~930-990, beaten)."""


OTHER_LOAD_LIMIT = 0.1
"""Cores' worth of CPU used by other processes during the window above which a run is marked
`contended` (as is one completing fewer than 97% of the offered probes): leave those out."""


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def window_lateness(stats: Any, runs0: int) -> list[float]:
    """Lateness of the runs since `runs0` only (the scheduler's reservoir also holds the warm-up's
    runs when the measured window is shorter than it), sorted."""
    size = len(stats.recent_lateness)
    runs1 = stats.runs_total
    count = min(runs1 - runs0, size)
    return sorted(stats.recent_lateness[(runs1 - 1 - k) % size] for k in range(count))


def quantile_ms(data: list[float], q: float) -> float:
    return round(data[min(len(data) - 1, int(q * len(data)))] * 1000, 3) if data else 0.0


def make_config(kind: str, target: str, probes: int, interval: float, timeout: float,
                section: dict[str, str] | None = None) -> str:
    """`section`: the type's own settings (`tls: {...}`, `dns: {...}`), string values only."""
    extra = ""
    if section:
        extra = f", {kind}: {{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in section.items()) + "}"
    lines = ["scheduler: {max_concurrency: 2000}", "probes:"]
    for i in range(probes):
        lines.append(f"  - {{name: bench-{i}, type: {kind}, target: '{target}', interval: {interval * 1000:.0f}ms, "
                     f"timeout: {timeout * 1000:.0f}ms{extra}}}")
    return "\n".join(lines) + "\n"


async def measure(kind: str, target: str, rate: float, seconds: float, probes: int, warmup: float,
                  section: dict[str, str] | None = None, local_peer: bool = True) -> dict[str, Any]:
    """`local_peer`: the peer is ours (bench/targets.py), so its CPU is known and any other CPU
    use on the machine is other load; with an external server that is on this machine, its CPU
    shows as `other_cpu_utilisation` and only the completion rate decides `contended`."""
    interval = max(0.1, probes / rate)
    timeout = min(2.0, interval)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(make_config(kind, target, probes, interval, timeout, section))
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
            busy0, peer0 = machine_busy_seconds(), peer_cpu_seconds()
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            runs0 = stats.runs_total
            await asyncio.sleep(seconds)
            cpu1, wall1 = cpu_seconds(), time.perf_counter()
            busy1, peer1 = machine_busy_seconds(), peer_cpu_seconds()
            ok1, bad1 = totals()
            lateness = window_lateness(stats, runs0)
            reasons: dict[str, int] = {}
            for s in daemon.states.values():
                for r, n in s.failures_by_reason.items():
                    reasons[r.value] = reasons.get(r.value, 0) + n
            done = (ok1 - ok0) + (bad1 - bad0)
            cpu = cpu1 - cpu0
            wall = wall1 - wall0
            peer = peer1 - peer0
            # Everything else the machine did meanwhile, in cores: other load skews the figures.
            other = max(0.0, (busy1 - busy0) - cpu - peer) / wall
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
                "goal_per_cpu_second": GOAL_PER_CPU_SECOND[kind],
                "us_per_probe": round(cpu / done * 1e6, 1) if done else None,
                "lateness_p50_ms": quantile_ms(lateness, 0.50),
                "lateness_p99_ms": quantile_ms(lateness, 0.99),
                "lateness_max_ms": quantile_ms(lateness, 1.0),
                "runs_measured": stats.runs_total - runs0,
                "errors": bad1 - bad0,
                "error_reasons": reasons,
                "skipped": dict(stats.skipped),
                "peer_cpu_utilisation": round(peer / wall, 3),
                "other_cpu_utilisation": round(other, 3),
                "contended": (local_peer and other > OTHER_LOAD_LIMIT) or done / wall < 0.97 * rate,
            }
        finally:
            await daemon.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", choices=TYPES, default="http")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=None, help="offered probes per second (default per type)")
    p.add_argument("--probes", type=int, default=1000, help="configured probes sharing the rate")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--target", default=None, help="probe this existing server instead of starting one "
                   "(http: URL; tcp, tls: HOST:PORT; dns: the server's IP:PORT)")
    p.add_argument("--tls-key", choices=("rsa", "ecdsa"), default="rsa",
                   help="tls: key type of the minted chain (rsa: RSA-2048, ecdsa: P-256)")
    p.add_argument("--ca-file", default=None, help="tls with --target: the CA to trust (default: the system store)")
    p.add_argument("--server-name", default=None, help="tls with --target: SNI and name to verify")
    p.add_argument("--dns-name", default=None, help="dns with --target: the name to resolve")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600:
        p.error("--seconds must be in (0, 600]")
    if args.warmup < 0 or args.warmup > 60:
        p.error("--warmup must be in [0, 60]")
    if args.rate is not None and not 0 < args.rate <= 100_000:
        p.error("--rate must be in (0, 100000]")
    if args.type == "dns" and args.target is not None and args.dns_name is None:
        p.error("--type dns --target SERVER needs --dns-name NAME")

    import uvloop

    pin_to_first_core()
    rate = args.rate or DEFAULT_RATE[args.type]
    extra: dict[str, Any] = {}
    with ExitStack() as stack:
        server = "external"
        target = args.target
        section: dict[str, str] | None = None
        if args.type in ("http", "tcp") and target is None:
            url, server = stack.enter_context(http_target())
            target = url if args.type == "http" else url.split("/")[2]
        elif args.type == "tls":
            if target is None:
                tls = stack.enter_context(tls_target(args.tls_key))
                target, server = tls.hostport, tls.server
                section = {"ca_file": tls.ca_file, "server_name": tls.server_name}
                extra = {"tls_key": tls.key_type, "resumption_refused": tls.resumption_refused}
            else:
                section = {k: v for k, v in (("ca_file", args.ca_file), ("server_name", args.server_name)) if v}
        elif args.type == "dns":
            if target is None:
                dns_server, name, server = stack.enter_context(dns_target())
            else:
                dns_server, name = target, args.dns_name
            target, section = name, {"server": dns_server}
            extra = {"dns_server": dns_server}
        result = uvloop.run(measure(args.type, target, rate, args.seconds, args.probes, args.warmup, section,
                                    local_peer=server != "external"))
    result["server"] = server
    result.update(extra)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
