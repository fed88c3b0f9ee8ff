"""The hand-written exposition is valid Prometheus text and says what the state holds."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from prometheus_client.parser import text_string_to_metric_families

from probed.blackbox import exposition as blackbox_exposition
from probed.config.model import MetricsSettings, ProbeSpec, Profile
from probed.output.exposition import ExpositionView, render
from probed.probes import get_kind
from probed.result import ProbeResult, Reason
from probed.runtime import slicing
from probed.runtime.daemon import ReloadStatus
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.http import Pki, Prober, serve_web

NOW = 1_800_000_000.0


def state(name: str, type_: str = "tcp", target: str = "127.0.0.1:5432", **labels: str) -> ProbeState:
    spec = ProbeSpec(name=name, type=type_, target=target, interval=10.0, timeout=2.0, labels=labels, settings=None)
    return ProbeState.new(spec, secrets=frozenset({"hunter2-secret"}))


def view(*states: ProbeState, profile: Profile = "full") -> ExpositionView:
    """Every family by default: these tests are about what each one holds (profiles: test_profiles.py)."""
    return ExpositionView(list(states), {"location": 'lab "A"\nwest'}, SchedulerStats(), ReloadStatus(True, NOW),
                          metrics=MetricsSettings(profile=profile))


def families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_a_probe_that_never_ran_still_exports_its_counters_at_zero() -> None:
    fams = families(await render(view(state("db")), now=NOW))
    totals = {labels["result"]: v for labels, v in fams["probed_probes_total"]}
    assert totals == {"success": 0, "failure": 0}
    assert "probe_success" not in fams  # no attempt yet: no last-attempt gauges, so no false 0


async def test_results_become_blackbox_gauges_counters_histogram_and_values() -> None:
    s = state("api", type_="http", target="https://app:hunter2-secret@api.example.com/health?token=abc", team="pay")
    s.record(ProbeResult.ok(duration_s=0.12, phases={"connect": 0.01, "processing": 0.1},
                            values={"status_code": 200.0}), ts=NOW - 5)
    s.record(ProbeResult.fail(Reason.HTTP_STATUS, "503 Service Unavailable", duration_s=0.05,
                              values={"status_code": 503.0}), ts=NOW - 1)
    text = await render(view(s), now=NOW)
    fams = families(text)

    (labels, success), = fams["probe_success"]
    assert success == 0
    assert labels == {"probe": "api", "type": "http", "location": 'lab "A"\nwest', "team": "pay"}
    assert fams["probe_http_status_code"][0][1] == 503
    assert {lbl["name"]: v for lbl, v in fams["probed_probe_value"]} == {"status_code": 503}
    assert "probe_http_duration_seconds" not in fams  # the last attempt had no phases: no stale ones shown
    assert {lbl["reason"]: v for lbl, v in fams["probed_probe_failures_total"]} == {"http_status": 1}
    buckets = {lbl["le"]: v for lbl, v in fams["probed_probe_duration_seconds_bucket"]}
    assert (buckets["0.05"], buckets["0.1"], buckets["0.2"], buckets["+Inf"]) == (1, 1, 2, 2)
    assert fams["probed_probe_duration_seconds_count"][0][1] == 2
    info_target = fams["probed_probe_info"][0][0]["target"]
    assert info_target == "https://app:***@api.example.com/health?token=***"
    assert b"hunter2-secret" not in text


async def test_each_metric_family_is_one_contiguous_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slicing, "SLICE_S", 0.0)  # yield at every clock check: many slices
    states = [state(f"p{i}") for i in range(600)]
    for i, s in enumerate(states):
        s.record(ProbeResult.ok(duration_s=0.001 * i, phases={"connect": 0.001}), ts=NOW - 1)
    text = (await render(view(*states), now=NOW)).decode()
    seen: list[str] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in seen, f"{name} declared twice"
            seen.append(name)
    assert len(families(text.encode())["probe_success"]) == 600


async def test_latency_percentiles_come_from_the_ring_per_window() -> None:
    s = state("db")
    for i in range(100):
        s.record(ProbeResult.ok(duration_s=(i + 1) / 1000), ts=NOW - 100 + i)
    fams = families(await render(view(s), now=NOW))
    got = {(lbl["window"], lbl["quantile"]): v for lbl, v in fams["probed_probe_latency_seconds"]}
    assert got[("1h", "0.5")] == 0.0505
    assert got[("1m", "0.99")] > got[("1m", "0.5")]


async def test_staleness_is_visible_as_last_run_against_the_interval() -> None:
    s = state("db")
    s.record(ProbeResult.ok(duration_s=0.01), ts=NOW - 42)
    fams = families(await render(view(s), now=NOW))
    assert fams["probed_probe_last_run_timestamp_seconds"][0][1] == NOW - 42
    assert fams["probed_probe_interval_seconds"][0][1] == 10
    # The alert `time() - last_run > 3 * interval` fires for this probe at NOW (42 s > 30 s).


async def test_a_reloaded_spec_renders_its_new_labels_and_target() -> None:
    s = state("db", team="a")
    s.record(ProbeResult.ok(duration_s=0.01), ts=NOW - 1)
    await render(view(s), now=NOW)  # fills the per-probe label cache
    s.adopt(dataclasses.replace(s.spec, labels={"team": "b"}, target="127.0.0.1:6432"), s.secrets)
    fams = families(await render(view(s), now=NOW))
    assert fams["probe_success"][0][0]["team"] == "b"
    assert fams["probed_probe_info"][0][0]["target"] == "127.0.0.1:6432"


async def test_api_pages_are_built_in_slices_that_let_probes_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slicing, "SLICE_S", 0.0)
    states = [state(f"p{i}") for i in range(50)]
    ticks = 0

    async def probe_loop() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(probe_loop())
    await asyncio.sleep(0)
    before = ticks
    names = await slicing.sliced_map(states, lambda s: s.spec.name)
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)
    assert names == [f"p{i}" for i in range(50)]
    assert ticks - before >= 49  # the loop ran between every slice


async def test_phases_go_to_probed_names_and_blackbox_names_only_for_http() -> None:
    web_probe, db_probe = state("api", type_="http", target="http://127.0.0.1:1/"), state("db")
    web_probe.record(ProbeResult.ok(duration_s=0.01, phases={"connect": 0.001, "processing": 0.008}), ts=NOW - 1)
    db_probe.record(ProbeResult.ok(duration_s=0.01, phases={"connect": 0.002}), ts=NOW - 1)
    fams = families(await render(view(web_probe, db_probe), now=NOW))
    probed_phases = {(lbl["probe"], lbl["phase"]): v for lbl, v in fams["probed_probe_phase_seconds"]}
    assert probed_phases == {("api", "connect"): 0.001, ("api", "processing"): 0.008, ("db", "connect"): 0.002}
    http_phases = {(lbl["probe"], lbl["phase"]) for lbl, _ in fams["probe_http_duration_seconds"]}
    assert http_phases == {("api", "connect"), ("api", "processing")}


async def test_certificate_labels_are_the_leafs_and_never_carry_a_secret(pki: Pki) -> None:
    """probe_ssl_last_chain_info in both expositions (the scheduled one and /probe's): the leaf's
    fingerprint, subject, issuer and DNS names. A URL's password and query token are in no label
    (nor anywhere in the body), and a certificate field that holds a known secret is masked too."""
    prober = Prober()
    async with serve_web(pki.server_context(pki.good)) as peer:
        target = peer.url.replace("https://", "https://app:hunter2-secret@") + "/health?token=tok-3cr3t"
        try:
            result = await prober.once("http", target, {"tls": {"ca_file": pki.ca_file}})
        finally:
            await prober.aclose()
    assert result.success, result.detail
    s = state("site", type_="http", target=target)
    s.record(result, ts=NOW - 1)
    leaf = x509.load_pem_x509_certificate(pki.good.cert_chain_pems[0].bytes())
    want = {"fingerprint_sha256": leaf.fingerprint(hashes.SHA256()).hex(), "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(), "subjectalternative": "localhost"}  # DNS names only, as blackbox
    text = (await render(view(s), now=NOW)).decode()
    (labels, value), = families(text.encode())["probe_ssl_last_chain_info"]
    assert value == 1 and {k: v for k, v in labels.items() if k in want} == want
    answer = blackbox_exposition.render(result, get_kind("http"), s.secrets)
    assert families(answer.encode())["probe_ssl_last_chain_info"] == [(want, 1.0)]
    for body in (text, answer):
        assert "hunter2-secret" not in body and "tok-3cr3t" not in body

    masked = dataclasses.replace(result, info={**result.info, "probe_ssl_last_chain_info": {
        **result.info["probe_ssl_last_chain_info"], "subject": "CN=hunter2-secret"}})
    s.record(masked, ts=NOW)
    for body in ((await render(view(s), now=NOW)).decode(), blackbox_exposition.render(masked, get_kind("http"),
                                                                                        s.secrets)):
        assert "probe_ssl_last_chain_info{" in body and "hunter2-secret" not in body
