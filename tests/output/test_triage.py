"""The status page and the probe listing for triage: worst first, how long, how fresh, filters.

A daemon runs real probes against nothing (long intervals, so the recorded history is ours);
the test writes each probe's history into its state, as the scheduler would, and reads the page
and the API through a real HTTP client.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from probed.output.web import make_app
from probed.result import ProbeResult, Reason
from probed.runtime.daemon import Daemon
from tests.peers.net import closed_port

CONFIG = """\
probes:
  - {{name: steady, type: tcp, target: "127.0.0.1:{port}", interval: 1h, labels: {{team: web}}}}
  - {{name: flaky, type: tcp, target: "127.0.0.1:{port}", interval: 1h, labels: {{team: web}}}}
  - {{name: down, type: http, target: "http://127.0.0.1:{port}/", interval: 1h}}
  - {{name: expiring, type: tls, target: "127.0.0.1:{port}", interval: 1h}}
  - {{name: new, type: tcp, target: "127.0.0.1:{port}", interval: 1h}}
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Daemon]]:
    path = tmp_path / "probes.yaml"
    path.write_text(CONFIG.format(port=closed_port()))
    daemon = Daemon(str(path))
    await daemon.start()
    try:
        now = time.time()
        for state in daemon.states.values():  # forget the start-up attempts: the history is ours
            state.ring.minutes.last = state.ring.hours.last = -(2**62)
            state.last = None
        states = daemon.states
        for i in range(60):  # the last hour, one attempt a minute
            ts = now - 3600 + i * 60
            states["steady"].record(ProbeResult.ok(duration_s=0.002), ts=ts)
            # 47% failing over the hour, but its last attempt succeeded
            states["flaky"].record(ProbeResult.fail(Reason.TIMEOUT, "timed out") if i % 2 and i < 57
                                   else ProbeResult.ok(duration_s=0.003), ts=ts)
        states["down"].record(ProbeResult.ok(duration_s=0.01), ts=now - 700)
        for ts in (now - 600, now - 300, now - 60):
            states["down"].record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503", values={"status_code": 503}),
                                  ts=ts)
        states["expiring"].record(ProbeResult.warn(Reason.CERT_EXPIRING, "expires in 9 days"), ts=now - 30)
        async with TestClient(TestServer(make_app(daemon))) as c:
            yield c, daemon
    finally:
        await daemon.shutdown()


def rows(page: str) -> list[str]:
    return re.findall(r"<tr class='(\w+)'><td><a href='/probes/([^']+)'>", page)


async def test_failing_first_then_warnings_then_pending_then_the_flakiest_ok(
        client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    page = await (await c.get("/")).text()
    assert rows(page) == [("fail", "down"), ("warn", "expiring"), ("pending", "new"), ("ok", "flaky"),
                          ("ok", "steady")]
    assert "1 failing" in page and "1 warning" in page and "1 pending" in page and "2 ok" in page


async def test_a_row_says_since_when_it_fails_and_how_old_its_last_check_is(
        client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    page = await (await c.get("/")).text()
    down = page[page.index("/probes/down"):page.index("</tr>", page.index("/probes/down"))]
    assert "10m ago" in down or "9m ago" in down  # failing since the first of three failures
    assert "1m ago" in down or "59s ago" in down  # the last check
    assert "team=web" in page
    assert "HTTP 503" in page  # the failing probe's detail


async def test_a_window_not_yet_full_says_how_much_it_holds(client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    page = await (await c.get("/")).text()
    steady = page[page.index("/probes/steady"):page.index("</tr>", page.index("/probes/steady"))]
    # A day-long window holding an hour of attempts: not "100% (1d)" as if it were a day's.
    assert "100.00% <small>of 60 over" in steady


async def test_the_detail_page_has_phases_percentiles_and_the_last_failure(
        client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    resp = await c.get("/probes/flaky")
    page = await resp.text()
    assert resp.status == 200 and "<h1>flaky</h1>" in page
    assert "Last failure" in page and "timed out" in page
    assert re.search(r"<th>timeout</th><td>28</td><td>28</td>", page), page[-1500:]
    assert (await c.get("/probes/nope")).status == 404


async def test_the_api_filters_by_state_and_type_and_pages(client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    failing = json.loads(await (await c.get("/api/v1/probes?state=failing")).text())
    assert [p["name"] for p in failing["probes"]] == ["down"] and failing["total"] == 1
    assert failing["probes"][0]["failing_since"] is not None
    tcp = json.loads(await (await c.get("/api/v1/probes?type=tcp&limit=2&offset=1")).text())
    assert tcp["total"] == 3 and [p["name"] for p in tcp["probes"]] == ["new", "steady"]
    assert (await c.get("/api/v1/probes?state=broken")).status == 400
    assert (await c.get("/api/v1/probes?limit=-1")).status == 400


async def test_the_page_refreshes_every_half_minute_not_every_five_seconds(
        client: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, _ = client
    page = await (await c.get("/")).text()
    assert '<meta http-equiv="refresh" content="30">' in page
