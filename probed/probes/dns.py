"""DNS probe: one query to one server, the response code and answers judged.

    - name: www-resolves-to-cloudfront
      type: dns
      target: www.example.com
      dns: {server: 10.0.0.2, type: A, expect: ['d111111abcdef8\\.cloudfront\\.net']}

dnspython builds the query (once, at factory time) and is the reference for reading answers:
exact response codes (EDNS-extended ones included), the TC flag, every record type. The exchange
itself is a few lines over a non-blocking socket instead of dnspython's resolver: the resolver
retries, walks search lists and follows its own timeouts (a probe must make exactly one
observable attempt), and costs ~174 us per query against ~40 us for the bare exchange. Reading
the answer has a fast path too, see "reading responses" below.

UDP by default, retried over TCP when the UDP answer comes back truncated (TC), as a stub
resolver would; `transport: tcp` queries over TCP only. Queries carry EDNS0 with a 1232-byte
UDP payload (the DNS Flag Day 2020 size), so most answers fit one unfragmented datagram.

Reasons, in order: transport (`timeout`, `connection_refused` ...), an rcode outside
`valid_rcodes` (`dns_nxdomain`, `dns_servfail`, `dns_refused`, else `dns_rcode`), an empty answer
section (`dns_no_answer`), `expect` / `fail_if_answer_matches` (`dns_answer_mismatch`), and fewer
records of the queried type than `min_answers` (`dns_no_answer`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.exception
import dns.flags
import dns.ipv6
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename

from probed.config.model import ProbeSpec
from probed.config.schema import FieldError, Regex
from probed.probes import MetricAlias, ProbeContext, ProbeKind
from probed.probes._net import own_deadline
from probed.probes.errors import classify
from probed.result import ProbeResult, Reason

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR"]
Rcode = Literal["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
                "NXRRSET", "NOTAUTH", "NOTZONE", "BADVERS"]

EDNS_PAYLOAD = 1232
RESOLV_CONF = "/etc/resolv.conf"
_RCODE_REASONS: dict[int, Reason] = {
    dns.rcode.NXDOMAIN: Reason.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: Reason.DNS_SERVFAIL,
    dns.rcode.REFUSED: Reason.DNS_REFUSED,
}
_MAX_SHOWN_ANSWERS = 5


def parse_server(text: str) -> tuple[str, int]:
    """'10.0.0.2', '10.0.0.2:5353', 'fd00::2' or '[fd00::2]:53' -> (ip, port). Raises ValueError."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f'invalid server "{text}" (expected ip or ip:port, IPv6 as [fd00::2]:53)')
        port_text = rest[1:] if rest else "53"
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    else:
        port_text = "53"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f'invalid port in server "{text}" (expected 1-65535)')
    port = int(port_text)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: a scoped address
    except ValueError:
        raise ValueError(f'server must be an IP address (ip or ip:port), got "{text}": resolving the '
                         "resolver would need a resolver") from None
    return host, port


@dataclass(frozen=True)
class DnsProbeConfig:
    server: str | None = None
    """`ip[:port]`; default: the first nameserver in /etc/resolv.conf."""
    type: RecordType = "A"
    transport: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = True
    valid_rcodes: tuple[Rcode, ...] = ("NOERROR",)
    expect: tuple[str, ...] = ()
    """Answers that must all be present, each written exactly or as a regexp (full match)."""
    fail_if_answer_matches: tuple[Regex, ...] = ()
    """Regexps searched in every answer; any match fails the attempt."""
    min_answers: int = 1
    """Records of the queried type the answer must hold."""
    _expect: tuple[_Expected, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.server is not None:
            try:
                parse_server(self.server)
            except ValueError as exc:
                raise FieldError("server", str(exc)) from None
        if not self.valid_rcodes:
            raise FieldError("valid_rcodes", "must list at least one response code")
        if self.min_answers < 0:
            raise FieldError("min_answers", f"must be at least 0, got {self.min_answers}")
        for entry in self.expect:
            if not entry.strip():
                raise FieldError("expect", "entries must not be empty")
        object.__setattr__(self, "_expect", tuple(_Expected.of(e) for e in self.expect))


@dataclass(frozen=True)
class _Expected:
    """An `expect` entry: matches an answer written exactly (case and a final dot aside), or, when
    the entry is a valid regexp, an answer it fully matches."""

    text: str
    exact: str
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, text: str) -> _Expected:
        try:
            pattern: re.Pattern[str] | None = re.compile(text, re.IGNORECASE)
        except re.error:
            pattern = None
        return cls(text, _normal(text), pattern)

    def matches(self, answer: str) -> bool:
        return answer == self.exact or (self.pattern is not None and self.pattern.fullmatch(answer) is not None)


