"""The daemon end to end: `probed run` as a real process, scraped, reloaded and stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.peers.net import closed_port, free_port

SECRET_TOKEN = "tok-9f8e7d6c5b4a"
SECRET_PASSWORD = "pw-0a1b2c3d4e"


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A small HTTP service: /health is fine, /forbidden answers 403."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=403, text="Forbidden")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/forbidden", forbidden)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def write_config(path: Path, target: str, closed: int, extra: str = "") -> None:
    path.write_text(f"""\
labels: {{location: test-lab}}
defaults: {{interval: 200ms, timeout: 150ms}}
probes:
  - name: web-health
    type: http
    target: http://{target}/health?token=${{PROBED_TEST_TOKEN}}
    http: {{headers: {{Authorization: "Bearer ${{PROBED_TEST_TOKEN}}"}}}}
  - name: web-forbidden
    type: http
    target: http://app:{SECRET_PASSWORD}@{target}/forbidden
  - name: closed-port
    type: tcp
    target: 127.0.0.1:{closed}
{extra}""")


class Daemon:
    def __init__(self, proc: subprocess.Popen[str], url: str, log_path: Path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(config: Path, wait_ready: bool = True) -> Daemon:
        port = free_port()
        log_path = tmp_path / f"probed-{port}.log"
        env = {**os.environ, "PROBED_TEST_TOKEN": SECRET_TOKEN}
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "probed.cli", "--log-format", "json", "run", "--config", str(config),
                 "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=log_file, env=env, text=True,
            )
        d = Daemon(proc, f"http://127.0.0.1:{port}", log_path)
        started.append(d)
        if wait_ready:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"probed exited early:\n{d.log}"
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    matches = [v for k, v in metrics.get(name, {}).items() if all((lk, lv) in k for lk, lv in labels.items())]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} series"
    return float(matches[0])


async def wait_for(predicate: Any, session: aiohttp.ClientSession, url: str, seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        status, text = await get(session, url)
        if status == 200:
            last = parse(text) if url.endswith("/metrics") else json.loads(text)
            if predicate(last):
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds}s; last: {str(last)[:2000]}")


async def test_scrape_reload_and_sigterm(daemon_factory: Any, target: str, tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    closed = closed_port()
    write_config(config, target, closed)
    d = daemon_factory(config)
    async with aiohttp.ClientSession() as s:
        assert (await get(s, d.url + "/-/healthy"))[0] == 200
        m = await wait_for(lambda m: len(m.get("probe_success", {})) == 3, s, d.url + "/metrics")
        assert value(m, "probe_success", probe="web-health", type="http", location="test-lab") == 1
        assert value(m, "probe_success", probe="web-forbidden") == 0
        assert value(m, "probe_http_status_code", probe="web-forbidden") == 403
        assert value(m, "probe_success", probe="closed-port", type="tcp") == 0
        assert value(m, "probed_probe_failures_total", probe="closed-port", reason="connection_refused") >= 1
        assert value(m, "probed_probe_failures_total", probe="web-forbidden", reason="http_status") >= 1
        # Both result series exist from the first scrape, so rate() works from the start.
        assert value(m, "probed_probes_total", probe="closed-port", result="success") == 0
        assert value(m, "probed_config_last_reload_successful") == 1
        assert (await get(s, d.url + "/-/ready"))[0] == 200
        api = json.loads((await get(s, d.url + "/api/v1/probes"))[1])
        by_name = {p["name"]: p for p in api["probes"]}
        assert by_name["closed-port"]["last"]["reason"] == "connection_refused"
        assert by_name["web-forbidden"]["last"]["values"]["status_code"] == 403
        history_before = value(m, "probed_probes_total", probe="web-health", result="success")

        # A good reload adds a probe and keeps the history of the unchanged ones.
        write_config(config, target, closed, extra=f"""\
  - name: web-health-2
    type: http
    target: http://{target}/health
