"""The DNS wire reader: it agrees with dnspython, reads the extended rcode, and rejects what is malformed."""

from __future__ import annotations

import struct
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from probed.probes.dns import wire as dns_wire

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
