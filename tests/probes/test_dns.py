"""`type: dns` against a real local DNS server answering from a table over UDP and TCP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from probed.config.model import ProbeSpec
from probed.config.schema import ConfigError
from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.probes import ProbeContext, get_kind
from probed.probes.dns import config as dns_config
from probed.probes.dns import wire as dns_wire
from probed.result import ProbeResult, Reason
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.dns import HOST, DnsServer, Zone, dns_server
from tests.peers.net import closed_port

CLOUDFRONT = "d111111abcdef8.cloudfront.net"
SERVER_WHERE = {"ip_protocol": 4, "ip_addr_hash": 3668918509, "dns_lookup_time_seconds": 0}
"""blackbox's probe_ip_protocol, probe_ip_addr_hash and probe_dns_lookup_time_seconds (resolving the
server's name: it is an address) of the server 127.0.0.1, on every result."""
TABLE = {
    ("www.example.com", "A"): Zone(records=(
        "www.example.com. 300 IN A 192.0.2.10",
        "www.example.com. 300 IN A 192.0.2.11",
    )),
    ("cdn.example.com", "A"): Zone(records=(
        "cdn.example.com. 60 IN CNAME unexpected-alb-123.eu-west-1.elb.amazonaws.com.",
        "unexpected-alb-123.eu-west-1.elb.amazonaws.com. 60 IN A 192.0.2.20",
    )),
    ("good-cdn.example.com", "A"): Zone(records=(
        f"good-cdn.example.com. 60 IN CNAME {CLOUDFRONT}.",
        f"{CLOUDFRONT}. 60 IN A 192.0.2.30",
    )),
    ("broken.example.com", "A"): Zone(rcode="SERVFAIL"),
    ("private.example.com", "A"): Zone(rcode="REFUSED"),
    ("odd.example.com", "A"): Zone(rcode="NOTIMP"),
    ("empty.example.com", "A"): Zone(),
    ("gone.example.com", "A"): Zone(rcode="NXDOMAIN", authority=(
        "example.com. 900 IN SOA ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",)),
    ("big.example.com", "TXT"): Zone(truncate_udp=True, records=tuple(
        f'big.example.com. 120 IN TXT "record-{i:03d} {"x" * 60}"' for i in range(40))),
    ("slow.example.com", "A"): Zone(silent=True),
    ("half.example.com", "TXT"): Zone(truncate_udp=True, silent_tcp=True),
    ("junk.example.com", "A"): Zone(garbage_udp=True),
    ("drip.example.com", "A"): Zone(drip_tcp=True, records=("drip.example.com. 60 IN A 192.0.2.50",)),
    ("stray.example.com", "A"): Zone(stray_first=True, records=("stray.example.com. 5 IN A 192.0.2.40",)),
    ("example.com", "MX"): Zone(records=("example.com. 3600 IN MX 10 inbound-smtp.eu-west-1.amazonaws.com.",)),
    ("example.com", "TXT"): Zone(records=('example.com. 3600 IN TXT "v=spf1 include:amazonses.com ~all"',)),
    ("10.2.0.192.in-addr.arpa", "PTR"): Zone(records=("10.2.0.192.in-addr.arpa. 300 IN PTR www.example.com.",)),
}


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    async with dns_server(TABLE) as running:
        yield running


def dns_spec(name: str, server_port: int | None, timeout: str = "2s", **options: Any) -> ProbeSpec:
    section = dict(options)
    if server_port is not None:
        section["server"] = f"{HOST}:{server_port}"
    probe = {"name": "lookup", "type": "dns", "target": name, "timeout": timeout, "dns": section}
    return parse_config(yaml.safe_dump({"probes": [probe]}), "probes.yaml", {}).probes[0]


async def lookup(name: str, server: DnsServer | int | None, timeout: str = "2s", **options: Any) -> ProbeResult:
    port = server.port if isinstance(server, DnsServer) else server
    spec = dns_spec(name, port, timeout, **options)
    probe = get_kind("dns").factory(spec, ProbeContext())
    try:
        return await run_attempt(probe, spec.timeout)
    finally:
        await probe.aclose()


# --------------------------------------------------------------------------- answers


