"""What a `type: dns` lookup makes of the answer: records, CNAME chains, expected and forbidden answers,
minimum counts, other record types, and response codes. A real local DNS server answers from a table."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from probed.result import Reason
from tests.peers.dns import HOST, DnsServer
from tests.peers.dns_lookup import CLOUDFRONT, lookup

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
