"""The status page as a browser shows it: Debian's headless Chromium loads it from a running daemon.

It must render the SLO section with its burn-down chart and the probes, with nothing blocked by
the page's own Content-Security-Policy and nothing fetched from anywhere but the daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

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
  - {{name: healthy-slo, probes: [self], objective: 99}}
  - {{name: burning-slo, probes: [down], objective: 99.9}}
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