async def test_good_a_record_passes_with_answers_ttls_and_rcode(server: DnsServer) -> None:
    result = await lookup("www.example.com", server)

    assert result.reason is Reason.OK, result.detail
    assert result.values["answer_rrs"] == 2
    assert result.values["authority_rrs"] == 0
    assert result.values["query_time_seconds"] > 0
    assert result.values["dns_lookup_time_seconds"] == 0  # the server is an address: nothing resolved
    assert result.values["query_succeeded"] == 1
    assert result.info == {"probed_dns_rcode_info": {"rcode": "NOERROR"}}
    assert set(result.phases) == {"udp"}
    assert sorted(result.facts["answers"], key=str) == [  # type: ignore[call-overload]
        {"name": "www.example.com.", "ttl": 300, "type": "A", "data": "192.0.2.10"},
        {"name": "www.example.com.", "ttl": 300, "type": "A", "data": "192.0.2.11"},
    ]
    assert server.queries == {"udp": 1, "tcp": 0}
    query = server.last_query
    assert query is not None and query.flags & dns.flags.RD and query.edns == 0 and query.payload == 1232


async def test_cname_to_an_unexpected_host_is_an_answer_mismatch(server: DnsServer) -> None:
    result = await lookup("cdn.example.com", server, expect=[CLOUDFRONT])

    assert result.reason is Reason.DNS_ANSWER_MISMATCH
    assert result.detail == (f'no answer matches "{CLOUDFRONT}"; got CNAME '
                             "unexpected-alb-123.eu-west-1.elb.amazonaws.com., A 192.0.2.20")
    assert result.values["answer_rrs"] == 2
    assert result.info == {"probed_dns_rcode_info": {"rcode": "NOERROR"}}


@pytest.mark.parametrize("expected", [CLOUDFRONT, CLOUDFRONT.upper() + ".", r"d[0-9a-z]+\.cloudfront\.net"],
                         ids=["exact", "case-and-dot", "regexp"])
async def test_cname_to_the_expected_cdn_passes(server: DnsServer, expected: str) -> None:
    result = await lookup("good-cdn.example.com", server, expect=[expected])
    assert result.reason is Reason.OK, result.detail


async def test_fail_if_answer_matches_catches_a_forbidden_answer(server: DnsServer) -> None:
    result = await lookup("cdn.example.com", server, fail_if_answer_matches=[r"\.elb\.amazonaws\.com$"])
    assert result.reason is Reason.DNS_ANSWER_MISMATCH
    assert "unexpected-alb-123" in result.detail


async def test_fewer_records_than_min_answers_is_no_answer(server: DnsServer) -> None:
    result = await lookup("www.example.com", server, min_answers=3)
    assert result.reason is Reason.DNS_NO_ANSWER
    assert "2 A record(s), expected at least 3" in result.detail


@pytest.mark.parametrize(("name", "rtype", "expected"), [
    ("example.com", "MX", "10 inbound-smtp.eu-west-1.amazonaws.com"),
    ("example.com", "TXT", "v=spf1 include:amazonses.com ~all"),
    ("192.0.2.10", "PTR", "www.example.com"),
], ids=["mx", "txt-unquoted", "ptr-from-an-ip"])
async def test_other_record_types_match_their_presentation_text(
        server: DnsServer, name: str, rtype: str, expected: str) -> None:
    result = await lookup(name, server, type=rtype, expect=[expected])
    assert result.reason is Reason.OK, result.detail
    assert result.values["answer_rrs"] == 1


# --------------------------------------------------------------------------- response codes


@pytest.mark.parametrize(("name", "reason", "rcode"), [
    ("nowhere.example.com", Reason.DNS_NXDOMAIN, "NXDOMAIN"),
    ("broken.example.com", Reason.DNS_SERVFAIL, "SERVFAIL"),
    ("private.example.com", Reason.DNS_REFUSED, "REFUSED"),
    ("odd.example.com", Reason.DNS_RCODE, "NOTIMP"),
], ids=["nxdomain", "servfail", "refused", "other-rcode"])
async def test_response_codes_map_to_their_reasons(server: DnsServer, name: str, reason: Reason, rcode: str) -> None:
    result = await lookup(name, server)

    assert result.reason is reason
    assert result.detail.startswith(f"{rcode} from {HOST}:{server.port}")
    assert result.info == {"probed_dns_rcode_info": {"rcode": rcode}}
    assert result.values["answer_rrs"] == 0
    assert result.values["query_succeeded"] == 1  # an answer came back: blackbox's meaning


