"""The status page as a browser shows it: Debian's headless Chromium loads it from a running daemon.

It must render the SLO section with its burn-down chart and the probes, with nothing blocked by
the page's own Content-Security-Policy and nothing fetched from anywhere but the daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.peers.net import closed_port, free_port

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (scripts/test installs it)")


@pytest.fixture
def daemon_url(tmp_path: Path) -> Iterator[str]:
    port, dead = free_port(), closed_port()
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
probes:
  - {{name: self, type: http, target: "http://127.0.0.1:{port}/-/healthy", interval: 200ms}}
  - {{name: down, type: tcp, target: "127.0.0.1:{dead}", interval: 200ms}}
slos:
  - {{name: healthy-slo-of-the-checkout-api, probes: [self], objective: 99}}
  - {{name: burning-slo-of-checkout-through-the-cdn, service: checkout-through-the-cdn, probes: [down],
      objective: 99.9}}
""")
    log = (tmp_path / "probed.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "probed", "run", "--config", str(config), "--listen",
                             f"127.0.0.1:{port}", "--state-dir", ""], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "probed.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.5)  # a few attempts, and the SLO engine's first pass
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "CI installs Debian's chromium (scripts/test)"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=90)


def test_the_status_page_renders_slos_with_their_chart_and_the_probes(tmp_path: Path, daemon_url: str) -> None:
    done = chromium(tmp_path, "--dump-dom", daemon_url)
    dom = done.stdout
    assert "<h2>SLOs</h2>" in dom and "<h2>Probes</h2>" in dom, dom[:2000]
    assert dom.index("burning-slo") < dom.index("<h2>Probes</h2>")
    assert len(re.findall(r"<svg\b", dom)) >= 2, "one burn-down chart per SLO"
    assert "connection_refused" in dom
    # Nothing the page asked for was refused by its own policy, and it asked nothing of the outside.
    assert "Refused to" not in done.stderr, done.stderr[-3000:]
    fetched = re.findall(r'\b(?:src|href|action)="([^"]*)"', dom) + re.findall(r"url\(([^)]*)\)", dom)
    assert all(u.startswith(("/", "#", daemon_url)) for u in fetched), fetched


def test_the_screenshot_is_a_page_not_a_blank(tmp_path: Path, daemon_url: str) -> None:
    shot = tmp_path / "status.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,800", "--hide-scrollbars", daemon_url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # Decode the image rows (8-bit RGB(A), filter bytes) and count distinct colours: a blank page has one.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 800)
    idat = b"".join(data[i + 8:i + 8 + int.from_bytes(data[i:i + 4], "big")]
                    for i in _chunks(data, b"IDAT"))
    raw = zlib.decompress(idat)
    assert len(set(raw[::97])) > 8, "the screenshot is (nearly) one colour"


def _chunks(data: bytes, kind: bytes) -> Iterator[int]:
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == kind:
            yield pos
        pos += 12 + length


def layout(tmp_path: Path, url: str, expression: str, width: int = 1200) -> object:
    """`expression` evaluated in the loaded page, through the DevTools protocol (the page's own
    policy forbids scripts; DevTools is the browser measuring itself)."""
    assert CHROMIUM is not None, "CI installs Debian's chromium (scripts/test)"
    log = tmp_path / "chromium-devtools.log"
    with log.open("wb") as stderr:  # a file, not a pipe: nobody reads a pipe once DevTools is found
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile-devtools'}", "--remote-debugging-port=0",
             f"--window-size={width},800", "--hide-scrollbars", url],
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        return asyncio.run(_evaluate(int(m.group(1)), expression))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _evaluate(port: int, expression: str) -> object:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 60
        while True:  # the page target appears, then loads
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            if pages:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            for ident in itertools.count(1):
                ready = "document.readyState === 'complete' && document.querySelector('svg.burndown') !== null"
                await ws.send_json({"id": ident, "method": "Runtime.evaluate",
                                    "params": {"expression": f"({ready}) ? ({expression}) : null",
                                               "returnByValue": True}})
                while (reply := await ws.receive_json()).get("id") != ident:
                    pass
                result = reply["result"]["result"].get("value")
                if result is not None:
                    return result
                assert time.monotonic() < deadline, "the page did not load"
                await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


def test_the_burn_down_charts_fit_a_1200_pixel_window(tmp_path: Path, daemon_url: str) -> None:
    """The chart's right edge is its newest hour: clipped, the page hides what is happening now.
    Measured once the SLOs have figures (the engine's second pass, 10 s in): wide ones like
    "-99900.0%" and "1000.00x" are what push the chart column out."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(daemon_url + "api/v1/slos", timeout=5) as resp:
            if all(s["budget_remaining_ratio"] is not None for s in json.loads(resp.read())["slos"]):
                break
        assert time.monotonic() < deadline, "no SLO evaluation with data in 30 s"
        time.sleep(0.5)
    found = layout(tmp_path, daemon_url, "JSON.stringify({width: document.documentElement.clientWidth, "
                   "scroll: document.documentElement.scrollWidth, charts: [...document.querySelectorAll("
                   "'svg.burndown')].map(s => [s.getBoundingClientRect().left, s.getBoundingClientRect().right])})")
    assert isinstance(found, str)
    page = json.loads(found)
    assert len(page["charts"]) == 2
    assert page["scroll"] <= page["width"] == 1200, page
    for left, right in page["charts"]:
        assert right <= page["width"] and right - left >= 150, page
