"""probe_dns_lookup_time_seconds on http, tcp and tls probes is the target's name resolution
time, as blackbox_exporter exports it on every module (issue 13 item 4): the `resolve` phase,
0 for an IP address, under blackbox's name in the exposition."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.http import HOST, Pki, Prober, WebPeer, load


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

    state = ProbeState.new(load("tcp", f"localhost:{web_peer.port}").probes[0])
    state.record(by_name["tcp"])
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, time.time()))
    (family,) = [f for f in text_string_to_metric_families((await render(view)).decode())
                 if f.name == "probe_dns_lookup_time_seconds"]
    assert [s.value for s in family.samples] == [by_name["tcp"].phases["resolve"]]