async def test_nxdomain_can_be_the_expected_outcome(server: DnsServer) -> None:
    result = await lookup("nowhere.example.com", server, valid_rcodes=["NXDOMAIN"], min_answers=0)
    assert result.reason is Reason.OK, result.detail


async def test_empty_noerror_answer_is_no_answer(server: DnsServer) -> None:
    result = await lookup("empty.example.com", server)
    assert result.reason is Reason.DNS_NO_ANSWER
    assert result.values["answer_rrs"] == 0
    assert result.info == {"probed_dns_rcode_info": {"rcode": "NOERROR"}}


# --------------------------------------------------------------------------- transports


async def test_truncated_udp_answer_is_retried_over_tcp(server: DnsServer) -> None:
    result = await lookup("big.example.com", server, type="TXT", min_answers=40)

    assert result.reason is Reason.OK, result.detail
    assert server.queries == {"udp": 1, "tcp": 1}
    assert result.facts["transport"] == "tcp" and result.facts["truncated_udp"] is True
    assert set(result.phases) == {"udp", "tcp"}
    assert result.values["answer_rrs"] == 40
    assert result.info == {"probed_dns_rcode_info": {"rcode": "NOERROR"}}


async def test_transport_tcp_queries_over_tcp_only(server: DnsServer) -> None:
    result = await lookup("www.example.com", server, transport="tcp")
    assert result.reason is Reason.OK, result.detail
    assert server.queries == {"udp": 0, "tcp": 1}
    assert result.values["answer_rrs"] == 2


async def test_server_that_never_answers_times_out_naming_the_server(server: DnsServer) -> None:
    result = await lookup("slow.example.com", server, timeout="300ms")

    assert result.reason is Reason.TIMEOUT
    # The probe's own deadline (a tenth inside the timeout) ends it: the detail says who was silent.
    assert result.detail == f"no answer from {HOST}:{server.port} over udp within 0.27s"
    assert set(result.phases) == {"udp"}
    # no answer: nothing to export but blackbox's probe_dns_query_succeeded 0 and the server's address
    assert result.values == {"query_succeeded": 0, **SERVER_WHERE} and result.info == {}
    assert result.facts == {"server": f"{HOST}:{server.port}", "transport": "udp", "truncated_udp": False}
    assert server.queries == {"udp": 1, "tcp": 0}  # one attempt, one query: no retransmission


async def test_truncated_answer_whose_tcp_retry_goes_unanswered_times_out_over_tcp(server: DnsServer) -> None:
    result = await lookup("half.example.com", server, timeout="300ms", type="TXT")

    assert result.reason is Reason.TIMEOUT
    assert result.detail == f"no answer from {HOST}:{server.port} over tcp within 0.27s"
    assert set(result.phases) == {"udp", "tcp"}
    assert result.facts["truncated_udp"] is True
    assert server.queries == {"udp": 1, "tcp": 1}


async def test_a_tcp_answer_dripping_byte_by_byte_ends_at_the_timeout(server: DnsServer) -> None:
    spec = dns_spec("drip.example.com", server.port, timeout="300ms", transport="tcp")
    probe = get_kind("dns").factory(spec, ProbeContext())
    # probe() itself, not run_attempt: the probe's own deadline must end it, however the bytes trickle.
    result = await asyncio.wait_for(probe.probe(), timeout=10)
    assert result.reason is Reason.TIMEOUT
    assert result.detail.endswith("over tcp within 0.27s")


@pytest.mark.parametrize(("name", "transport"), [("slow.example.com", "udp"), ("drip.example.com", "tcp")])
async def test_cancellation_is_never_swallowed(server: DnsServer, name: str, transport: str) -> None:
    spec = dns_spec(name, server.port, timeout="5s", transport=transport)
    task = asyncio.create_task(get_kind("dns").factory(spec, ProbeContext()).probe())
    await asyncio.wait_for(server.queried.wait(), timeout=10)  # the query is out: the probe awaits the answer
    assert server.queries[transport] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_garbage_with_the_query_id_is_a_protocol_error(server: DnsServer) -> None:
    result = await lookup("junk.example.com", server)
    assert result.reason is Reason.PROTOCOL_ERROR
    assert result.detail.startswith("malformed DNS response")
    assert result.detail.endswith(f"(from {HOST}:{server.port} over udp)")
    assert result.values == {"query_succeeded": 0, **SERVER_WHERE}


