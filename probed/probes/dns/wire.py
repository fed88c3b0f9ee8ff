"""Reading DNS responses off the wire.

dnspython's Message.from_wire() builds rrsets, enums and immutable rdata objects, which costs
more than everything else in an attempt together (docs/performance.md). This reader walks the
wire itself for what a probe needs (header, question check, and per record: owner, type, TTL,
presentation text) and hands every record type it does not render itself (MX, TXT, SOA, SRV,
CAA ...) to dnspython's rdata parser. Anything it does not accept goes to dnspython's full
parser, which either reads it or says precisely what is malformed.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.ipv6
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from probed.probes.dns.config import normal_text


class ProtocolError(Exception):
    """The server answered with something that is not a usable DNS response."""


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    """Owner name, absolute (`www.example.com.`)."""
    rdtype: int
    ttl: int
    data: str
    """Presentation format, as dig and dnspython print it."""
    txt: str | None = None
    """TXT only: the strings joined, unquoted."""

    @property
    def type_text(self) -> str:
        return type_name(self.rdtype)

    @property
    def match_text(self) -> str:
        """The answer as `expect` and `fail_if_answer_matches` see it: lower case, no final dot
        (`d111.cloudfront.net`, `10 mail.example.com`); TXT strings joined without quotes."""
        return self.txt.lower() if self.txt is not None else normal_text(self.data)

    def fact(self) -> dict[str, object]:
        return {"name": self.name, "ttl": self.ttl, "type": self.type_text, "data": self.data}


@dataclass(frozen=True, slots=True)
class Response:
    flags: int
    rcode: int
    """With the EDNS extended bits (BADVERS is 16)."""
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: int
    """Records in the additional section, the EDNS OPT record not counted."""

    @property
    def truncated(self) -> bool:
        return bool(self.flags & dns.flags.TC)


_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
# Bytes dnspython prints as they are in a name; anything else is escaped (\\DDD, \\.), which
# dns.name does for the rare name that needs it.
_PLAIN_NAME_BYTES = bytes(b for b in range(0x21, 0x7F) if b not in b'"().;\\@$')
_NAME_TYPES = frozenset({dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.DNAME})
_QUESTIONLESS_RCODES = frozenset({dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED})


def parse_response(wire: bytes, question: bytes) -> Response | None:
    """A response to `question` (its wire form, lower case), or None when `wire` answers
    another question. Raises ProtocolError when it is not a DNS response at all."""
    try:
        return _read(wire, question)
    except (IndexError, ValueError, struct.error, dns.exception.DNSException):
        pass
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        if len(wire) >= 4 and wire[2] & 0x02:  # TC, cut mid-record: the header is all we need
            return Response(_HEADER.unpack_from(wire)[1], wire[3] & 0x0F, (), (), 0)
        raise ProtocolError(f"malformed DNS response: {exc}") from None
    return _from_message(message, question)


def _read(wire: bytes, question: bytes) -> Response | None:
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if not flags & dns.flags.QR:
        return None
    rcode = flags & 0x0F
    offset = 12
    if qdcount == 1:
        end = offset + len(question)
        if wire[offset:end].lower() != question:
            return None
        offset = end
    elif not (qdcount == 0 and rcode in _QUESTIONLESS_RCODES):
        # Rare: dnspython's parser tells a well-formed answer to another question (ignored)
        # from bytes that are no DNS message at all (protocol_error).
        raise ValueError("unexpected question count")
    answers, offset = _records(wire, offset, ancount)
    authority, offset = _records(wire, offset, nscount)
    additional = 0
    for _ in range(arcount):
        _, offset = _name(wire, offset)
        rdtype, _, ttl, rdlength = _RR.unpack_from(wire, offset)
        offset += 10 + rdlength
        if rdtype == dns.rdatatype.OPT:
            rcode |= (ttl >> 24) << 4  # EDNS: the upper 8 bits of a 12-bit rcode
        else:
            additional += 1
    if offset != len(wire):
        raise ValueError("trailing bytes")  # dnspython names the problem
    return Response(flags, rcode, answers, authority, additional)


def _records(wire: bytes, offset: int, count: int) -> tuple[tuple[Record, ...], int]:
    records = []
    for _ in range(count):
        name, offset = _name(wire, offset)
        rdtype, rdclass, ttl, rdlength = _RR.unpack_from(wire, offset)
        offset += 10
        end = offset + rdlength
        if end > len(wire):
            raise IndexError("record beyond the message")
        txt = None
        if rdclass == dns.rdataclass.IN and rdtype == dns.rdatatype.A and rdlength == 4:
            data = socket.inet_ntop(socket.AF_INET, wire[offset:end])
        elif rdclass == dns.rdataclass.IN and rdtype == dns.rdatatype.AAAA and rdlength == 16:
            data = dns.ipv6.inet_ntoa(wire[offset:end])
        elif rdtype in _NAME_TYPES:
            data, name_end = _name(wire, offset)
            if name_end != end:
                raise ValueError("name does not fill the record")
        else:
            rdata = dns.rdata.from_wire(rdclass, rdtype, wire, offset, rdlength)
            data = rdata.to_text()
            if rdtype == dns.rdatatype.TXT:
                txt = _joined(rdata)
        records.append(Record(name, rdtype, ttl, data, txt))
        offset = end
    return tuple(records), offset


def _name(wire: bytes, offset: int) -> tuple[str, int]:
    """The (possibly compressed) name at `offset` and the offset after it."""
    labels: list[bytes] = []
    end = -1
    limit = offset  # compression pointers must point strictly backwards, each before the last
    size = 1
    while True:
        length = wire[offset]
        if length == 0:
            offset += 1
            break
        if length < 64:
            label = wire[offset + 1: offset + 1 + length]
            if len(label) != length:
                raise IndexError("label beyond the message")
            size += length + 1
            if size > 255:
                raise ValueError("name too long")
            labels.append(label)
            offset += 1 + length
        elif length >= 0xC0:
            target = ((length & 0x3F) << 8) | wire[offset + 1]
            if end < 0:
                end = offset + 2
            if target >= limit:
                raise ValueError("bad compression pointer")
            limit = offset = target
        else:
            raise ValueError("unknown label type")
    if not b"".join(labels).translate(None, _PLAIN_NAME_BYTES):  # nothing left: nothing to escape
        text = b".".join(labels).decode("ascii") + "."
    else:
        text = dns.name.Name([*labels, b""]).to_text()
    return text, (end if end >= 0 else offset)


def _joined(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", "backslashreplace")


def _from_message(message: dns.message.Message, question: bytes) -> Response | None:
    """The same Response from dnspython's parse (for what the fast reader leaves to it)."""
    if not message.flags & dns.flags.QR:
        return None
    if message.question:
        q = message.question[0]
        if len(message.question) != 1 or \
                q.name.to_digestable() + struct.pack("!HH", q.rdtype, q.rdclass) != question:
            return None
    elif message.rcode() not in _QUESTIONLESS_RCODES:
        return None

    def records(section: list[Any]) -> tuple[Record, ...]:
        return tuple(Record(rrset.name.to_text(), rrset.rdtype, rrset.ttl, rdata.to_text(),
                            _joined(rdata) if rrset.rdtype == dns.rdatatype.TXT else None)
                     for rrset in section for rdata in rrset)

    return Response(int(message.flags), message.rcode(), records(message.answer), records(message.authority),
                    sum(len(rrset) for rrset in message.additional))


@functools.lru_cache(maxsize=256)
def type_name(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


@functools.lru_cache(maxsize=64)
def rcode_name(rcode: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
