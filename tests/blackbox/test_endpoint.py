"""`GET /probe?module=&target=`: blackbox's multi-target endpoint on probed's web port. Real peers on
loopback (HTTP, TCP, DNS), the real route (`make_app`), modules written in blackbox's own format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from probed.blackbox.endpoint import BlackboxEndpoint
from probed.blackbox.guard import TargetGuard
from probed.config.blackbox import BlackboxModule, parse_modules
from probed.config.schema import ConfigError
from probed.output.web import make_app
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import load_config
from tests.peers.dns import Zone, dns_server
from tests.peers.http import WebPeer

MODULES = """\
modules:
  http_2xx:
    prober: http
    timeout: 3s
  http_auth:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      basic_auth: {username: probe, password: hunter2-very-secret}
  http_body:
    prober: http
    http:
      fail_if_body_not_matches_regexp: ['"status": "ok"']
  tcp_connect:
    prober: tcp
    timeout: 2s
  dns_a:
    prober: dns
    timeout: 2s
    dns:
      query_name: www.example.com
      query_type: A
      validate_answer_rrs:
        fail_if_none_matches_regexp: ['192\\.0\\.2\\.10']
"""
CONFIG = "probes:\n  - {name: scheduled, type: tcp, target: '127.0.0.1:1', interval: 1h}\n"


def modules() -> dict[str, BlackboxModule]:
    return parse_modules(MODULES, "probes.yaml", {})


@asynccontextmanager
async def served(tmp_path: Path, guard: TargetGuard | None = None, cap: int = 8) -> AsyncIterator[tuple[str, Daemon]]:
    path = tmp_path / "probes.yaml"
    path.write_text(CONFIG)
    daemon = Daemon(str(path))
    await daemon.start()
    parsed = modules()
    endpoint = BlackboxEndpoint(lambda: parsed, lambda: frozenset({"hunter2-very-secret"}),
                                guard or TargetGuard.of(), max_concurrency=cap)
    runner = web.AppRunner(make_app(daemon, blackbox=endpoint), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", daemon
    finally:
        await runner.cleanup()
        await daemon.shutdown()


async def get(base: str, params: Mapping[str, str], headers: Mapping[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/probe", params=params,
                                                               headers=headers or {}) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_http_module_answers_in_blackbox_exposition(tmp_path: Path, web_peer: WebPeer) -> None:
    async with served(tmp_path) as (base, daemon):
        status, text = await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/health"})
        assert status == 200, text
        got = samples(text)
        assert got["probe_success"] == 1 and got["probe_http_status_code"] == 200
        phases = {k for k in got if k.startswith("probe_http_duration_seconds")}
        assert phases == {f'probe_http_duration_seconds{{phase="{p}"}}'
                          for p in ("resolve", "connect", "tls", "processing", "transfer")}
        assert "# TYPE probe_success gauge" in text
        assert "probe=" not in text and "probed_" not in text  # the scraper's relabelling names the target

        status, text = await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/status/503"})
        assert status == 200 and samples(text)["probe_success"] == 0
        assert samples(text)["probe_http_status_code"] == 503
        # the scheme is optional, as in blackbox
        status, text = await get(base, {"module": "http_body", "target": f"127.0.0.1:{web_peer.port}/health"})
        assert samples(text)["probe_success"] == 1
        # /probe never enters the probe states (rings, SLOs): only the scheduled probe is there
        assert list(daemon.states) == ["scheduled"]
        assert "http_2xx" not in (await _metrics(base)) and web_peer.url not in (await _metrics(base))


async def _metrics(base: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        return await response.text()


async def test_tcp_and_dns_modules(tmp_path: Path, web_peer: WebPeer, closed_port: int) -> None:
    table = {("www.example.com", "A"): Zone(records=("www.example.com. 300 IN A 192.0.2.10",))}
    async with served(tmp_path) as (base, _), dns_server(table) as dns:
        status, text = await get(base, {"module": "tcp_connect", "target": f"127.0.0.1:{web_peer.port}"})
        assert status == 200 and samples(text)["probe_success"] == 1
        _, text = await get(base, {"module": "tcp_connect", "target": f"127.0.0.1:{closed_port}"})
        assert samples(text)["probe_success"] == 0
        status, text = await get(base, {"module": "dns_a", "target": f"127.0.0.1:{dns.port}"})
        assert status == 200, text
        assert samples(text)["probe_success"] == 1 and samples(text)["probe_dns_answer_rrs"] == 1


async def test_bad_requests_answer_400_like_blackbox(tmp_path: Path, web_peer: WebPeer) -> None:
    async with served(tmp_path) as (base, _):
        status, text = await get(base, {"module": "nope", "target": web_peer.url})
        assert status == 400 and "Unknown module 'nope'" in text and "http_2xx" in text
        status, text = await get(base, {"module": "http_2xx"})
        assert status == 400 and "Target parameter is missing" in text
        status, text = await get(base, {"module": "tcp_connect", "target": "no-port-here"})
        assert status == 400


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fe80::1]/",
    "http://169.254.1.1:8080/",
])
async def test_link_local_and_metadata_are_denied_by_default(tmp_path: Path, target: str) -> None:
    async with served(tmp_path) as (base, _):
        status, text = await get(base, {"module": "http_2xx", "target": target})
        assert status == 403 and "denied network" in text


async def test_a_redirect_to_a_denied_address_fails_without_connecting(tmp_path: Path, web_peer: WebPeer) -> None:
    # The target itself is fine; its redirect points at the metadata service. The connector refuses
    # the address, so the attempt fails at once (a real connect would hang until the timeout here).
    async with served(tmp_path) as (base, _):
        target = f"{web_peer.url}/redirect-to?url=http://169.254.169.254/latest/meta-data/"
        started = asyncio.get_running_loop().time()
        status, text = await get(base, {"module": "http_2xx", "target": target, "debug": "true"})
        assert status == 200 and "Probe failed" in text and "denied network" in text
        assert asyncio.get_running_loop().time() - started < 1.5


async def test_allowlist_by_regexp_and_by_network(tmp_path: Path, web_peer: WebPeer) -> None:
    only_health = TargetGuard.of(allow=[r"http://127\.0\.0\.1:\d+/health"])
    async with served(tmp_path, only_health) as (base, _):
        assert (await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/health"}))[0] == 200
        status, text = await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/status/200"})
        assert status == 403 and "--probe.allow-targets" in text
    loopback = TargetGuard.of(allow=["127.0.0.0/8"], deny=["10.0.0.0/8"])
    async with served(tmp_path, loopback) as (base, _):
        assert (await get(base, {"module": "http_2xx", "target": f"http://localhost:{web_peer.port}/health"}))[0] == 200
        assert (await get(base, {"module": "tcp_connect", "target": "10.1.2.3:80"}))[0] == 403
        assert (await get(base, {"module": "tcp_connect", "target": "192.0.2.1:80"}))[0] == 403


async def test_concurrency_cap_answers_503_when_no_slot_frees_in_time(tmp_path: Path, web_peer: WebPeer) -> None:
    async with served(tmp_path, cap=1) as (base, _):
        slow = asyncio.create_task(get(base, {"module": "http_2xx", "target": f"{web_peer.url}/slow?ms=2000"}))
        await asyncio.sleep(0.3)
        status, text = await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/health"},
                                 {"X-Prometheus-Scrape-Timeout-Seconds": "1"})
        assert status == 503 and "--probe.max-concurrency" in text
        assert (await slow)[0] == 200


async def test_debug_shows_the_log_and_module_never_secrets(tmp_path: Path, web_peer: WebPeer) -> None:
    async with served(tmp_path) as (base, _):
        status, text = await get(base, {"module": "http_auth", "target": f"{web_peer.url}/echo", "debug": "true"})
        assert status == 200
        assert "Logs for the probe:" in text and "Metrics that would have been returned:" in text
        assert "Module configuration:" in text and "prober: http" in text
        assert "hunter2-very-secret" not in text


def test_module_errors_are_all_reported_with_their_place() -> None:
    text = """\
