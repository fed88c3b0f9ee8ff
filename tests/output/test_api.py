"""/api/v1/slos against a real daemon probing real local ports; the worst probe and its redaction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from probed.output.api import slo_json, worst_probe
from probed.result import ProbeResult, Reason
from probed.runtime.probeset import parse_config
from probed.runtime.state import ProbeState
from probed.slo.engine import SloEngine


async def test_slos_list_and_one(slo_client: TestClient[Any, Any]) -> None:
    response = await slo_client.get("/api/v1/slos")
    assert response.status == 200
    text = await response.text()
    assert "Infinity" not in text and "NaN" not in text
    slos = {s["name"]: s for s in json.loads(text)["slos"]}
    assert list(slos) == ["healthy", "burning", "both"]

    healthy = slos["healthy"]
    assert healthy["spec"] == {
        "service": "<svc>", "description": "", "sli": "availability", "objective_ratio": 0.99,
        "objective_percent": 99.0, "window": "30d", "window_seconds": 30 * 86400.0, "calendar": None,
        "budgeting": "occurrences", "good_ratio": None, "labels": {}, "probes": ["up"]}
    assert healthy["budget_remaining_ratio"] == 1.0
    assert healthy["burning"] is False and healthy["exhaustion_seconds"] is None  # not burning: +Inf
    assert healthy["worst_probe"] is None and healthy["diagnosis"] is None
    assert set(healthy["windows"]) == {"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"}
    five = healthy["windows"]["5m"]
    assert five["total"] >= 5 and five["bad"] == 0 and five["sli"] == 1.0 and five["burn_rate"] == 0.0
    assert healthy["events"]["good"] == five["total"] and healthy["events"]["bad"] == 0
    assert 0 < healthy["coverage_ratio"] <= 1

    burning = slos["burning"]
    assert burning["spec"]["labels"] == {"tier": "1"}
    assert burning["windows"]["1h"]["sli"] == 0.0 and burning["windows"]["1h"]["burn_rate"] == pytest.approx(1000)
    assert burning["budget_remaining_ratio"] == pytest.approx(-999)
    assert burning["burning"] is True and burning["exhaustion_seconds"] == 0.0
    assert burning["worst_probe"]["name"] == "down"
    assert burning["worst_probe"]["reason"] == "connection_refused"
    assert burning["worst_probe"]["last_failure"]["reason"] == "connection_refused"
    assert burning["diagnosis"] == "budget burning because down: connection_refused"

    both = slos["both"]
    assert both["spec"]["window"] == "7d" and "7d" in both["windows"]
    assert both["worst_probe"]["name"] == "down"

    one = await slo_client.get("/api/v1/slos/burning")
    assert one.status == 200
    assert (await one.json())["spec"] == burning["spec"]


async def test_unknown_slo_is_a_json_404(slo_client: TestClient[Any, Any]) -> None:
    response = await slo_client.get("/api/v1/slos/nope")
    assert response.status == 404
    assert await response.json() == {"error": "no such SLO"}


NOW = 1_710_000_030.0

SLO_CONFIG = """\
probes:
  - {name: api-health, type: tcp, target: "127.0.0.1:1", interval: 10s}
  - {name: api-checkout, type: tcp, target: "127.0.0.1:2", interval: 10s}
slos:
  - {name: checkout, probes: [api-health, api-checkout], objective: 99.9}
"""


def test_worst_probe_is_the_one_with_most_bad_events_and_its_dominant_reason_redacted() -> None:
    config = parse_config(SLO_CONFIG, "probes.yaml", {})
    secret = frozenset({"hunter22"})
    states = {s.name: ProbeState.new(s, secret) for s in config.probes}
    health, checkout = states["api-health"], states["api-checkout"]
    health.record(ProbeResult.fail(Reason.TIMEOUT, "timed out"), ts=NOW - 100)
    for i in range(3):  # older than an hour: not counted
        health.record(ProbeResult.fail(Reason.TIMEOUT, "timed out"), ts=NOW - 4000 + i)
    checkout.record(ProbeResult.fail(Reason.TIMEOUT, "timed out"), ts=NOW - 300)
    for i in range(2):
        checkout.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503 from https://u:hunter22@x/",
                                         values={"status_code": 503}), ts=NOW - 60 + i)
    worst = worst_probe(config.slos[0], states, NOW)
    assert worst == {
        "name": "api-checkout", "bad_events_1h": 3, "attempts_1h": 3, "reason": "http_status", "reason_count": 2,
        "last_failure": {"reason": "http_status", "detail": "HTTP 503 from https://u:***@x/", "status_code": 503,
                         "timestamp": NOW - 59}}
    report = SloEngine().evaluate(config.slos[0], states, NOW)
    body = slo_json(report, states, NOW)
    assert body["diagnosis"] == "budget burning because api-checkout: http_status 503"
    assert "hunter22" not in json.dumps(body)


def test_within_budget_says_so() -> None:
    config = parse_config(SLO_CONFIG.replace("99.9", "50"), "probes.yaml", {})
    states = {s.name: ProbeState.new(s) for s in config.probes}
    states["api-health"].record(ProbeResult.ok(), ts=NOW - 20)
    states["api-health"].record(ProbeResult.fail(Reason.TIMEOUT, "timed out"), ts=NOW - 10)
    states["api-health"].record(ProbeResult.ok(), ts=NOW - 5)
    body = slo_json(SloEngine().evaluate(config.slos[0], states, NOW), states, NOW)
    assert body["diagnosis"] == "within budget over 1h; most bad events from api-health: timeout"
    # The last attempt succeeded; the last failure is still what went wrong, and when.
    assert body["worst_probe"]["last_failure"] == {"reason": "timeout", "detail": "timed out", "status_code": None,
                                                   "timestamp": NOW - 10}


def test_a_flaky_probe_that_just_succeeded_still_names_its_failures_status_code() -> None:
    config = parse_config(SLO_CONFIG, "probes.yaml", {})
    states = {s.name: ProbeState.new(s) for s in config.probes}
    flaky = states["api-checkout"]
    for i in range(30):
        flaky.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503", values={"status_code": 503}), ts=NOW - 60 + i)
        flaky.record(ProbeResult.ok(values={"status_code": 200}), ts=NOW - 30 + i)
    body = slo_json(SloEngine().evaluate(config.slos[0], states, NOW), states, NOW)
    assert body["diagnosis"] == "budget burning because api-checkout: http_status 503"
