"""What the DNS probe shows: `probed once` lines, the JSON, and the metrics under blackbox's and
probed's names."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.probes import get_kind
from probed.result import ProbeResult, Reason
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.dns import HOST, DnsServer
from tests.peers.dns_lookup import CLOUDFRONT, dns_spec, lookup

# --------------------------------------------------------------------------- presentation and config


async def test_describe_prints_answers_with_ttls_in_columns(server: DnsServer) -> None:
    result = await lookup("good-cdn.example.com", server)
    assert describe(result) == [
        f"NOERROR from {HOST}:{server.port} over udp: 2 answers",
        f"good-cdn.example.com.           60  CNAME  {CLOUDFRONT}.",
        f"{CLOUDFRONT}.  60  A      192.0.2.30",
    ]


async def test_describe_says_how_the_answer_came_and_caps_long_answers(server: DnsServer) -> None:
    big = describe(await lookup("big.example.com", server, type="TXT"))
    assert big[0] == f"NOERROR from {HOST}:{server.port} over udp (truncated), then tcp: 40 answers"
    assert len(big) == 1 + 20 + 1
    assert big[-1] == "... and 20 more (all of them with --json)"
    nowhere = describe(await lookup("nowhere.example.com", server))
    assert nowhere == [f"NXDOMAIN from {HOST}:{server.port} over udp: no answers"]
    gone = await lookup("gone.example.com", server)
    assert gone.reason is Reason.DNS_NXDOMAIN and gone.values["authority_rrs"] == 1
    assert describe(gone) == [
        f"NXDOMAIN from {HOST}:{server.port} over udp: no answers, 1 authority record",
        "authority:",
        "  example.com.  900  SOA  ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
    ]
    assert describe(await lookup("slow.example.com", server, timeout="300ms")) == []  # the detail says it all


def describe(result: ProbeResult) -> list[str]:
    kind_describe = get_kind("dns").describe
    assert kind_describe is not None
    return kind_describe(result)


async def test_metrics_under_blackbox_and_probed_names(server: DnsServer) -> None:
    states = []
    for name in ("www.example.com", "nowhere.example.com"):
        state = ProbeState.new(dataclasses.replace(dns_spec(name, server.port), name=name.split(".")[0]))
        state.record(await lookup(name, server), ts=time.time())
        states.append(state)
    text = await render(ExpositionView(states, {}, SchedulerStats(), ReloadStatus(True, time.time())))
    fams: dict[str, dict[str, tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for sample in fam.samples:
            if "probe" in sample.labels:
                fams.setdefault(sample.name, {})[sample.labels["probe"]] = (sample.labels, sample.value)

    assert fams["probe_dns_answer_rrs"]["www"][1] == 2
    assert fams["probe_dns_answer_rrs"]["nowhere"][1] == 0
    assert fams["probe_dns_lookup_time_seconds"]["www"][1] == 0  # blackbox's meaning: no name to resolve
    assert fams["probed_dns_rcode_info"]["www"] == ({"probe": "www", "type": "dns", "rcode": "NOERROR"}, 1)
    assert fams["probed_dns_rcode_info"]["nowhere"][0]["rcode"] == "NXDOMAIN"
    assert fams["probe_success"]["nowhere"][1] == 0


async def test_probed_once_prints_the_answers_with_ttls_and_json_carries_them(
        server: DnsServer, tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(yaml.safe_dump({"probes": [
        {"name": "www", "type": "dns", "target": "www.example.com", "dns": {"server": f"{HOST}:{server.port}"}},
        {"name": "gone", "type": "dns", "target": "nowhere.example.com",
         "dns": {"server": f"{HOST}:{server.port}"}},
    ]}))
    outputs = []
    for args in ((), ("--json",)):
        # From the repository root: from tests/probes, the dns/ and http/ test packages would shadow
        # dnspython and the standard library's http.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "probed.cli", "once", "--config", str(config), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3])
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 1, stderr.decode()  # `gone` fails
        outputs.append(stdout.decode())
    human, text = outputs

    lines = human.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("www "))
    assert lines[row + 1] == f"    NOERROR from {HOST}:{server.port} over udp: 2 answers"
    assert {lines[row + 2], lines[row + 3]} == {"    www.example.com.  300  A  192.0.2.10",
                                                "    www.example.com.  300  A  192.0.2.11"}
    gone = next(line for line in lines if line.startswith("gone "))
    assert "dns_nxdomain" in gone and f"NXDOMAIN from {HOST}:{server.port} (valid: NOERROR)" in gone
    results = {r["name"]: r for r in map(json.loads, text.splitlines())}
    assert results["www"]["values"]["answer_rrs"] == 2
    assert {a["ttl"] for a in results["www"]["facts"]["answers"]} == {300}
    assert results["gone"]["facts"]["rcode"] == "NXDOMAIN"
