"""Side by side with the real blackbox_exporter: the same modules against the same loopback targets.

Debian's `prometheus-blackbox-exporter` and probed get one modules file (blackbox's format, which probed
reads as written) and probe the same peers: plain http, https with a trustme certificate (the CA given
to both), tcp, tls over tcp (`tcp` with `tls: true`) and dns against the tests' DNS server. For each
module, blackbox's `/probe` answer is compared with (a) probed's `/probe` answer and (b) the
`probe_*` series of a scheduled probe of the same target in probed's `/metrics`:

- the set of metric names;
- the label names of each metric (scheduled series also carry `SCHEDULED_LABELS`, nothing else);
- every value except durations (`TIMINGS`): success, status code, HTTP version, ssl, sizes, the
  certificate's expiry and its info labels, the TLS version, the DNS record counts, the IP protocol
  and address hash; for the timings, the set of `phase` label values.

A deliberate difference is listed in `DELIBERATE` with why; an entry that no longer differs fails
too, so the list cannot outlive the difference it excuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from probed.blackbox.endpoint import BlackboxEndpoint
from probed.output.web import make_app
from probed.runtime.daemon import Daemon
from tests.peers.dns import Zone, dns_server
from tests.peers.http import Pki, serve_web
from tests.peers.net import HOST, free_port

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
START_DEADLINE_S = 10.0

SCHEDULED_LABELS = frozenset({"probe", "type", "env", "team"})
"""What a scheduled probe's series carry beyond blackbox's: its identity (`probe`, `type`), the config's
global labels (`env` here) and the probe's own (`team` here). A blackbox scrape gets the same identity
from its relabelling (`instance`, `job`), which is not part of the exposition."""

TIMINGS = frozenset({"probe_duration_seconds", "probe_dns_lookup_time_seconds", "probe_http_duration_seconds"})
"""Durations: measured by each prober on its own clock, so only their label sets are compared."""

DELIBERATE: Mapping[tuple[str, str], str] = {
    # (case, metric): why the metric is on one side only.
    ("https", "probe_tls_cipher_info"):
        "probed exports the negotiated cipher on https, as blackbox does from 0.25 on; Debian's 0.23 predates it",
    ("dns", "probe_dns_duration_seconds"):
        "probed times a DNS probe by transport (probed_probe_phase_seconds{phase=udp|tcp}, the TCP retry of a "
        "truncated answer apart); blackbox's resolve/connect/request split has no counterpart: probed's server "
        "is an address (nothing to resolve) and connecting a UDP socket sends nothing",
}


@dataclass(frozen=True)
class Case:
    name: str
    module: str
    """The module's body in blackbox's format (one flow-style YAML mapping)."""
    target: str
    """`/probe`'s target."""
    scheduled: str
    """The same probe as a scheduled probe's fields (flow-style YAML, without name and labels)."""


@dataclass(frozen=True)
class Rig:
    blackbox: str
    probed: str
    cases: Mapping[str, Case]


def cases(web_port: int, tls_port: int, dns_port: int, ca_file: str) -> dict[str, Case]:
    tls = f"tls_config: {{ca_file: '{ca_file}'}}"
    found = [
        Case("http", "{prober: http, timeout: 5s, http: {preferred_ip_protocol: ip4}}",
             f"http://{HOST}:{web_port}/health", f"type: http, target: 'http://{HOST}:{web_port}/health'"),
        Case("https", f"{{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, {tls}}}}}",
             f"https://{HOST}:{tls_port}/health",
             f"type: http, target: 'https://{HOST}:{tls_port}/health', http: {{tls: {{ca_file: '{ca_file}'}}}}"),
        Case("tcp", "{prober: tcp, timeout: 5s, tcp: {preferred_ip_protocol: ip4}}",
             f"{HOST}:{web_port}", f"type: tcp, target: '{HOST}:{web_port}'"),
        Case("tcp_tls", f"{{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4, tls: true, {tls}}}}}",
             f"{HOST}:{tls_port}", f"type: tcp, target: '{HOST}:{tls_port}', tcp: {{tls: true, {tls}}}"),
        Case("dns", "{prober: dns, timeout: 5s, dns: {query_name: www.example.com, query_type: A, "
                    "preferred_ip_protocol: ip4}}",
             f"{HOST}:{dns_port}",
             f"type: dns, target: www.example.com, dns: {{server: '{HOST}:{dns_port}', type: A}}"),
    ]
    return {c.name: c for c in found}


