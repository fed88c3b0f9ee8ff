"""Cost of the ring-buffer core: ns per record, and reading percentiles for every probe.

    python -m bench.ring [--probes 10000] [--records 1000000]

Prints one JSON object: ns_per_record (the hot path's only work after a probe), records per
CPU-second, µs per percentile read (p50/p90/p95/p99 over 1m, 5m, 1h) and the time to refresh
every probe's percentiles (what the background summarizer spends per cycle), plus memory per probe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc

from probed.runtime.ring import ProbeRing, raw_capacity_for

WINDOWS = [60.0, 300.0, 3600.0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--interval", type=float, default=10.0, help="probe interval, sizes the raw ring")
    p.add_argument("--latency-threshold", action="store_true",
                   help="rings of probes with a latency threshold of their own (a third bucket row)")
    args = p.parse_args(argv)

    capacity = raw_capacity_for(args.interval)
    tracemalloc.start()
    rings = [ProbeRing(capacity, 0.3, interval_s=args.interval, fast_row=args.latency_threshold)
             for _ in range(args.probes)]
    mem_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Record: round-robin over all rings, as a scheduler would, one hour of samples.
    now = time.time()
    n = args.records
    count = len(rings)
    # Arguments are precomputed so the figure is the record itself, not the benchmark's arithmetic.
    per_ring = max(1, n // count)
    plan = [(now - 3600 + k * args.interval, (k % 997) / 1000.0, 0 if k % 50 else 2) for k in range(per_ring)]
    n = per_ring * count
    start = time.process_time()
    for ts, latency, reason in plan:
        for ring in rings:
            ring.record(ts, latency, reason)
    record_cpu = time.process_time() - start

    start = time.process_time()
    for ring in rings:
        ring.percentiles(now, WINDOWS)
    read_cpu = time.process_time() - start

    start = time.process_time()
    for ring in rings:
        ring.window_counts(now, 30 * 86400)
    window_cpu = time.process_time() - start

    print(json.dumps({
        "probes": args.probes,
        "raw_capacity": capacity,
        "ns_per_record": round(record_cpu / n * 1e9, 1),
        "records_per_cpu_second": round(n / record_cpu),
        "us_per_percentile_read": round(read_cpu / count * 1e6, 1),
        "all_probes_percentiles_ms": round(read_cpu * 1000, 1),
        "all_probes_30d_window_ms": round(window_cpu * 1000, 1),
        "kib_per_probe": round(mem_bytes / count / 1024, 1),
        "fast_row": args.latency_threshold,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
