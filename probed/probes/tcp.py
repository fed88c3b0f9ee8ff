"""TCP probe: connect (optionally TLS), optionally a scripted send/expect exchange, then close.

A plain connect is the hot path (the most frequent probe of all, `nc -zv` for every database
port): a non-blocking socket, a connect awaited on the loop (`common.net.connect`), close. No
transport, protocol or stream objects are created unless there is something to say or TLS to
negotiate.

Closing: a plain connect probe closes with a reset (SO_LINGER 0) by default. Nothing was
exchanged, so nothing can be lost, and it leaves no TIME_WAIT socket on the prober: a normal
close parks every probed connection in TIME_WAIT for 60 s, and with ~28,000 ephemeral ports
that caps connects to one address:port at about 470 per second. The cost: the server sees a
reset instead of an orderly close, which some servers log as an error (though a bare connect and
close is usually logged too, e.g. PostgreSQL's "incomplete startup packet"). Probes that talk
(send/expect, TLS) close gracefully, so the server sees an orderly end of its protocol.
`close:` overrides both.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass, field
from time import perf_counter
from typing import Annotated, Any, Literal

from probed.config.model import ProbeSpec
from probed.config.regex import Regexp, RegexpError
from probed.config.schema import SECRET, ByteSize, FieldError, Regex
from probed.probes import ProbeContext, ProbeKind
from probed.probes.common.certs import (
    CERT_ALIASES,
    CERT_VALUES,
    CIPHER_INFO,
    TLS_INFOS,
    cert_info,
    cert_values,
    chain_facts,
    read_chain,
)
from probed.probes.common.deadline import budget_s
from probed.probes.common.describe import describe_connection
from probed.probes.common.errors import classify
from probed.probes.common.net import (
    FAMILIES,
    LOOKUP_ALIAS,
    REGEX_ALIAS,
    IpProtocol,
    connect,
    is_ip_literal,
    split_host_port,
    with_lookup_time,
)
from probed.probes.common.tls import TLS_WATCHER, TlsOptions, client_context
from probed.redact import excerpt, redact
from probed.result import ProbeResult, Reason


@dataclass(frozen=True)
class TcpStep:
    """One step of a conversation: first wait for `expect` (if any), then `send` (if any)."""

    expect: Regex | None = None
    send: Annotated[str | None, SECRET] = None


@dataclass(frozen=True)
class TcpSettings:
    tls: bool = False
    """Negotiate TLS right after connecting (a TLS port: 443, 636, 993, 6380 ...)."""
    tls_config: TlsOptions = field(default_factory=TlsOptions)
    send: Annotated[str | None, SECRET] = None
    """Sent after connecting (UTF-8); use YAML escapes for CR/LF: "PING\\r\\n"."""
    expect: Regex | None = None
    """Regexp the bytes received (after `send`) must match before the probe succeeds."""
    query_response: tuple[TcpStep, ...] = ()
    """A scripted conversation, e.g. a banner check then a command; instead of send/expect."""
    max_read_bytes: ByteSize = 64 * 1024
    """How much to read while waiting for an `expect` match before giving up."""
    ip_protocol: IpProtocol = "auto"
    close: Literal["auto", "graceful", "reset"] = "auto"
    """auto: reset for a plain connect, graceful when the probe talks or uses TLS."""

    def __post_init__(self) -> None:
        if self.query_response and (self.send is not None or self.expect is not None):
            raise FieldError("query_response", "use either send/expect or query_response, not both")
        if self.max_read_bytes < 1:
            raise FieldError("max_read_bytes", "must be at least 1 byte")
        patterns = [("expect", self.expect), *(("query_response", st.expect) for st in self.query_response)]
        for name, pattern in patterns:
            if pattern is not None:
                try:
                    bytes_pattern(pattern)
                except RegexpError as exc:
                    raise FieldError(name, f"cannot match bytes with /{pattern.pattern}/: {exc}") from None

    @property
    def steps(self) -> tuple[TcpStep, ...]:
        if self.query_response:
            return self.query_response
        steps = []
        if self.send is not None:
            steps.append(TcpStep(send=self.send))
        if self.expect is not None:
            steps.append(TcpStep(expect=self.expect))
        return tuple(steps)


def validate_target(target: str, _settings: Any) -> None:
    split_host_port(target)


def bytes_pattern(pattern: Regexp) -> Regexp:
    """The configured (text) regexp, for matching the raw bytes a server sends, byte by byte."""
    return Regexp(pattern.pattern, ignore_case=pattern.ignore_case, bytewise=True)


class _Mismatch(Exception):
    """The conversation went wrong in a way that is the peer's answer, not the transport."""


class TcpProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        s: TcpSettings = spec.settings if spec.settings is not None else TcpSettings()
        self._secrets = ctx.secrets
        self._host, self._port = split_host_port(spec.target)
        self._family = FAMILIES[s.ip_protocol]
        # An IP literal needs no lookup: resolve it once, here, and skip getaddrinfo per attempt.
        self._static: list[tuple[socket.AddressFamily, Any]] | None = None
        if is_ip_literal(self._host):
            info = socket.getaddrinfo(self._host, self._port, self._family, socket.SOCK_STREAM,
                                      flags=socket.AI_NUMERICHOST)
            self._static = [(fam, addr) for fam, _t, _p, _c, addr in info]
        self._ssl: ssl.SSLContext | None = client_context(s.tls_config) if s.tls else None
        # An IP address here is fine: Python checks it against the certificate's IP SANs and
        # sends no SNI for it.
        self._server_hostname = s.tls_config.server_name or self._host
        self._steps = [(bytes_pattern(st.expect) if st.expect else None,
                        st.send.encode() if st.send is not None else None) for st in s.steps]
        self._max_read = s.max_read_bytes
        # The conversation ends at the attempt's own deadline, before the scheduler's hard
        # timeout, so that a server which answered something else is reported with what it said.
        self._answer_within = budget_s(spec.timeout)
        talks = bool(self._steps) or self._ssl is not None
        self._reset = s.close == "reset" or (s.close == "auto" and not talks)

    async def aclose(self) -> None:
        return None

    async def probe(self) -> ProbeResult:
        self._connected: tuple[int, str] | None = None  # set by the attempt once it has a connection
        result = await self._attempt_once()
        # blackbox's probe_failed_due_to_regex: 1 when the answer did not match `expect`.
        return with_lookup_time(result, self._connected,
                                failed_due_to_regex=1 if result.reason is Reason.EXPECT_MISMATCH else 0)

    async def _attempt_once(self) -> ProbeResult:
        loop = asyncio.get_running_loop()
        start = perf_counter()
        addresses, resolved = self._static, start
        if addresses is None:
            try:
                info = await loop.getaddrinfo(self._host, self._port, family=self._family, type=socket.SOCK_STREAM)
            except OSError as exc:
                return self._failed(exc, phases={"resolve": perf_counter() - start, "connect": 0.0})
            addresses = [(fam, addr) for fam, _t, _p, _c, addr in info]
            resolved = perf_counter()
        sock = None
        error: OSError | None = None
        for family, address in addresses:  # in resolver order, like `nc`; the first that connects wins
            try:
                sock = await connect(loop, family, address, self._reset)
                self._connected = (family, str(address[0]))
                break
            except OSError as exc:
                error = exc
        connected = perf_counter()
        phases = {"resolve": resolved - start, "connect": connected - resolved}
        if sock is None:
            return self._failed(error or OSError("no address to connect to"), phases=phases)
        if self._ssl is None and not self._steps:
            sock.close()
            return ProbeResult(True, Reason.OK, phases=phases)
        deadline = loop.time() + self._answer_within - (perf_counter() - start)
        return await self._converse(sock, phases, deadline)

    async def _converse(self, sock: socket.socket, phases: dict[str, float], deadline: float) -> ProbeResult:
        """TLS and/or send/expect over asyncio streams (the rarer, talking kind of TCP probe)."""
        writer: asyncio.StreamWriter | None = None
        handed_over = False
        tls = _TlsCapture()
        result: dict[str, Any] = {"phases": phases, "values": {}, "info": {}, "facts": {}}  # ProbeResult fields
        received = bytearray()  # read but not yet consumed by a match
        waiting_for: Regexp | None = None
        try:
            try:
                started = perf_counter()
                handed_over = True  # from here the loop owns the socket, and closes it if this fails
                token = TLS_WATCHER.set(tls)
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock, ssl=self._ssl, server_hostname=self._server_hostname if self._ssl else None,
                        limit=self._max_read)
                finally:
                    TLS_WATCHER.reset(token)
                    if self._ssl is not None:
                        phases["tls"] = perf_counter() - started
                tls_problem = None
                if tls.ssl_object is not None:
                    tls_problem = self._inspect_tls(tls.ssl_object, True, result)
                async with asyncio.timeout_at(deadline):
                    for expect, send in self._steps:
                        if expect is not None:
                            waiting_for = expect
                            await self._expect(reader, expect, received, deadline)
                            waiting_for = None
                        if send is not None:
                            writer.write(send)
                            await writer.drain()
            except TimeoutError:
                if waiting_for is not None and received:
                    # The server answered, just not what was expected, and kept the connection
                    # open (Redis, SMTP ...): that is a mismatch, and the answer is the clue.
                    detail = (f"no match for /{_text(waiting_for)}/ before the timeout; received "
                              f"{_show(received, self._secrets)}")
                    return ProbeResult.fail(Reason.EXPECT_MISMATCH, redact(detail, self._secrets), **result)
                return ProbeResult.fail(Reason.TIMEOUT, "no answer before the timeout", **result)
            except _Mismatch as exc:
                return ProbeResult.fail(Reason.EXPECT_MISMATCH, redact(str(exc), self._secrets), **result)
            except OSError as exc:
                if writer is None and tls.ssl_object is not None:  # the handshake failed
                    self._inspect_tls(tls.ssl_object, False, result)
                return self._failed(exc, **result)
            if tls_problem is not None:
                return ProbeResult.fail(tls_problem[0], redact(tls_problem[1], self._secrets), **result)
            return ProbeResult(True, Reason.OK, **result)
        finally:
            if writer is not None:
                if self._reset:
                    writer.transport.abort()  # SO_LINGER 0 is set: the close sends RST
                elif writer.get_extra_info("ssl_object") is not None:
                    # A TLS close waits for the peer's close_notify, up to asyncio's 30 s shutdown
                    # timeout: a server that never answers would hold the socket that long.
                    writer.transport.abort()
                else:
                    writer.close()
            elif not handed_over:
                sock.close()

    def _inspect_tls(self, ssl_object: ssl.SSLObject, verified: bool,
                     result: dict[str, Any]) -> tuple[Reason, str] | None:
        """THE place where the TLS connection is inspected (see HttpProbe._inspect_tls): add
        certificate facts to result["values"/"info"/"facts"]; return (reason, detail) to fail.

        The certificate values and info are those of https (common/certs.py), as blackbox's tcp
        prober exports them, less the cipher (blackbox's tcp prober has none). The verdict is the
        handshake's own: verification is on unless `insecure_skip_verify`."""
        report = read_chain(ssl_object, verified=verified and self._ssl is not None
                            and self._ssl.verify_mode == ssl.CERT_REQUIRED)
        now = time.time()
        result["values"].update(cert_values(report, now))
        result["info"].update((k, v) for k, v in cert_info(report).items() if k != CIPHER_INFO)
        result["facts"]["tls"] = chain_facts(report, now)
        return None

    async def _expect(self, reader: asyncio.StreamReader, pattern: Regexp, received: bytearray,
                      deadline: float) -> None:
        """Reads until `pattern` matches; consumes `received` through the match (the rest is
        left for the next step). Bounded by max_read_bytes; a costly search runs in a search
        thread until the deadline (a copy, so the buffer can change while it runs)."""
        while True:
            match = await pattern.search_until(bytes(received), deadline)
            if match is not None:
                del received[:match.end()]
                return
            if len(received) >= self._max_read:
                raise _Mismatch(f"no match for /{_text(pattern)}/ in the first {len(received)} bytes: "
                                f"{_show(received, self._secrets)}")
            chunk = await reader.read(self._max_read - len(received))
            if not chunk:
                raise _Mismatch(f"connection closed before /{_text(pattern)}/ matched; received "
                                f"{len(received)} bytes: {_show(received, self._secrets)}")
            received += chunk

    def _failed(self, exc: BaseException, **result: Any) -> ProbeResult:
        reason, detail = classify(exc)
        return ProbeResult.fail(reason, redact(detail, self._secrets), **result)


