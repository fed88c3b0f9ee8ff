"""State-change logging is bounded per probe (issue 12 item 14, issue 13 item 8).

A garbage-speaking server that alternates between `protocol_error` and `connection_reset` wrote
1,989 "failing -> failing" lines in 5 minutes; the demo's flaky probe ~28 lines in 70 s.
"""

from __future__ import annotations

import logging
import random

import pytest

from probed.config.model import ProbeSpec
from probed.result import ProbeResult, Reason
from probed.runtime.state import LOG_BURST, LOG_REFILL_S, ProbeState


def new_state(name: str = "p") -> ProbeState:
    return ProbeState.new(ProbeSpec(name=name, type="http", target="http://127.0.0.1:1/", interval=0.15,
                                    timeout=0.1, labels={}, settings=None))


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "probed.probe"]


FLIP = (ProbeResult.fail(Reason.PROTOCOL_ERROR, "not a valid HTTP response"),
        ProbeResult.fail(Reason.CONNECTION_RESET, "server closed the connection"))


def test_a_reason_flipping_every_attempt_logs_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "probed.probe")
    state = new_state()
    # 5 minutes at one attempt every 150 ms: 2,000 changes.
    for i in range(2000):
        state.record(FLIP[i % 2], ts=1000.0 + i * 0.15)
    logged = lines(caplog)
    assert len(logged) <= LOG_BURST + 300 / LOG_REFILL_S + 1, logged
    assert logged[0].startswith("probe p: starting -> failing (protocol_error)")
    # Nothing is dropped silently: the lines after the burst count what was held back.
    held = logged[LOG_BURST]
    assert "more changes not logged in the last" in held and "protocol_error x" in held
    assert "connection_reset x" in held
    assert state.failures_by_reason == {Reason.PROTOCOL_ERROR: 1000, Reason.CONNECTION_RESET: 1000}


def test_a_flaky_probe_is_bounded_too_and_its_last_line_is_where_it_settled(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "probed.probe")
    state = new_state("demo-flaky")
    rng = random.Random(7)
    ts = 0.0
    for _ in range(140):  # the demo: every 500 ms for 70 s, about 10% 503s
        ts += 0.5
        bad = rng.random() < 0.1
        state.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503") if bad else ProbeResult.ok(), ts=ts)
    state.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503"), ts=ts + 0.5)  # held back (no token)
    for i in range(1, 200):  # it stays failing: within a refill period the settled state is logged
        state.record(ProbeResult.fail(Reason.HTTP_STATUS, "HTTP 503"), ts=ts + 0.5 + i)
    logged = lines(caplog)
    assert len(logged) <= LOG_BURST + 3, logged
    assert logged[-1].startswith("probe demo-flaky: still failing (http_status): HTTP 503 ["), logged[-1]
    assert state.change_log.suppressed == 0


def test_an_outage_and_its_recovery_are_always_logged_with_details(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "probed.probe")
    state = new_state()
    state.record(ProbeResult.ok(), ts=1.0)
    for i in range(100):
        state.record(ProbeResult.ok(), ts=2.0 + i)
    state.record(ProbeResult.fail(Reason.CONNECTION_REFUSED, "connection refused"), ts=200.0)
    state.record(ProbeResult.fail(Reason.CONNECTION_REFUSED, "connection refused"), ts=201.0)
    state.record(ProbeResult.ok(), ts=300.0)
    assert lines(caplog) == ["probe p: ok", "probe p: ok -> failing (connection_refused): connection refused",
                             "probe p: failing -> ok"]
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.__dict__["reason"] == "connection_refused"
