"""A soak: a daemon under hostile targets, reloads and scrape crowds, measured at start and end.

    python -m bench.soak [--probes 2000] [--minutes 30] [--reloads 1000] [--scrapers 20]

Runs `probed run` as its own process over `--probes` probes of every network type against a mix
of local peers: a healthy HTTP server, and hostile ones that speak garbage, reset, never answer,
drip one byte a second, or send a gzip bomb; plus a closed port. Meanwhile it flips one probe's
header and POSTs /-/reload `--reloads` times spread over the run, and every 10 s sends `--scrapers`
concurrent gzip scrapes. It samples the daemon's RSS, open file descriptors, asyncio tasks and
threads from /proc and /metrics in the first and the last minute, and the scheduler lateness
p99 over each of those minutes (from probed_scheduler_lateness_seconds). Prints one JSON object;
"flat" is what a long-running sidecar needs: end within a few percent of start.
Only loopback addresses are ever targets; every loop is bounded by the duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.targets import free_port

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- the peers


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(os.urandom(512))
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await reader.read()  # until the prober gives up and closes
    writer.close()


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        for _ in range(120):  # bounded: two minutes at most
            writer.write(b"H")
            await writer.drain()
            await asyncio.sleep(1)
    writer.close()


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(bytes(64 << 20)) + packer.flush()


@contextlib.asynccontextmanager
async def peers() -> AsyncIterator[dict[str, int]]:
    """Local peers by name -> port."""
    bomb = _bomb()

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def bombed(_: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/bomb", bombed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    servers = {name: await asyncio.start_server(handler, HOST, 0) for name, handler in (
        ("garbage", _garbage), ("reset", _reset), ("silent", _silent), ("drip", _drip))}
    ports = {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    ports["web"] = runner.addresses[0][1]
    ports["closed"] = free_port()
    try:
        yield ports
    finally:
        for s in servers.values():
            s.close()
        await runner.cleanup()


def config(ports: dict[str, int], probes: int, flip: int) -> str:
    """`probes` probes cycling through the kinds below; one header value changes with `flip`."""
    web_url, kinds = f"http://{HOST}:{ports['web']}", []
    for peer in ("garbage", "reset", "silent", "drip", "closed"):
        kinds += [("http", f"http://{HOST}:{ports[peer]}/"), ("tcp", f"{HOST}:{ports[peer]}"),
                  ("tls", f"{HOST}:{ports[peer]}")]
    kinds += [("http", f"{web_url}/health")] * 10 + [("http", f"{web_url}/bomb"), ("tcp", f"{HOST}:{ports['web']}")]
    lines = ["defaults: {interval: 5s, timeout: 2s}", "probes:"]
    for i in range(probes):
        kind, target = kinds[i % len(kinds)]
        extra = f', http: {{headers: {{X-Soak: "{flip}"}}}}' if i == 0 else ""
        lines.append(f'  - {{name: p{i}, type: {kind}, target: "{target}"{extra}}}')
    lines += ["slos:", "  - {name: healthy, probes: [p15, p16, p17], objective: 99}"]
    return "\n".join(lines) + "\n"


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
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(proc_figures(pid))
        await asyncio.sleep(2)
    last = await scrape(session, url)
    lateness = p99(histogram(first, "probed_scheduler_lateness_seconds"),
                   histogram(last, "probed_scheduler_lateness_seconds"))
    return {
        "rss_mib": round(max(s["rss_mib"] for s in samples), 1),
        "fds": max(int(s["fds"]) for s in samples),
        "threads": max(int(s["threads"]) for s in samples),
        "tasks": value(last, "probed_event_loop_tasks"),
        "lateness_p99_s": lateness,
        "frozen_objects": value(last, "probed_gc_frozen_objects"),
    }


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
        await asyncio.sleep(max(0.0, total_s - 2 * window - (time.monotonic() - started)))
        end = await minute(session, url, proc.pid, window)
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
        return {"probes": probes, "minutes": minutes, **done, "start": start, "end": end,
                "rss_growth": round(end["rss_mib"] / start["rss_mib"] - 1, 3),
                "fd_growth": end["fds"] - start["fds"], "alive": proc.returncode is None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--reloads", type=int, default=1000)
    p.add_argument("--scrapers", type=int, default=20)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(soak(args.probes, args.minutes, args.reloads, args.scrapers))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
