"""Warnings are not failures (issue 13 item 3): an https `http` probe whose certificate expires
within `min_days_remaining` succeeds with a `cert_expiring` warning, against real TLS servers
minted here; the warning reaches the exposition, the ring (good for SLOs), the log and the page,
and `fail_if_expiring: true` makes it a failure again."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed.output import pages
from probed.output.api import result_json
from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.result import ProbeResult, Reason
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.http import HOST, Pki, Prober, load, serve_web


def _expiring_in_3_days(pki: Pki) -> Any:
    now = dt.datetime.now(dt.UTC)
    return pki.ca.issue_cert("localhost", HOST, not_before=now - dt.timedelta(days=30),
                             not_after=now + dt.timedelta(days=3))


async def test_an_https_probe_with_an_expiring_certificate_succeeds_with_a_warning(
        prober: Prober, pki: Pki) -> None:
    async with serve_web(pki.server_context(_expiring_in_3_days(pki))) as peer:
        url = f"https://localhost:{peer.port}/health"
        default = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file}})
        relaxed = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file, "min_days_remaining": 2}})
        strict = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file, "fail_if_expiring": True}})
        tighter = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file, "min_days_remaining": 2.5,
                                                          "fail_if_expiring": True}})

    assert default.success and default.reason is Reason.OK and default.warning is Reason.CERT_EXPIRING
    assert "expires in 3.0 days" in default.detail and "min_days_remaining 14" in default.detail
    assert default.values["status_code"] == 200
    assert relaxed.success and relaxed.warning is None
    assert not strict.success and strict.reason is Reason.CERT_EXPIRING and strict.warning is None
    assert tighter.success and tighter.warning is None  # 3 days left, 2.5 asked: fine


async def test_a_body_failure_outranks_the_warning(prober: Prober, pki: Pki) -> None:
    async with serve_web(pki.server_context(_expiring_in_3_days(pki))) as peer:
        url = f"https://localhost:{peer.port}/status/503"
        result = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file}})
    assert not result.success and result.reason is Reason.HTTP_STATUS and result.warning is None


def test_min_days_remaining_under_http_tls_is_checked() -> None:
    with pytest.raises(Exception, match=r"min_days_remaining.*at least 0"):
        load("http", "https://localhost/", {"tls": {"min_days_remaining": -1}})


def _families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for sample in fam.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


async def test_a_warning_counts_as_good_is_exported_logged_and_amber(
        prober: Prober, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    async with serve_web(pki.server_context(_expiring_in_3_days(pki))) as peer:
        url = f"https://localhost:{peer.port}/health"
        result = await prober.once("http", url, {"tls": {"ca_file": pki.ca_file}})
    spec = load("http", url, {"tls": {"ca_file": pki.ca_file}}).probes[0]
    state = ProbeState.new(spec)
    now = time.time()
    state.record(ProbeResult.ok(), ts=now - 60)
    with caplog.at_level(logging.INFO, logger="probed"):
        caplog.clear()  # an earlier test may have left the probed logger at INFO: the first ok line is not ours
        state.record(result, ts=now)

    # the ring (what SLOs read) holds two good attempts
    counts = state.ring.window_counts(now, 3600)
    assert (counts.attempts, counts.failures) == (2, 0)
    assert state.failing_since is None and not state.failures_by_reason
    # the log says warning, with the reason, on the ok -> warning change
    (line,) = [r.getMessage() for r in caplog.records
               if r.name == "probed.probe" and r.getMessage().startswith(f"probe {spec.name}:")]
    assert "ok -> warning (cert_expiring)" in line and "expires in 3.0 days" in line

    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, now))
    fams = _families(await render(view))
    assert [v for _, v in fams["probe_success"]] == [1]
    assert fams["probed_probe_warning"] == [({"probe": spec.name, "type": "http", "reason": "cert_expiring"}, 1)]
    totals = {labels["result"]: v for labels, v in fams["probed_probes_total"]}
    assert totals == {"success": 2, "failure": 0}
    assert "probed_probe_failures_total" not in fams
    expiry = fams["probe_ssl_earliest_cert_expiry"][0][1]
    assert 2.9 * 86400 < expiry - now <= 3 * 86400  # what ProbedCertificateExpiringSoon alerts on

    # the status page: amber, with the warning as the status and its detail shown
    last = {**result_json(result, frozenset()), "timestamp": now}
    assert last["warning"] == "cert_expiring"
    assert pages.status_class({"last": last}) == "warn"

    # back to no warning: the series goes, the log says ok
    state.record(ProbeResult.ok(), ts=now + 60)
    fams = _families(await render(view))
    assert "probed_probe_warning" not in fams
