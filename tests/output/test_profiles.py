"""Metrics profiles: what each exports, the default within the series budget, switches on top.

Probes of each type run against real local peers; their results are rendered as a scrape
would be, and the series of one probe are counted.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed.config.model import MetricsSettings, Profile
from probed.output import catalog
from probed.output.exposition import ExpositionView, render
from probed.probes import get_kind
from probed.result import ProbeResult, Reason
from probed.runtime.daemon import ReloadStatus
from probed.runtime.probeset import parse_config
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.dns import Zone, dns_server
from tests.peers.http import Pki, Prober, WebPeer

BLACKBOX_SERIES = {"http": 17, "https": 21, "tcp": 6, "tls": 10, "dns": 12}
"""Series blackbox_exporter exports per target and module (docs/blackbox.md)."""
BUDGET = {name: n + 10 for name, n in BLACKBOX_SERIES.items()}
"""Issue 14: at most blackbox's + 10 in the default profile (attempts, failures, staleness ...)."""
NOW = 1_780_000_000.0


def state_with(result: ProbeResult, type_name: str = "http", target: str = "http://127.0.0.1:1/") -> ProbeState:
    spec = parse_config(f'probes: [{{name: p, type: {type_name}, target: "{target}"}}]\n', "t.yaml", {}).probes[0]
    state = ProbeState.new(spec)
    for i in range(5):
        state.record(result, ts=NOW - 60 + i)
    return state


async def series(state: ProbeState, metrics: MetricsSettings) -> dict[str, int]:
    """Series per family name for this one probe (process and SLO families left out)."""
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, NOW), metrics=metrics)
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families((await render(view, now=NOW)).decode()):
        for sample in family.samples:
            if sample.labels.get("probe") == "p":
                counts[family.name] = counts.get(family.name, 0) + 1
    return counts


async def test_http_within_budget_in_the_default_profile(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", web_peer.url + "/health")
    assert result.success
    counts = await series(state_with(result), MetricsSettings())
    assert sum(counts.values()) <= BUDGET["http"], counts
    assert "probed_probe_duration_seconds" not in counts and "probed_probe_value" not in counts
    assert counts["probed_probe_latency_seconds"] == 2  # p50 and p99 over 5m
    assert counts["probe_http_duration_seconds"] == 5 and counts["probed_probes"] == 2


async def test_https_tls_tcp_and_dns_within_budget(prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    https = await prober.once("http", f"https://localhost:{tls_peer.port}/health", {"tls": {"ca_file": pki.ca_file}})
    tls = await prober.once("tls", f"localhost:{tls_peer.port}", {"ca_file": pki.ca_file})
    tcp = await prober.once("tcp", f"127.0.0.1:{tls_peer.port}")
    table = {("probed.test", "A"): Zone(records=("probed.test. 60 IN A 192.0.2.7",))}
    async with dns_server(table) as server:
        looked_up = await prober.once("dns", "probed.test", {"server": f"127.0.0.1:{server.port}"})
    assert https.success and tls.success and tcp.success and looked_up.success, (https, tls, tcp, looked_up)
    for key, result, type_name, target in (("https", https, "http", "https://localhost/"),
                                           ("tls", tls, "tls", "localhost:443"),
                                           ("tcp", tcp, "tcp", "127.0.0.1:1"),
                                           ("dns", looked_up, "dns", "probed.test")):
        counts = await series(state_with(result, type_name, target), MetricsSettings())
        assert sum(counts.values()) <= BUDGET[key], (key, counts)


@pytest.mark.parametrize(("profile", "present", "absent"), [
    ("blackbox", {"probe_success", "probe_duration_seconds", "probe_http_duration_seconds", "probe_http_status_code"},
     {"probed_probes", "probed_probe_latency_seconds", "probed_probe_info", "probed_probe_failures"}),
    ("standard", {"probe_success", "probed_probes", "probed_probe_failures", "probed_probe_last_run_timestamp_seconds",
                  "probed_probe_interval_seconds", "probed_probe_latency_seconds"},
     {"probed_probe_duration_seconds", "probed_probe_value", "probed_probe_phase_seconds",
      "probed_probe_skipped_runs"}),
    ("full", {"probed_probe_duration_seconds", "probed_probe_value", "probed_probe_phase_seconds",
              "probed_probe_skipped_runs", "probe_http_status_code"}, set()),
])
async def test_each_profile_exports_its_families(profile: Profile, present: set[str], absent: set[str]) -> None:
    phases = {"resolve": 0.0, "connect": 0.001, "tls": 0.0, "processing": 0.01, "transfer": 0.0}
    state = state_with(ProbeResult.fail(Reason.HTTP_STATUS, "503", values={"status_code": 503}, phases=phases))
    state.record(ProbeResult.ok(duration_s=0.02, values={"status_code": 200}, phases=phases), ts=NOW - 1)
    counts = await series(state, MetricsSettings(profile=profile))
    assert present <= set(counts), (profile, counts)
    assert not absent & set(counts), (profile, counts)


async def test_switches_turn_one_group_on_or_off_whatever_the_profile() -> None:
    state = state_with(ProbeResult.ok(duration_s=0.02, values={"status_code": 200}))
    lean = await series(state, MetricsSettings(profile="standard", histogram=True))
    assert lean["probed_probe_duration_seconds"] == 21 and "probed_probe_value" not in lean
    rich = await series(state, MetricsSettings(profile="full", values=False, percentiles=False))
    assert "probed_probe_value" not in rich and rich["probed_probe_latency_seconds"] == 2
    assert rich["probed_probe_duration_seconds"] == 21


def test_the_config_takes_a_profile_and_check_counts_each() -> None:
    config = parse_config('metrics: {profile: blackbox, histogram: true}\n'
                          'probes: [{name: p, type: tcp, target: "127.0.0.1:1"}]\n', "t.yaml", {})
    assert config.metrics == MetricsSettings(profile="blackbox", histogram=True)
    from probed.output.report import check_report
    line = next(ln for ln in check_report(config) if ln.startswith("prometheus:"))
    assert "metrics profile blackbox" in line and "standard" in line and "full" in line


async def test_the_estimate_counts_a_warning_as_the_series_it_is() -> None:
    """probed_probe_warning exists while a warning holds: the estimate counts it, 1 per probe."""
    warned = await series(state_with(ProbeResult.warn(Reason.CERT_EXPIRING, "expires in 3 days"), "tls",
                                     "localhost:443"), MetricsSettings())
    assert warned["probed_probe_warning"] == 1
    family = next(f for f in catalog.PROBE_FAMILIES if f.name == "probed_probe_warning")
    assert family.series_for(get_kind("tls"), MetricsSettings()) == warned["probed_probe_warning"]
