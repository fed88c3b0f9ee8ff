"""Every benchmark once, with short defaults, and a summary of the headline figures.

    python -m bench [--seconds 6] [--only throughput-tls,ring ...] [--budget 480]

Each benchmark runs in its own subprocess, one after another (they would skew each other's
CPU figures if run together): `bench.throughput` for http, tcp, tls and dns, `bench.ring`,
`bench.scale` (fewer seconds than its default) and `bench.aws_client_stall --repeat 1`. Not
`bench.db_leak`, which takes minutes by design: run it on its own (see NOT_RUN below).

Prints a table of the headline figures (per-core rates, with their ratio to blackbox_exporter's
figures in docs/performance.md where there is one, and to the project's goal), then one JSON
object last: every benchmark's own JSON output, the summary rows, and what failed. A throughput
run marked `contended` had other load on the machine (or did not keep up with the offered rate):
its figures are not the ones to quote. Exits 1 when a benchmark failed or timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

BLACKBOX_PER_CPU_SECOND = {"http": 2650.0, "tcp": 4340.0, "tls": 930.0}
"""blackbox_exporter 0.23 on the same kind of machine (docs/performance.md): new-connection
HTTP probe, TCP connect, HTTPS with a full handshake (the nearest to `type: tls`)."""

NOT_RUN = {"db_leak": "python -m bench.db_leak --seconds 300   # minutes by design: connection leaks need time"}


@dataclass(frozen=True)
class Bench:
    name: str
    argv: list[str]
    timeout_s: float
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
    """Summary rows from the benchmark's JSON output."""


def _ratio(value: float | None, reference: float | None) -> float | None:
    return round(value / reference, 2) if value and reference else None


def throughput_rows(kind: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    def rows(out: dict[str, Any]) -> list[dict[str, Any]]:
        per_cpu = out.get("probes_per_cpu_second")
        return [{
            "figure": f"{kind} probes per CPU-second",
            "value": per_cpu,
            "vs_blackbox": _ratio(per_cpu, BLACKBOX_PER_CPU_SECOND.get(kind)),
            "vs_goal": _ratio(per_cpu, out.get("goal_per_cpu_second")),
            "note": (f"{out.get('probes_per_second')}/s at {out.get('cpu_utilisation')} CPU, "
                     f"{out.get('us_per_probe')} us each, lateness p99 {out.get('lateness_p99_ms')} ms, "
                     f"errors {out.get('errors')}" + (", CONTENDED" if out.get("contended") else "")),
        }]
    return rows


def ring_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"figure": "ring records per CPU-second", "value": out.get("records_per_cpu_second"),
         "note": f"{out.get('ns_per_record')} ns per record"},
        {"figure": "ring percentiles, all probes (ms)", "value": out.get("all_probes_percentiles_ms"),
         "note": f"{out.get('probes')} probes, {out.get('us_per_percentile_read')} us each, "
                 f"{out.get('kib_per_probe')} KiB per probe"},
    ]


def scale_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    scraped = out.get("lateness_scraped", {})
    return [
        {"figure": "scale: seconds to /-/ready", "value": out.get("ready_seconds"),
         "note": f"{out.get('probes')} probes, RSS {out.get('rss_mib')} MiB"},
        {"figure": "scale: CPU ms per /metrics scrape", "value": out.get("scrape_cpu_ms_median"),
         "note": f"{out.get('series')} series, render alone {out.get('render_cpu_ms', '?')} ms"},
        {"figure": "scale: lateness p99 ms while scraped", "value": scraped.get("p99_ms"),
         "note": f"idle {out.get('lateness_idle', {}).get('p99_ms')} ms, "
                 f"false failures {out.get('false_failures')}"},
    ]


def aws_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for scenario in ("pool_first_client_gc_frozen", "later_client", "pool_startup"):
        if scenario in out:
            s = out[scenario]
            rows.append({"figure": f"aws {scenario}: worst loop stall ms", "value": s.get("worst_stall_ms"),
                         "note": f"worst service {s.get('worst_service')}, total {s.get('sum_total_ms')} ms"})
    hot = out.get("hot_path", {}).get("per_service", {}).get("sts", {}).get("per_attempt_us")
    if hot is not None:
        rows.append({"figure": "aws hot path: us per attempt", "value": hot, "note": "client from the pool"})
    return rows


