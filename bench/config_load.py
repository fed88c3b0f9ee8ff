"""Loading a large probes.yaml: how long it takes, and the memory it takes and keeps.

    python -m bench.config_load [--probes 100000]

Writes a config of `--probes` one-line probes as bench.scale writes them (HTTP and TCP, 3:1, a
label each) and loads it once as `probed run` does (`probeset.load_config`: the garbage collector
paused). Prints one JSON line: probes, bytes, `load_seconds` (wall) and `load_cpu_seconds`, the
process's RSS before and after the load and its peak (MiB), and `retained_mib`, what the Config
itself holds (tracemalloc, over a second load: tracing slows it down, so it is not the one timed).
RSS after well above the peak's share of `retained_mib` means freed memory the allocator kept.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.scale import intervals_for, make_config, rss_mib
from probed.runtime.probeset import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=100_000)
    p.add_argument("--no-retained", action="store_true", help="skip the second, traced load")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probes.yaml"
        path.write_text(make_config("http://127.0.0.1:9/health", args.probes,
                                    intervals_for(args.probes, args.probes / 100)))
        size = path.stat().st_size
        gc.collect()
        rss_before = rss_mib()
        started, cpu = time.perf_counter(), time.process_time()
        config = load_config(path)
        load_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        rss_after = rss_mib()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        retained = None
        if not args.no_retained:
            tracemalloc.start()
            again = load_config(path)
            retained, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert len(again.probes) == len(config.probes)

    print(json.dumps({
        "probes": len(config.probes),
        "bytes": size,
        "load_seconds": round(load_s, 2),
        "load_cpu_seconds": round(cpu_s, 2),
        "rss_before_mib": round(rss_before, 1),
        "rss_after_mib": round(rss_after, 1),
        "peak_rss_mib": round(peak, 1),
        "retained_mib": None if retained is None else round(retained / 2**20, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