def blackbox_binary() -> str:
    if os.access(BLACKBOX, os.X_OK):
        return BLACKBOX
    path = shutil.which("prometheus-blackbox-exporter")
    if path is None:
        message = ("blackbox_exporter is not installed (Debian: prometheus-blackbox-exporter; scripts/test "
                   "installs it)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return path


def said(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@contextlib.asynccontextmanager
async def blackbox(binary: str, config: Path, log: Path) -> AsyncIterator[str]:
    """The real exporter on a free loopback port; killed (and waited for) however the test ends."""
    port = free_port()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary, f"--config.file={config}", f"--web.listen-address={HOST}:{port}",
            stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    base = f"http://{HOST}:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = asyncio.get_running_loop().time() + START_DEADLINE_S
            while True:
                assert process.returncode is None, f"blackbox_exporter exited: {said(log)}"
                try:
                    async with session.get(f"{base}/-/healthy") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, f"blackbox never answered: {said(log)}"
                await asyncio.sleep(0.05)
        yield base
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.fixture
async def rig(tmp_path: Path, pki: Pki) -> AsyncIterator[Rig]:
    binary = blackbox_binary()
    table = {("www.example.com", "A"): Zone(records=("www.example.com. 300 IN A 192.0.2.10",))}
    async with serve_web() as plain, serve_web(pki.server_context(pki.good)) as tls, dns_server(table) as dns:
        found = cases(int(plain.url.rsplit(":", 1)[1]), int(tls.url.rsplit(":", 1)[1]), dns.port, pki.ca_file)
        modules = "modules:\n" + "".join(f"  {c.name}: {c.module}\n" for c in found.values())
        (tmp_path / "blackbox.yml").write_text(modules)
        (tmp_path / "probes.yaml").write_text(
            "labels: {env: parity}\n" + modules + "probes:\n" + "".join(
                f"  - {{name: p-{c.name}, {c.scheduled}, interval: 1s, timeout: 1s, labels: {{team: sre}}}}\n"
                for c in found.values()))
        daemon = Daemon(str(tmp_path / "probes.yaml"))
        await daemon.start()
        runner = web.AppRunner(make_app(daemon, blackbox=BlackboxEndpoint.serving(daemon)), access_log=None)
        try:
            await runner.setup()
            await web.TCPSite(runner, HOST, 0).start()
            async with blackbox(binary, tmp_path / "blackbox.yml", tmp_path / "blackbox.log") as bb:
                for _ in range(200):  # every scheduled probe has a result
                    if all(s.last is not None for s in daemon.states.values()):
                        break
                    await asyncio.sleep(0.05)
                yield Rig(bb, f"http://{HOST}:{runner.addresses[0][1]}", found)
        finally:
            await runner.cleanup()
            await daemon.shutdown()


Series = dict[str, list[tuple[dict[str, str], float]]]
"""metric -> [(labels, value)]."""


def parse(text: str, only: Mapping[str, str] | None = None) -> Series:
    """The `probe_*` samples of an exposition; with `only`, those whose labels include it."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("probe_"):
                continue
            if only is not None and any(sample.labels.get(k) != v for k, v in only.items()):
                continue
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


async def fetch(url: str, params: Mapping[str, str] | None = None) -> str:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        assert response.status == 200, await response.text()
        return await response.text()


def comparable(series: Series, drop: frozenset[str] = frozenset()) -> dict[str, object]:
    """What must agree: per metric its label names and, but for durations, every label set and value;
    for durations the label sets only (the `phase` values)."""
    out: dict[str, object] = {}
    for metric, samples in series.items():
        rows = [({k: v for k, v in labels.items() if k not in drop}, value) for labels, value in samples]
        names = sorted({tuple(sorted(labels)) for labels, _ in rows})
        if metric in TIMINGS:
            shown: object = sorted(tuple(sorted(labels.items())) for labels, _ in rows)
        else:
            shown = sorted((tuple(sorted(labels.items())), value) for labels, value in rows)
        out[metric] = (names, shown)
    return out


@pytest.mark.parametrize("case", ["http", "https", "tcp", "tcp_tls", "dns"])
async def test_probed_matches_blackbox(rig: Rig, case: str) -> None:
    c = rig.cases[case]
    theirs = parse(await fetch(f"{rig.blackbox}/probe", {"module": c.name, "target": c.target}))
    ours = parse(await fetch(f"{rig.probed}/probe", {"module": c.name, "target": c.target}))
    scheduled = parse(await fetch(f"{rig.probed}/metrics"), {"probe": f"p-{c.name}"})
    assert theirs["probe_success"][0][1] == 1, f"blackbox failed the {case} target: {theirs}"

    allowed = {metric for (name, metric) in DELIBERATE if name == case}
    differing = set(theirs) ^ set(ours)
    assert differing - allowed == set(), f"metrics on one side only (blackbox ^ probed /probe): {differing}"
    assert allowed <= differing, f"DELIBERATE lists {allowed - differing} for {case}, which no longer differ"
    assert set(scheduled) == set(ours), f"scheduled vs /probe: {set(scheduled) ^ set(ours)}"

    shared = set(theirs) & set(ours)
    extra = {k for m in shared for labels, _ in scheduled[m] for k in labels} - {
        k for m in shared for labels, _ in theirs[m] for k in labels}
    assert extra == SCHEDULED_LABELS, f"scheduled series' labels beyond blackbox's: {extra}"
    for metric, samples in scheduled.items():
        assert all(labels.keys() >= SCHEDULED_LABELS for labels, _ in samples), metric

    want = {m: v for m, v in comparable(theirs).items() if m in shared}
    assert {m: v for m, v in comparable(ours).items() if m in shared} == want, "probed /probe"
    assert {m: v for m, v in comparable(scheduled, SCHEDULED_LABELS).items() if m in shared} == want, "scheduled"