modules:
  ping:
    prober: icmp
  q:
    prober: dns
    dns: {query_type: A, bogus: 1}
  t:
    prober: tcp
    tcp:
      query_response:
        - {send: "HELLO", starttls: true}
  d:
    prober: dns
    dns: {query_name: example.com}
  h:
    prober: http
    http: {valid_http_versions: [HTTP/2.0]}
"""
    with pytest.raises(ConfigError) as caught:
        parse_modules(text, "bb.yml")
    assert str(caught.value).splitlines() == [
        "bb.yml:3:13: modules.ping.prober: icmp is not supported by probed (it needs raw sockets or CAP_NET_RAW); "
        "use a tcp module on a port the host answers on",
        "bb.yml:6:26: modules.q.dns.bogus: unknown key 'bogus' (expected one of: query_name, query_type, "
        "query_class, transport_protocol, recursion_desired, valid_rcodes, validate_answer_rrs, "
        "validate_authority_rrs, validate_additional_rrs, preferred_ip_protocol, ip_protocol_fallback, "
        "source_ip_address, dns_over_tls, tls_config)",
        "bb.yml:11:37: modules.t.tcp.query_response[0].starttls: `starttls` is not supported by probed's /probe: "
        "probed has no STARTTLS; use a tcp module with `tls: true` on the TLS port",
        "bb.yml:14:10: modules.d.dns.query_type: query_type ANY (blackbox's default) is not supported by probed: "
        "name the record type (A, AAAA, MX ...)",
        "bb.yml:17:33: modules.h.http.valid_http_versions: probed speaks HTTP/1.1 only: list HTTP/1.1 "
        "(HTTP/2 is not supported)",
    ]


def test_modules_load_from_probes_yaml_with_the_probes_errors(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(MODULES + "probes:\n  - {name: x, type: tcp, target: nope}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [i.path for i in caught.value.issues] == ["probes[0].target"]
    broken = MODULES.replace("prober: tcp", "prober: icmp")
    path.write_text(broken + "probes:\n  - {name: x, type: tcp, target: nope}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [i.path for i in caught.value.issues] == ["modules.tcp_connect.prober", "probes[0].target"]
    path.write_text(MODULES)  # modules only: a blackbox-style config, nothing scheduled
    config = load_config(path)
    assert sorted(config.modules) == ["dns_a", "http_2xx", "http_auth", "http_body", "tcp_connect"]
    assert "hunter2-very-secret" in config.secrets and not config.probes


async def test_the_daemon_serves_its_configs_modules(tmp_path: Path, web_peer: WebPeer) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(MODULES)
    daemon = Daemon(str(path))
    await daemon.start()
    runner = web.AppRunner(make_app(daemon, blackbox=BlackboxEndpoint.serving(daemon)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        status, text = await get(base, {"module": "http_2xx", "target": f"{web_peer.url}/health"})
        assert status == 200 and samples(text)["probe_success"] == 1
    finally:
        await runner.cleanup()
        await daemon.shutdown()
