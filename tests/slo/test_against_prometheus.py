"""The in-daemon SLI agrees with what a real Prometheus computes from probed_slo_events_total.

Debian's `prometheus` scrapes a running `probed run` every second; the probe's target fails
exactly one request in ten. After a minute, the daemon's own 5m SLI and the PromQL ratio of
`increase(probed_slo_events_total[5m])` must agree within half a percentage point.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.peers.net import free_port

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
async def one_in_ten() -> AsyncIterator[int]:
    """An HTTP target whose every tenth answer is a 503."""
    count = 0

    async def handler(_: web.Request) -> web.Response:
        nonlocal count
        count += 1
        return web.Response(status=503 if count % 10 == 0 else 200, text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing ready on {port}: {log.read_text()}")


Spawn = Callable[[str, list[str], int], subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str], port: int) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(proc)
        wait_listening(port, proc, log)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"), reason="Debian's prometheus is not installed")
async def test_the_daemon_and_prometheus_agree_on_the_5m_sli(tmp_path: Path, one_in_ten: int, spawn: Spawn) -> None:
    assert PROMETHEUS is not None, "CI installs Debian's prometheus (scripts/test)"
    probed_port, prom_port = free_port(), free_port()
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
probes:
  - {{name: web, type: http, target: "http://127.0.0.1:{one_in_ten}/", interval: 100ms, timeout: 90ms}}
slos:
  - {{name: web-availability, probes: [web], objective: 95}}
""")
    spawn("probed", [sys.executable, "-m", "probed", "run", "--config", str(config), "--listen",
                     f"127.0.0.1:{probed_port}", "--state-dir", ""], probed_port)
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: probed
    static_configs: [{{targets: ["127.0.0.1:{probed_port}"]}}]
""")
    spawn("prometheus", [PROMETHEUS, "--config.file=prometheus.yml", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{prom_port}"], prom_port)
    await asyncio.sleep(65)

    promql = ('sum(increase(probed_slo_events_total{slo="web-availability",result="good"}[5m])) / '
              'sum(increase(probed_slo_events_total{slo="web-availability"}[5m]))')
    from_prometheus = float((await asyncio.to_thread(query, prom_port, promql))[0]["value"][1])  # type: ignore[index]
    text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{probed_port}/metrics")
    line = next(ln for ln in text.splitlines()
                if ln.startswith("probed_slo_sli_ratio{") and 'window="5m"' in ln)
    from_daemon = float(line.rsplit(" ", 1)[1])
    assert from_daemon == pytest.approx(0.9, abs=0.01)
    assert abs(from_daemon - from_prometheus) < 0.005, (from_daemon, from_prometheus)
