"""The DNS attempt: one query to one server over UDP (TCP when truncated), the answer judged."""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from probed.config.model import ProbeSpec
from probed.probes.common.deadline import budget_s
from probed.probes.common.errors import classify
from probed.probes.common.net import LOOKUP_VALUE, where
from probed.probes.dns.config import EDNS_PAYLOAD, DnsProbeConfig, parse_server, query_name, system_server
from probed.probes.dns.wire import ProtocolError, Record, Response, parse_response, rcode_name
from probed.result import ProbeResult, Reason

_RCODE_REASONS: dict[int, Reason] = {
    dns.rcode.NXDOMAIN: Reason.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: Reason.DNS_SERVFAIL,
    dns.rcode.REFUSED: Reason.DNS_REFUSED,
}
_MAX_SHOWN_ANSWERS = 5



class DnsProbe:
    def __init__(self, spec: ProbeSpec, cfg: DnsProbeConfig) -> None:
        self._cfg = cfg
        host, port = parse_server(cfg.server) if cfg.server else system_server()
        self._server_text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # Numeric only (AI_NUMERICHOST): no lookup happens here, scoped IPv6 addresses work.
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                                       flags=socket.AI_NUMERICHOST)[0]
        self._family, self._sockaddr = family, sockaddr
        # blackbox's probe_ip_protocol and probe_ip_addr_hash: the server's address, on every result.
        self._where = where(family, str(sockaddr[0]))
        self._rdtype = dns.rdatatype.from_text(cfg.type)
        qname = query_name(spec.target, cfg.type)
        query = dns.message.make_query(qname, self._rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        if not cfg.recursion_desired:
            query.flags &= ~dns.flags.RD
        self._wire = query.to_wire()  # a random ID is patched in per query
        self._question = qname.to_digestable() + struct.pack("!HH", self._rdtype, dns.rdataclass.IN)
        self._valid = frozenset(dns.rcode.from_text(r) for r in cfg.valid_rcodes)
        self._budget_s = budget_s(spec.timeout)

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
        except ProtocolError as exc:
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
        return ProbeResult.fail(reason, detail, phases=phases, facts=facts,
                                values={"query_succeeded": 0, LOOKUP_VALUE: 0.0, **self._where})

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
            raise ProtocolError("the TCP answer is not a response to the query")
        return response

    # -- the verdict

    def _judge(self, response: Response, elapsed: float, phases: dict[str, float]) -> ProbeResult:
        rcode_text = rcode_name(response.rcode)
        answers = response.answers
        values = {
            "query_succeeded": 1,  # an answer came back (blackbox's meaning, whatever its rcode)
            "query_time_seconds": elapsed,
            LOOKUP_VALUE: 0.0,
            "answer_rrs": len(answers),
            "authority_rrs": len(response.authority),
            "additional_rrs": response.additional,
            **self._where,
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
            for expected in cfg.expected:
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
