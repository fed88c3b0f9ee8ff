"""Cost of SLOs and their persistence at scale: an evaluation pass, a checkpoint, a restore.

    python -m bench.state [--probes 10000] [--slos 1000] [--interval 30]

Builds `--probes` probes whose minute and hour buckets are full (31 days of history) and
`--slos` SLOs over them (each over probes/slos probes; every tenth one with timeslices), then
measures on a running event loop, with a ticker that records how late the loop answers:

* SLO evaluation passes (sliced like the daemon's): CPU, and the longest the loop was held, of
  the first pass after a start and of a later one (the steady cost; the CPU includes the ticker's);
* one checkpoint: the sliced snapshot on the loop, then compress + write + fsync in a thread:
  CPU of each, the longest stall, and the average share of one core at `--interval`;
* a restore: reading the file and giving every probe and SLO its state back, as at start-up.

Prints one JSON object. Goals (issue 9): checkpoint < 3% of one core averaged over its period,
no stall over 10 ms, restore < 2 s at 10,000 probes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from array import array
from pathlib import Path

from probed.runtime import collector
from probed.runtime.probeset import parse_config
from probed.runtime.ring import HOUR_SLOTS, MINUTE_SLOTS
from probed.runtime.state import ProbeState
from probed.slo import checkpoint
from probed.slo.engine import SloEngine


def config_text(probes: int, slos: int) -> str:
    lines = ["probes:"]
    lines += [f'  - {{name: p{i}, type: tcp, target: "127.0.0.1:{1024 + i % 60000}", interval: 30s}}'
              for i in range(probes)]
    per = max(1, probes // max(slos, 1))
    lines.append("slos:")
    for j in range(slos):
        names = ", ".join(f"p{(j * per + k) % probes}" for k in range(per))
        budgeting = ", budgeting: timeslices" if j % 10 == 0 else ""
        lines.append(f"  - {{name: s{j}, probes: [{names}], objective: 99.9{budgeting}}}")
    return "\n".join(lines) + "\n"


def fill(state: ProbeState, now: float, rng: random.Random) -> None:
    """31 days of hours and 6 hours of minutes at one attempt per 30 s, a few failures.

    Writes as many rows as each tier keeps: without a latency threshold a tier keeps two
    (attempts, failures) and derives the fast row, with one it keeps three."""
    ring = state.ring
    minute, hour = int(now) // 60, int(now) // 3600
    minute_failures = [1 if rng.random() < 0.01 else 0 for _ in range(MINUTE_SLOTS)]
    hour_failures = [rng.randrange(3) for _ in range(HOUR_SLOTS)]
    for tier, per, last, failed in ((ring.minutes, 2, minute, minute_failures), (ring.hours, 120, hour, hour_failures)):
        code = tier.block.typecode
        attempts = array(code, [per] * tier.size)
        failures = array(code, failed)
        block = attempts + failures
        if tier.rows_kept == 3:
            block += array(code, (a - f for a, f in zip(attempts, failures, strict=True)))
        tier.block[:] = block
        tier.last = last
    ring.successes_total, ring.failures_total = 89_000, 1_000


class Ticker:
    """Wakes every millisecond and keeps the longest it had to wait beyond that."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)

    def __enter__(self) -> Ticker:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def cpu() -> float:
    """Process CPU of all threads (the write runs in a worker thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(probes: int, slos: int, interval: float) -> dict[str, object]:
    cfg = parse_config(config_text(probes, slos), "bench.yaml", {})
    now = time.time()
    rng = random.Random(1)
    states = {s.name: ProbeState.new(s) for s in cfg.probes}
    for state in states.values():
        fill(state, now, rng)
    engine = SloEngine()
    engine.configure(cfg.slos)
    collector.settle()  # as the daemon does once a config is applied
    await asyncio.sleep(0.01)

    # The first pass after a start does more: it fills every timeslice SLO's ledger from the six
    # hours of minutes the rings keep. Every later one (one each 10 s) is the steady cost.
    with Ticker() as tick:
        c0 = cpu()
        await engine.run(engine.specs, states)
        first_cpu, first_stall = cpu() - c0, tick.worst
    with Ticker() as tick:
        c0, w0 = cpu(), time.perf_counter()
        await engine.run(engine.specs, states)
        evaluate_cpu, evaluate_wall, evaluate_stall = cpu() - c0, time.perf_counter() - w0, tick.worst

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.ckpt"
        with Ticker() as tick:
            c0 = cpu()
            snap = await checkpoint.snapshot(states, engine)
            snapshot_cpu, snapshot_stall = cpu() - c0, tick.worst
            c0, w0 = cpu(), time.perf_counter()
            size = await asyncio.to_thread(checkpoint.write, path, snap)
            write_cpu, write_wall, write_stall = cpu() - c0, time.perf_counter() - w0, tick.worst

        fresh = {s.name: ProbeState.new(s) for s in cfg.probes}
        w0 = time.perf_counter()
        restorer = checkpoint.load(path)
        assert restorer is not None
        for state in fresh.values():
            restorer.restore_probe(state)
        restorer.restore_slos(SloEngine())
        restore_wall = time.perf_counter() - w0
        assert restorer.restored == probes

    checkpoint_cpu = snapshot_cpu + write_cpu
    return {
        "probes": probes, "slos": slos, "checkpoint_interval_s": interval,
        "evaluate_first_cpu_s": round(first_cpu, 3), "evaluate_first_max_stall_ms": round(first_stall * 1000, 2),
        "evaluate_cpu_s": round(evaluate_cpu, 3), "evaluate_wall_s": round(evaluate_wall, 3),
        "evaluate_max_stall_ms": round(evaluate_stall * 1000, 2),
        "evaluate_core_share_at_10s": round(evaluate_cpu / 10.0, 4),
        "checkpoint_snapshot_cpu_s": round(snapshot_cpu, 3), "checkpoint_write_cpu_s": round(write_cpu, 3),
        "checkpoint_write_wall_s": round(write_wall, 3),
        "checkpoint_max_stall_ms": round(max(snapshot_stall, write_stall) * 1000, 2),
        "checkpoint_core_share": round(checkpoint_cpu / interval, 4),
        "checkpoint_bytes": size, "checkpoint_bytes_per_probe": round(size / probes),
        "restore_wall_s": round(restore_wall, 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--slos", type=int, default=1_000)
    p.add_argument("--interval", type=float, default=checkpoint.DEFAULT_INTERVAL_S,
                   help="checkpoint interval the core share is averaged over")
    args = p.parse_args(argv)
    try:
        import uvloop  # optional: the daemon runs on it where it is installed

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        print(json.dumps(runner.run(measure(args.probes, args.slos, args.interval))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