async def test_datagram_with_another_query_id_is_ignored(server: DnsServer) -> None:
    result = await lookup("stray.example.com", server)
    assert result.reason is Reason.OK, result.detail
    assert result.facts["answers"][0]["data"] == "192.0.2.40"  # type: ignore[index]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_closed_port_is_connection_refused(transport: str) -> None:
    port = closed_port()
    result = await lookup("www.example.com", port, transport=transport)
    assert result.reason is Reason.CONNECTION_REFUSED
    assert result.detail == f"connection refused ({HOST}:{port} over {transport})"
    assert set(result.phases) == {transport}


async def test_recursion_desired_false_clears_the_rd_flag(server: DnsServer) -> None:
    await lookup("www.example.com", server, recursion_desired=False)
    assert server.last_query is not None and not server.last_query.flags & dns.flags.RD


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
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "probed.cli", "once", "--config", str(config), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
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


def test_default_server_is_the_first_nameserver_of_resolv_conf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    monkeypatch.setattr(dns_config, "RESOLV_CONF", str(conf))
    assert dns_config.system_server() == ("10.0.0.2", 53)


@pytest.mark.parametrize(("section", "message"), [
    ({"server": "dns.google"}, "dns.server: server must be an IP address"),
    ({"server": "10.0.0.2:99999"}, "dns.server: invalid port"),
    ({"type": "ANY"}, "dns.type: invalid value 'ANY'"),
    ({"valid_rcodes": ["NOPE"]}, "dns.valid_rcodes[0]: invalid value 'NOPE'"),
    ({"min_answers": -1}, "dns.min_answers: must be at least 0"),
    ({"fail_if_answer_matches": ["("]}, "dns.fail_if_answer_matches[0]: invalid regexp"),
    ({"transport": "doh"}, "dns.transport: invalid value 'doh' (one of: udp, tcp)"),
], ids=["server-name", "server-port", "type", "rcode", "min-answers", "regexp", "transport"])
def test_config_errors_name_the_field(section: dict[str, Any], message: str) -> None:
    text = yaml.safe_dump({"probes": [{"name": "d", "type": "dns", "target": "example.com", "dns": section}]})
    with pytest.raises(ConfigError) as err:
        parse_config(text, "probes.yaml", {})
    assert message in str(err.value)


@pytest.mark.parametrize("target", ["example.com:53", "https://example.com", "two words"])
def test_target_is_a_name_not_an_address(target: str) -> None:
    with pytest.raises(ConfigError, match="invalid name"):
        parse_config(yaml.safe_dump({"probes": [{"name": "d", "type": "dns", "target": target}]}), "p.yaml", {})


@pytest.mark.parametrize(("server", "expected"), [
    ("10.0.0.2", ("10.0.0.2", 53)), ("10.0.0.2:5353", ("10.0.0.2", 5353)),
    ("fd00::2", ("fd00::2", 53)), ("[fd00::2]:5353", ("fd00::2", 5353)),
])
def test_server_forms(server: str, expected: tuple[str, int]) -> None:
    assert dns_config.parse_server(server) == expected


# --------------------------------------------------------------------------- the wire reader


def _response(*records: str, rcode: int = 0, ext_rcode: int = 0) -> tuple[bytes, bytes]:
    """(response wire, question wire) for a query of the first record's name and type."""
    first = records[0].split()
    query = dns.message.make_query(first[0], first[3], use_edns=0)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode.make(rcode | ext_rcode << 4))
    for line in records:
        name, ttl, _in, rtype, data = line.split(None, 4)
        response.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, data))
    question = query.question[0]
    return response.to_wire(), question.name.to_digestable() + struct.pack("!HH", question.rdtype, 1)