""")
        async with s.post(d.url + "/-/reload") as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert (body["added"], body["unchanged"]) == (1, 3)
        m = await wait_for(lambda m: ("probe_success" in m and
                                      any(("probe", "web-health-2") in k for k in m["probe_success"])),
                           s, d.url + "/metrics")
        assert value(m, "probed_probes_total", probe="web-health", result="success") >= history_before

        # A bad reload is refused with every error, and the running config stays.
        config.write_text(config.read_text().replace("interval: 200ms", 'interval: "5 s"'))
        async with s.post(d.url + "/-/reload") as resp:
            body = await resp.json()
            assert resp.status == 400
            assert any('defaults.interval: invalid duration "5 s"' in e or 'invalid duration "5 s"' in e
                       for e in body["errors"]), body
        m = parse((await get(s, d.url + "/metrics"))[1])
        assert value(m, "probed_config_last_reload_successful") == 0
        assert len(m["probe_success"]) == 4

        # SIGHUP reloads too: fix the file and the flag goes back to 1.
        write_config(config, target, closed)
        d.proc.send_signal(signal.SIGHUP)
        m = await wait_for(lambda m: m.get("probed_config_last_reload_successful", {}).get(()) == 1.0,
                           s, d.url + "/metrics")
        assert len(m["probe_success"]) == 3

        everything = (await get(s, d.url + "/metrics"))[1] + (await get(s, d.url + "/api/v1/probes"))[1] + \
            (await get(s, d.url + "/"))[1]

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0
    log = d.log
    assert "closed-port" in log and "connection_refused" in log  # state changes are logged
    for secret in (SECRET_TOKEN, SECRET_PASSWORD):
        assert secret not in everything
        assert secret not in log


def test_a_bad_config_at_start_exits_2_naming_file_line_and_field(daemon_factory: Any, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("probes:\n  - name: x\n    type: tcp\n    target: 127.0.0.1:1\n    interval: 5 s\n")
    d = daemon_factory(config, wait_ready=False)
    assert d.proc.wait(timeout=20) == 2
    assert f'{config}:5:15: probes[0].interval: invalid duration "5 s"' in d.log


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:", ":9470", "127.0.0.1:٣"])
def test_a_listen_address_with_an_impossible_port_exits_2(listen: str, tmp_path: Path) -> None:
    # 99999 used to bind some other port while the log said 99999.
    config = tmp_path / "probes.yaml"
    config.write_text('probes: [{name: a, type: tcp, target: "127.0.0.1:1"}]\n')
    out = subprocess.run([sys.executable, "-m", "probed.cli", "run", "--config", str(config), "--listen", listen,
                          "--state-dir", ""], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert f"probed: --listen must be HOST:PORT with a port from 0 to 65535, got {listen!r}" in out.stderr


async def test_a_config_that_crashed_the_loader_is_a_400_and_a_logged_error(daemon_factory: Any,
                                                                          tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text('probes: [{name: a, type: tcp, target: "127.0.0.1:1", interval: 1h}]\n')
    d = daemon_factory(config)
    async with aiohttp.ClientSession() as s:
        await wait_for(lambda m: "probed_probe_info" in m, s, d.url + "/metrics")
        config.write_text('probes: [{name: a, type: [tcp], target: "127.0.0.1:1", interval: "${PROBED_TEST_TOKEN}"}]\n')
        async with s.post(d.url + "/-/reload") as resp:
            body = await resp.json()
        assert resp.status == 400, body
        assert body["errors"] == [f"{config}:1:26: probes[0].type: expected a string, got a list"]
        m = parse((await get(s, d.url + "/metrics"))[1])
        assert value(m, "probed_config_last_reload_successful") == 0

        config.write_bytes(b'probes: [{name: "\xff", type: tcp, target: "127.0.0.1:1"}]\n')
        d.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda m: "invalid UTF-8" in d.log, s, d.url + "/metrics")
        assert "reload failed" in d.log and "invalid UTF-8 (byte 0xff)" in d.log
        assert (await get(s, d.url + "/-/healthy"))[0] == 200
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0
    assert "Task exception was never retrieved" not in d.log and "Traceback" not in d.log
    assert SECRET_TOKEN not in d.log
