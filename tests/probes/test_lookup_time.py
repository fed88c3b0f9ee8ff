"""probe_dns_lookup_time_seconds on http, tcp and tls probes is the target's name resolution
time, as blackbox_exporter exports it on every module (issue 13 item 4): the `resolve` phase,
0 for an IP address, under blackbox's name in the exposition; probe_ip_protocol is the IP
version of the connection made (4 or 6), absent when none was."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.probes.common.net import ip_hash
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.http import HOST, Pki, Prober, WebPeer, load
from tests.peers.net import closed_port


async def test_http_tcp_and_tls_carry_the_resolution_time_of_their_target(
        prober: Prober, web_peer: WebPeer, tls_peer: WebPeer, pki: Pki) -> None:
    by_name = {
        "http": await prober.once("http", f"http://localhost:{web_peer.port}/health"),
        "tcp": await prober.once("tcp", f"localhost:{web_peer.port}"),
        "tls": await prober.once("tls", f"localhost:{tls_peer.port}", {"ca_file": pki.ca_file}),
    }
    by_ip = {
        "http": await prober.once("http", f"http://{HOST}:{web_peer.port}/health"),
        "tcp": await prober.once("tcp", f"{HOST}:{web_peer.port}"),
    }
    for type_name, result in by_name.items():
        assert result.success, (type_name, result.detail)
        lookup = result.values["dns_lookup_time_seconds"]
        assert lookup == result.phases["resolve"] and lookup > 0, (type_name, result.phases)
    for type_name, result in by_ip.items():
        assert result.values["dns_lookup_time_seconds"] == 0, type_name
    for type_name, result in (*by_name.items(), *by_ip.items()):
        assert result.values["ip_protocol"] == 4, type_name  # the peers listen on 127.0.0.1
        # blackbox's probe_ip_addr_hash: FNV-1a (32 bit) of the address's 4 bytes, what the real
        # blackbox_exporter exports for 127.0.0.1 (tests/blackbox/test_parity.py compares them live)
        assert result.values["ip_addr_hash"] == 3668918509, type_name
    keepalive = prober.make("http", f"{web_peer.url}/health", {"keepalive": True})
    for _ in range(2):  # the second attempt reuses the connection: still known
        assert (await keepalive.probe()).values["ip_protocol"] == 4
    refused = await prober.once("tcp", f"{HOST}:{closed_port()}")
    assert not refused.success and "ip_protocol" not in refused.values and "ip_addr_hash" not in refused.values


    state = ProbeState.new(load("tcp", f"localhost:{web_peer.port}").probes[0])
    state.record(by_name["tcp"])
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, time.time()))
    families = {f.name: f for f in text_string_to_metric_families((await render(view)).decode())}
    assert [s.value for s in families["probe_dns_lookup_time_seconds"].samples] == [by_name["tcp"].phases["resolve"]]
    assert [s.value for s in families["probe_ip_protocol"].samples] == [4]


async def test_an_ipv6_connection_is_ip_protocol_6(prober: Prober) -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "::1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await prober.once("tcp", f"[::1]:{port}")
    finally:
        server.close()
    assert result.success, result.detail
    assert result.values["ip_protocol"] == 6
    assert result.values["ip_addr_hash"] == ip_hash("::1") == 1751717746  # FNV-1a of its 16 bytes