def _text(pattern: Regexp) -> str:
    return pattern.pattern


def _show(data: bytes | bytearray, secrets: frozenset[str], limit: int = 64) -> str:
    """What the server sent, as repr() shows bytes: redacted (also a secret repr() escaped,
    `p\\xc3\\xa4ss`), then clipped, so no cut ever shows a secret's prefix."""
    return excerpt(repr(bytes(data)), secrets, limit)


class _TlsCapture:
    """Receives the SSLObject of a handshake, also of one that fails (see common.tls.TimedSSLContext)."""

    __slots__ = ("ssl_object",)

    def __init__(self) -> None:
        self.ssl_object: ssl.SSLObject | None = None

    def tls_started(self, ssl_object: ssl.SSLObject) -> None:
        self.ssl_object = ssl_object


def _factory(spec: ProbeSpec, ctx: ProbeContext) -> TcpProbe:
    return TcpProbe(spec, ctx)


KIND = ProbeKind(
    name="tcp",
    config_cls=TcpSettings,
    factory=_factory,
    validate_target=validate_target,
    describe=describe_connection,
    aliases={**LOOKUP_ALIAS, **CERT_ALIASES, "failed_due_to_regex": REGEX_ALIAS},
    phases=("resolve", "connect", "tls"),
    values=CERT_VALUES,
    infos={k: v for k, v in TLS_INFOS.items() if k != CIPHER_INFO},
)