def benches(seconds: float) -> list[Bench]:
    throughput = [
        Bench(f"throughput-{kind}",
              ["-m", "bench.throughput", "--type", kind, "--seconds", f"{seconds:g}", "--warmup", "2"],
              seconds + 60, throughput_rows(kind))
        for kind in ("http", "tcp", "tls", "dns")
    ]
    return [
        *throughput,
        Bench("ring", ["-m", "bench.ring"], 120, ring_rows),
        Bench("scale", ["-m", "bench.scale", "--seconds", "10", "--rate", "1000"], 150, scale_rows),
        Bench("aws_client_stall", ["-m", "bench.aws_client_stall", "--repeat", "1"], 150, aws_rows),
    ]


def parse_output(stdout: str) -> dict[str, Any]:
    """The benchmark's JSON: its last line (most print one compact object last), else the whole
    output (aws_client_stall prints one indented object)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines:
        with contextlib.suppress(json.JSONDecodeError):
            last = json.loads(lines[-1])
            if isinstance(last, dict):
                return last
    whole = json.loads(stdout)
    if not isinstance(whole, dict):
        raise ValueError("not a JSON object")
    return whole


def run_one(bench: Bench, timeout_s: float) -> tuple[dict[str, Any] | None, str | None, float]:
    """(output, error, wall seconds). The child gets its own process group, so that on a timeout
    its peers (nginx, dnsmasq) go with it: SIGINT first (its context managers stop them), then
    SIGKILL to the group."""
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, *bench.argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        return None, f"timed out after {timeout_s:.0f}s", time.monotonic() - start
    wall = time.monotonic() - start
    if proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return None, f"exit {proc.returncode}: {tail}", wall
    try:
        return parse_output(stdout), None, wall
    except (ValueError, json.JSONDecodeError) as exc:
        return None, f"unreadable output ({exc}): {stdout[-200:]!r}", wall


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("benchmark", "figure", "value", "vs blackbox", "vs goal", "note")
    cells = [head] + [(r["bench"], r["figure"], _fmt(r.get("value")), _fmt(r.get("vs_blackbox")),
                       _fmt(r.get("vs_goal")), r.get("note", "")) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    out = []
    for n, c in enumerate(cells):
        out.append("  ".join(c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i]) for i in range(len(widths)))
                   + "  " + c[-1])
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per throughput run (max 60)")
    p.add_argument("--only", default=None, help="comma-separated benchmark names (default: all)")
    p.add_argument("--budget", type=float, default=480.0, help="stop starting benchmarks after this many seconds")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= 60:
        p.error("--seconds must be in (0, 60]")
    if not 0 < args.budget <= 1800:
        p.error("--budget must be in (0, 1800]")
    selected = benches(args.seconds)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {b.name for b in selected}
        if unknown:
            p.error(f"unknown benchmark(s) {sorted(unknown)}; known: {[b.name for b in selected]}")
        selected = [b for b in selected if b.name in wanted]

    began = time.monotonic()
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    walls: dict[str, float] = {}
    for bench in selected:
        left = args.budget - (time.monotonic() - began)
        if left <= 0:
            errors[bench.name] = "not started: over the --budget"
            continue
        print(f"... {bench.name}: python {' '.join(bench.argv)}", file=sys.stderr, flush=True)
        out, error, wall = run_one(bench, min(bench.timeout_s, max(left, 10.0)))
        walls[bench.name] = round(wall, 1)
        if error is not None or out is None:
            errors[bench.name] = error or "no output"
            rows.append({"bench": bench.name, "figure": "FAILED", "note": errors[bench.name]})
            continue
        results[bench.name] = out
        rows.extend({"bench": bench.name, **row} for row in bench.rows(out))

    print(table(rows))
    print(f"\nnot run here: {'; '.join(NOT_RUN.values())}")
    print(json.dumps({
        "summary": rows,
        "results": results,
        "errors": errors,
        "wall_seconds": walls,
        "total_seconds": round(time.monotonic() - began, 1),
        "blackbox_per_cpu_second": BLACKBOX_PER_CPU_SECOND,
        "not_run": NOT_RUN,
    }), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
