"""A soak: a daemon under hostile targets, reloads and scrape crowds, measured at start and end.

    python -m bench.soak [--probes 2000] [--minutes 30] [--reloads 1000] [--scrapers 20]

Runs `probed run` as its own process over `--probes` probes of every type the peers speak
(bench/soak_peers.py): http, tcp and tls (about two thirds of them) against a healthy web server,
a gzip bomb, a closed port and hostile peers (garbage, reset, silent, a one-byte-a-second drip);
dns over UDP against a healthy server, garbage, a header whose counts lie and silence, and over
TCP against garbage, a reset and a length with nothing behind it; postgres, mysql and redis
against garbage, a frame whose length lies in their own protocol, silence and a reset.
Meanwhile it flips one probe's header and POSTs /-/reload `--reloads` times spread over the run,
and every 10 s sends `--scrapers` concurrent gzip scrapes.

It samples the daemon's RSS, open file descriptors and threads (/proc), asyncio tasks and frozen
objects (/metrics) over the first and the last minute, and the scheduler lateness p99 over each
(probed_scheduler_lateness_seconds); prints each window's figures, with the reloads done by
then, as it ends (`start`, `end`: one JSON line each), then one JSON summary. A long-running
sidecar stays flat: the exit status is 1, with the reasons on stderr, when the end exceeds the
start by more than BOUNDS allow (or a reload failed, or the daemon died), else 0.
Only loopback addresses are ever targets; every loop is bounded by the duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.servers import free_port
from bench.soak_peers import HOST, config, peers

BOUNDS: dict[str, tuple[float, float]] = {
    # figure: (relative growth, absolute growth) allowed from start to end, whichever is larger.
    # Tasks and FDs move with the attempts in flight at the moment of a sample, so small runs get
    # an absolute allowance; RSS and frozen objects only grow when something is kept.
    "rss_mib": (0.15, 0.0),
    "fds": (0.10, 20),
    "tasks": (0.05, 20),
    "threads": (0.0, 8),
    "frozen_objects": (0.15, 0.0),
}


# --------------------------------------------------------------------------- measuring


def proc_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
        return await resp.text()


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of an unlabelled histogram in exposition text."""
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return out


def p99(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float | None:
    deltas = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = deltas[-1][1] if deltas else 0
    if not total:
        return None
    for le, count in deltas:
        if count >= 0.99 * total:
            return le
    return None


def value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def minute(session: aiohttp.ClientSession, url: str, pid: int, seconds: float) -> dict[str, Any]:
    """Figures over one window: lateness p99 from the histogram's growth, the rest sampled."""
    first = await scrape(session, url)
    samples, tasks = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(proc_figures(pid))
        if len(samples) % 5 == 1:  # every 10 s: tasks swing with the attempts in flight
            tasks.append(value(await scrape(session, url), "probed_event_loop_tasks") or 0.0)
        await asyncio.sleep(2)
    last = await scrape(session, url)
    lateness = p99(histogram(first, "probed_scheduler_lateness_seconds"),
                   histogram(last, "probed_scheduler_lateness_seconds"))
    return {
        "rss_mib": round(max(s["rss_mib"] for s in samples), 1),
        "fds": max(int(s["fds"]) for s in samples),
        "threads": max(int(s["threads"]) for s in samples),
        "tasks": statistics.median(tasks) if tasks else value(last, "probed_event_loop_tasks"),
        "frozen_objects": value(last, "probed_gc_frozen_objects"),
        "lateness_p99_s": lateness,
    }


def excesses(start: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """Each figure that grew past its bound, said as a reason."""
    out = []
    for name, (relative, absolute) in BOUNDS.items():
        before, after = start.get(name), end.get(name)
        if before is None or after is None:
            out.append(f"{name}: not measured (start {before}, end {after})")
            continue
        allowed = max(before * relative, absolute)
        if after - before > allowed:
            out.append(f"{name} grew from {before:g} to {after:g}, more than the {allowed:g} allowed "
                       f"(+{relative:.0%} or +{absolute:g}, whichever is larger)")
    return out


async def soak(probes: int, minutes: float, reloads: int, scrapers: int) -> dict[str, Any]:
    async with peers() as ports:
        with tempfile.TemporaryDirectory(prefix="probed-soak-") as tmp:
            path = Path(tmp) / "probes.yaml"
            path.write_text(config(ports, probes, 0))
            port = free_port()
            url = f"http://{HOST}:{port}"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "probed", "run", "--config", str(path), "--listen", f"{HOST}:{port}",
                "--state-dir", tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                return await _drive(proc, url, path, ports, probes, minutes, reloads, scrapers)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _drive(proc: asyncio.subprocess.Process, url: str, path: Path, ports: dict[str, int], probes: int,
                 minutes: float, reloads: int, scrapers: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.2)
        started = time.monotonic()
        total_s = minutes * 60
        window = min(60.0, total_s / 4)
        done = {"reloads": 0, "reload_failures": 0, "scrapes": 0}

        async def reloading() -> None:
            gap = max(total_s - 2 * window, 1) / max(reloads, 1)
            for i in range(reloads):
                if time.monotonic() - started > total_s - window:
                    break
                await asyncio.to_thread(path.write_text, config(ports, probes, i + 1))
                async with session.post(f"{url}/-/reload") as resp:
                    done["reloads"] += 1
                    done["reload_failures"] += resp.status != 200
                await asyncio.sleep(gap)

        async def scraping() -> None:
            while time.monotonic() - started < total_s:
                await asyncio.gather(*(scrape(session, url) for _ in range(scrapers)), return_exceptions=True)
                done["scrapes"] += scrapers
                await asyncio.sleep(10)

        load = [asyncio.create_task(reloading()), asyncio.create_task(scraping())]
        start = await minute(session, url, proc.pid, window)
        start["reloads_done"] = done["reloads"]
        print(json.dumps({"at": "start", **start}), flush=True)
        await asyncio.sleep(max(0.0, total_s - 2 * window - (time.monotonic() - started)))
        end = await minute(session, url, proc.pid, window)
        end["reloads_done"] = done["reloads"]
        print(json.dumps({"at": "end", **end}), flush=True)
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
        alive = proc.returncode is None
        failed = excesses(start, end)
        if done["reload_failures"]:
            failed.append(f"{done['reload_failures']} of {done['reloads']} reloads failed")
        if not alive:
            failed.append(f"the daemon exited with {proc.returncode}")
        return {"probes": probes, "minutes": minutes, **done, "start": start, "end": end,
                "rss_growth": round(end["rss_mib"] / start["rss_mib"] - 1, 3),
                "fd_growth": end["fds"] - start["fds"], "alive": alive, "bounds": BOUNDS, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--reloads", type=int, default=1000)
    p.add_argument("--scrapers", type=int, default=20)
    args = p.parse_args(argv)
    summary = asyncio.run(soak(args.probes, args.minutes, args.reloads, args.scrapers))
    print(json.dumps(summary))
    for reason in summary["failed"]:
        print(f"soak: {reason}", file=sys.stderr)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