def _normal(text: str) -> str:
    text = text.strip().lower()
    return text[:-1] if text.endswith(".") else text


def validate_target(target: str, settings: Any) -> None:
    _query_name(target, getattr(settings, "type", "A"))


def _query_name(target: str, rdtype: str) -> dns.name.Name:
    if rdtype == "PTR":
        try:
            return dns.reversename.from_address(target)  # `target: 10.0.0.5` for a PTR probe
        except (ValueError, dns.exception.SyntaxError):
            pass
    if not target or any(c.isspace() or c in ":/@" for c in target):
        raise ValueError(f'invalid name "{target}" (the target of a dns probe is the name to resolve; '
                         "the server goes in dns.server)")
    try:
        return dns.name.from_text(target)
    except dns.exception.DNSException as exc:
        raise ValueError(f'invalid name "{target}": {exc}') from None


@functools.lru_cache(maxsize=4)
def _system_server(path: str, _mtime_ns: int) -> tuple[str, int]:
    """The first nameserver of resolv.conf, like the libc stub resolver; localhost without one."""
    resolver = dns.resolver.Resolver(configure=False)
    try:
        resolver.read_resolv_conf(path)
    except (OSError, dns.exception.DNSException):
        return "127.0.0.1", 53
    first = next(iter(resolver.nameservers), None)
    return (str(first), 53) if first is not None else ("127.0.0.1", 53)


def system_server() -> tuple[str, int]:
    """Read when a probe is built (so a reload picks up a changed resolv.conf), parsed once."""
    try:
        mtime = os.stat(RESOLV_CONF).st_mtime_ns
    except OSError:
        mtime = -1
    return _system_server(RESOLV_CONF, mtime)


# --------------------------------------------------------------------------- reading responses
#
# dnspython's Message.from_wire() costs 50-190 us for a typical answer (it builds rrsets,
# enums and immutable rdata objects), more than everything else in an attempt together. This
# reader walks the wire itself for what a probe needs (header, question check, and per record:
# owner, type, TTL, presentation text) and hands every record type it does not render itself
# (MX, TXT, SOA, SRV, CAA ...) to dnspython's rdata parser. Anything it does not accept goes to
# dnspython's full parser, which either reads it or says precisely what is malformed.