@pytest.mark.parametrize("records", [
    ("a.example. 60 IN A 192.0.2.1",),
    ("a.example. 60 IN AAAA 2001:db8::1", "a.example. 60 IN AAAA ::ffff:192.0.2.1"),
    ("www.example. 60 IN CNAME d111.cloudfront.net.", "d111.cloudfront.net. 20 IN A 192.0.2.2"),
    ("example. 300 IN MX 10 mx1.example.", "example. 300 IN MX 20 mx2.example."),
    ('example. 300 IN TXT "v=spf1 include:amazonses.com ~all" "second \\"string\\""',),
    ("example. 300 IN SOA ns1.example. hostmaster.example. 2024010101 7200 900 1209600 300",),
    ("_https._tcp.example. 300 IN SRV 10 5 443 api.example.",),
    ('example. 300 IN CAA 0 issue "amazon.com"',),
    ("10.2.0.192.in-addr.arpa. 300 IN PTR www.example.",),
    ("example. 300 IN NS ns-1.awsdns-01.org.",),
    ("odd\\.label.example. 60 IN CNAME with\\032space.example.",),
    ("*.example. 60 IN A 192.0.2.3",),
], ids=["a", "aaaa", "cname-chain", "mx", "txt", "soa", "srv", "caa", "ptr", "ns", "escaped-names", "wildcard"])
def test_wire_reader_agrees_with_dnspython(records: tuple[str, ...]) -> None:
    wire, question = _response(*records)
    ours = dns_wire.parse_response(wire, question)
    theirs = dns.message.from_wire(wire)
    assert ours is not None
    assert [(r.name, r.ttl, r.type_text, r.data) for r in ours.answers] == [
        (rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in theirs.answer for rdata in rrset]
    assert ours.rcode == theirs.rcode() == 0


def test_wire_reader_reads_the_edns_extended_rcode() -> None:
    wire, question = _response("a.example. 60 IN A 192.0.2.1", ext_rcode=1)  # BADVERS = 16
    response = dns_wire.parse_response(wire, question)
    assert response is not None and response.rcode == 16


def test_wire_reader_ignores_answers_to_other_questions() -> None:
    wire, _ = _response("a.example. 60 IN A 192.0.2.1")
    _, other = _response("b.example. 60 IN A 192.0.2.1")
    assert dns_wire.parse_response(wire, other) is None


ANSWER = 12 + len(b"\x01a\x07example\x00") + 4  # header, question name, type and class


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda w: w[:-3], "malformed DNS response"),
    (lambda w: w + b"\x00", "malformed DNS response"),
    # The answer's owner name (a pointer to the question's) made to point at itself.
    (lambda w: w[:ANSWER] + struct.pack("!H", 0xC000 | ANSWER) + w[ANSWER + 2:], "malformed DNS response"),
], ids=["cut", "trailing-bytes", "pointer-loop"])
def test_wire_reader_rejects_malformed_responses(mangle: Any, message: str) -> None:
    wire, question = _response("a.example. 60 IN A 192.0.2.1")
    assert wire[ANSWER:ANSWER + 2] == b"\xc0\x0c"
    with pytest.raises(dns_wire.ProtocolError, match=message):
        dns_wire.parse_response(mangle(wire), question)


def test_wire_reader_ignores_a_questionless_noerror_but_rejects_a_garbage_question_count() -> None:
    wire, question = _response("a.example. 60 IN A 192.0.2.1")
    questionless = wire[:4] + bytes(8)  # the header alone: no question, no records
    assert dns_wire.parse_response(questionless, question) is None  # well-formed, answers nothing we asked
    with pytest.raises(dns_wire.ProtocolError):
        dns_wire.parse_response(wire[:4] + b"\x20\x74" + wire[6:], question)  # 8308 questions


def test_truncated_response_cut_mid_record_still_says_truncated() -> None:
    wire, question = _response("a.example. 60 IN A 192.0.2.1")
    cut = bytearray(wire[:-3])
    cut[2] |= 0x02  # TC
    response = dns_wire.parse_response(bytes(cut), question)
    assert response is not None and response.truncated


def test_the_daemons_event_loop_uvloop_runs_it_too() -> None:
    """The tests above run on asyncio's loop; the daemon runs on uvloop."""
    import uvloop

    async def scenarios() -> list[Reason]:
        async with dns_server(TABLE) as server:
            return [(await lookup(name, server, **options)).reason for name, options in [
                ("www.example.com", {}), ("big.example.com", {"type": "TXT"}),
                ("nowhere.example.com", {}), ("www.example.com", {"transport": "tcp"}),
            ]]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        reasons = runner.run(scenarios())
    assert reasons == [Reason.OK, Reason.OK, Reason.DNS_NXDOMAIN, Reason.OK]
