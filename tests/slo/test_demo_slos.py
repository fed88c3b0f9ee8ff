"""`probed demo` shows both kinds of SLO on its first run: one within budget, one burning."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import urllib.request
from typing import Any

import pytest

from probed import demo
from tests.peers.net import free_port

random_uniform = random.uniform


class OneInTen:
    """The demo peer's dice, loaded: the flaky endpoint's first answer and every tenth after it
    is a 503 (about 10%, as the demo says), so the test does not wait on luck."""

    def __init__(self) -> None:
        self._draws = itertools.cycle([0.05] + [0.5] * 9)

    def random(self) -> float:
        return next(self._draws)

    def uniform(self, low: float, high: float) -> float:
        return random_uniform(low, high)


def slos(port: int) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/slos", timeout=5) as resp:
        return {s["name"]: s for s in json.loads(resp.read())["slos"]}


async def test_the_demo_has_a_healthy_slo_and_a_burning_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "random", OneInTen())
    port = free_port()
    running = asyncio.create_task(demo.run_demo(f"127.0.0.1:{port}", seconds=120))
    try:
        deadline = time.monotonic() + 40
        while True:  # the engine evaluates every 10 s: wait for a pass that saw attempts of both
            assert not running.done(), running.result()
            with contextlib.suppress(OSError):
                found = await asyncio.to_thread(slos, port)
                if all(s["windows"]["5m"]["total"] > 0 for s in found.values()) and \
                        found["demo-flaky-availability"]["windows"]["5m"]["bad"] > 0:
                    break
            assert time.monotonic() < deadline, "no SLO evaluation with attempts of both SLOs in 40 s"
            await asyncio.sleep(0.5)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    assert set(found) == {"demo-availability", "demo-flaky-availability"}
    healthy, burning = found["demo-availability"], found["demo-flaky-availability"]
    assert healthy["windows"]["5m"]["bad"] == 0 and healthy["budget_remaining_ratio"] == 1.0
    assert healthy["burning"] is False
    # 10% bad against a 0.1% budget: a burn rate around 100, the budget already overspent
    assert burning["windows"]["5m"]["burn_rate"] > 14.4
    assert burning["burning"] is True and burning["budget_remaining_ratio"] < 0
    assert burning["diagnosis"].startswith("budget burning because demo-flaky: http_status")