class _Protocol(Exception):
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
        return _type_text(self.rdtype)

    @property
    def match_text(self) -> str:
        """The answer as `expect` and `fail_if_answer_matches` see it: lower case, no final dot
        (`d111.cloudfront.net`, `10 mail.example.com`); TXT strings joined without quotes."""
        return self.txt.lower() if self.txt is not None else _normal(self.data)

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
    another question. Raises _Protocol when it is not a DNS response at all."""
    try:
        return _read(wire, question)
    except (IndexError, ValueError, struct.error, dns.exception.DNSException):
        pass
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        if len(wire) >= 4 and wire[2] & 0x02:  # TC, cut mid-record: the header is all we need
            return Response(_HEADER.unpack_from(wire)[1], wire[3] & 0x0F, (), (), 0)
        raise _Protocol(f"malformed DNS response: {exc}") from None
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
def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


@functools.lru_cache(maxsize=64)
def _rcode_text(rcode: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))


# --------------------------------------------------------------------------- the probe


class DnsProbe:
    def __init__(self, spec: ProbeSpec, cfg: DnsProbeConfig) -> None:
        self._cfg = cfg
        host, port = parse_server(cfg.server) if cfg.server else system_server()
        self._server_text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # Numeric only (AI_NUMERICHOST): no lookup happens here, scoped IPv6 addresses work.
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                                       flags=socket.AI_NUMERICHOST)[0]
        self._family, self._sockaddr = family, sockaddr
        self._rdtype = dns.rdatatype.from_text(cfg.type)
        qname = _query_name(spec.target, cfg.type)
        query = dns.message.make_query(qname, self._rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        if not cfg.recursion_desired:
            query.flags &= ~dns.flags.RD
        self._wire = query.to_wire()  # a random ID is patched in per query
        self._question = qname.to_digestable() + struct.pack("!HH", self._rdtype, dns.rdataclass.IN)
        self._valid = frozenset(dns.rcode.from_text(r) for r in cfg.valid_rcodes)
        self._budget_s = own_deadline(spec.timeout)

    async def aclose(self) -> None:
        return None

    async def probe(self) -> ProbeResult:
        loop = asyncio.get_running_loop()
        phases: dict[str, float] = {}
        start = phase_start = time.perf_counter()
        phase = self._cfg.transport
        try:
            async with asyncio.timeout(self._budget_s):
                if phase == "udp":
                    response = await self._udp(loop)
                    phases["udp"] = time.perf_counter() - start
                    if response.truncated:
                        phase, phase_start = "tcp", time.perf_counter()
                if phase == "tcp":
                    response = await self._tcp(loop)
                    phases["tcp"] = time.perf_counter() - phase_start
        except TimeoutError:
            return self._failed(Reason.TIMEOUT, f"no answer from {self._server_text} over {phase} "
                                f"within {self._budget_s:g}s", phases, phase, phase_start)
        except _Protocol as exc:
            return self._failed(Reason.PROTOCOL_ERROR, f"{exc} (from {self._server_text} over {phase})",
                                phases, phase, phase_start)
        except OSError as exc:
            reason, detail = classify(exc)
            return self._failed(reason, f"{detail} ({self._server_text} over {phase})", phases, phase, phase_start)
        return self._judge(response, time.perf_counter() - start, phases)

    def _failed(self, reason: Reason, detail: str, phases: dict[str, float], phase: str,
                phase_start: float) -> ProbeResult:
        """No usable answer: the time spent in the transport it stopped in, and where it asked."""
        phases.setdefault(phase, time.perf_counter() - phase_start)
        facts = {"server": self._server_text, "transport": phase, "truncated_udp": "udp" in phases and phase == "tcp"}
        return ProbeResult.fail(reason, detail, phases=phases, facts=facts)

    # -- the exchange

    def _query(self) -> tuple[bytes, bytes]:
        qid = secrets.token_bytes(2)
        return qid, qid + self._wire[2:]

    async def _udp(self, loop: asyncio.AbstractEventLoop) -> Response:
        qid, wire = self._query()
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self._sockaddr)  # connected: the kernel drops datagrams from elsewhere
            await loop.sock_sendall(sock, wire)
            while True:
                data = await loop.sock_recv(sock, 65535)
                # Another query's late answer or a spoof attempt is ignored, as a resolver would.
                if data[:2] == qid:
                    response = parse_response(data, self._question)
                    if response is not None:
                        return response
        finally:
            sock.close()

    async def _tcp(self, loop: asyncio.AbstractEventLoop) -> Response:
        qid, wire = self._query()
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, self._sockaddr)
            await loop.sock_sendall(sock, struct.pack("!H", len(wire)) + wire)
            (length,) = struct.unpack("!H", await _recv_exactly(loop, sock, 2))
            data = await _recv_exactly(loop, sock, length)
        finally:
            sock.close()
        response = parse_response(data, self._question) if data[:2] == qid else None
        if response is None:
            raise _Protocol("the TCP answer is not a response to the query")
        return response

    # -- the verdict

    def _judge(self, response: Response, elapsed: float, phases: dict[str, float]) -> ProbeResult:
        rcode_text = _rcode_text(response.rcode)
        answers = response.answers
        values = {
            "lookup_time_seconds": elapsed,
            "answer_rrs": len(answers),
            "authority_rrs": len(response.authority),
            "additional_rrs": response.additional,
        }
        facts: dict[str, object] = {
            "server": self._server_text,
            "transport": "tcp" if "tcp" in phases else "udp",
            "truncated_udp": "udp" in phases and "tcp" in phases,
            "rcode": rcode_text,
            "answers": [r.fact() for r in answers],
            "authority": [r.fact() for r in response.authority],
        }
        result: dict[str, Any] = {"phases": phases, "values": values, "facts": facts,
                                  "info": {"probed_dns_rcode_info": {"rcode": rcode_text}}}
        reason, detail = self._verdict(response.rcode, rcode_text, answers)
        if reason is Reason.OK:
            return ProbeResult.ok(**result)
        return ProbeResult.fail(reason, detail, **result)

    def _verdict(self, rcode: int, rcode_text: str, answers: Sequence[Record]) -> tuple[Reason, str]:
        cfg = self._cfg
        if rcode not in self._valid:
            reason = _RCODE_REASONS.get(rcode, Reason.DNS_RCODE)
            return reason, f"{rcode_text} from {self._server_text} (valid: {', '.join(cfg.valid_rcodes)})"
        if not answers:
            if cfg.min_answers > 0:
                return Reason.DNS_NO_ANSWER, f"{rcode_text} with an empty answer section"
            if cfg.expect:
                return Reason.DNS_ANSWER_MISMATCH, f'expected "{cfg.expect[0]}", got no answers'
            return Reason.OK, ""
        if cfg.fail_if_answer_matches or cfg.expect:
            texts = [r.match_text for r in answers]
            for pattern in cfg.fail_if_answer_matches:
                for text in texts:
                    if pattern.search(text):
                        return Reason.DNS_ANSWER_MISMATCH, f'answer "{text}" matches /{pattern.pattern}/'
            for expected in cfg._expect:
                if not any(expected.matches(text) for text in texts):
                    return Reason.DNS_ANSWER_MISMATCH, f'no answer matches "{expected.text}"; got {_shown(answers)}'
        typed = sum(1 for r in answers if r.rdtype == self._rdtype)
        if typed < cfg.min_answers:
            return Reason.DNS_NO_ANSWER, (f"{typed} {cfg.type} record(s), expected at least {cfg.min_answers}; "
                                          f"got {_shown(answers)}")
        return Reason.OK, ""


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = await loop.sock_recv(sock, size - len(buf))
        if not chunk:
            raise ConnectionResetError("the server closed the TCP connection mid-answer")
        buf += chunk
    return bytes(buf)


def _shown(answers: Sequence[Record]) -> str:
    shown = [f"{r.type_text} {r.data}" for r in answers]
    more = len(shown) - _MAX_SHOWN_ANSWERS
    return ", ".join(shown[:_MAX_SHOWN_ANSWERS]) + (f" and {more} more" if more > 0 else "")


def describe(result: ProbeResult) -> list[str]:
    """`probed once` lines: the status, then the answers with their TTLs in columns, as dig
    prints them (at most _MAX_DESCRIBED_RECORDS per section; `--json` has them all)."""
    facts = result.facts
    if "rcode" not in facts:
        return []  # no answer: the detail says from where and over what
    via = str(facts.get("transport"))
    if facts.get("truncated_udp"):
        via = "udp (truncated), then tcp"
    answers = _records_of(facts.get("answers"))
    authority = _records_of(facts.get("authority"))
    status = f"{facts['rcode']} from {facts.get('server')} over {via}: {_count(len(answers), 'answer')}"
    if authority:
        status += f", {_count(len(authority), 'authority record')}"
    lines = [status]
    lines.extend(_columns(answers))
    if authority:
        lines.append("authority:")
        lines.extend("  " + line for line in _columns(authority))
    return lines


_MAX_DESCRIBED_RECORDS = 20


def _records_of(section: object) -> list[dict[str, object]]:
    return [r for r in section if isinstance(r, dict)] if isinstance(section, list) else []


def _count(n: int, noun: str) -> str:
    return f"no {noun}s" if n == 0 else f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _columns(records: list[dict[str, object]]) -> list[str]:
    shown = [(str(r.get("name")), str(r.get("ttl")), str(r.get("type")), str(r.get("data")))
             for r in records[:_MAX_DESCRIBED_RECORDS]]
    if not shown:
        return []
    name_w, ttl_w, type_w = (max(len(row[i]) for row in shown) for i in range(3))
    lines = [f"{name:<{name_w}}  {ttl:>{ttl_w}}  {rtype:<{type_w}}  {data}" for name, ttl, rtype, data in shown]
    if len(records) > len(shown):
        lines.append(f"... and {len(records) - len(shown)} more (all of them with --json)")
    return lines


def _factory(spec: ProbeSpec, _ctx: ProbeContext) -> DnsProbe:
    return DnsProbe(spec, spec.settings)


KIND = ProbeKind(
    name="dns",
    config_cls=DnsProbeConfig,
    factory=_factory,
    validate_target=validate_target,
    aliases={
        "lookup_time_seconds": MetricAlias("probe_dns_lookup_time_seconds",
                                           "Time from sending the query to the final answer (TCP retry included)."),
        "answer_rrs": MetricAlias("probe_dns_answer_rrs", "Records in the answer section."),
        "authority_rrs": MetricAlias("probe_dns_authority_rrs", "Records in the authority section."),
        "additional_rrs": MetricAlias("probe_dns_additional_rrs",
                                      "Records in the additional section (the EDNS OPT record not counted)."),
    },
    describe=describe,
)
