"""TLS probe: one full handshake per attempt, the certificate chain judged and exported.

    - name: api-cert
      type: tls
      target: api.example.com:443
      tls: {min_days_remaining: 21}

An attempt resolves the host (when it is a name), connects, and runs one full handshake itself:
an `ssl.SSLObject` on memory buffers over a plain TCP transport (see _TlsClient for why), then
sends close_notify and closes. No session is resumed: every attempt proves the whole handshake.

Reasons, in order: transport (`dns_error`, `connection_refused`, `timeout` ...), handshake
(`tls_version`, `tls_handshake`), then the certificate verdict of certs.judge() (`cert_expired`,
`cert_untrusted`, `cert_hostname_mismatch`, `cert_expiring`).

The probe keeps the last chain it read: when an attempt reads none (the network failed, the
handshake broke), its result still carries the last known expiry, so an expiry alert does not
flap with the network. It also enforces its own deadline slightly inside the configured timeout
so that a timeout is a result it builds (with that expiry), not a cancellation from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from probed.config.model import ProbeSpec
from probed.config.schema import FieldError
from probed.probes import ProbeContext, ProbeKind
from probed.probes.common.certs import (
    CERT_ALIASES,
    CERT_VALUES,
    DEFAULT_MIN_DAYS_REMAINING,
    TLS_INFOS,
    ChainReport,
    cert_info,
    cert_values,
    chain_facts,
    judge,
    read_chain,
)
from probed.probes.common.deadline import budget_s
from probed.probes.common.describe import describe_tls
from probed.probes.common.errors import classify, classify_tls_error
from probed.probes.common.net import LOOKUP_ALIAS, is_ip_literal, split_host_port, with_lookup_time
from probed.probes.common.tls import check_tls_files, tls_context
from probed.result import ProbeResult, Reason

MinVersion = Literal["TLS1.2", "TLS1.3"]
_MIN_VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}
_READ_BYTES = 65536


@dataclass(frozen=True)
class TlsProbeConfig:
    server_name: str | None = None
    """SNI and the name the certificate must match (default: the target's host)."""
    ca_file: str | None = None
    """PEM bundle of trust anchors to use instead of the system store (private CAs)."""
    insecure_skip_verify: bool = False
    """Skip the trust and host name checks (not the expiry checks)."""
    min_days_remaining: float = DEFAULT_MIN_DAYS_REMAINING
    """cert_expiring when the earliest presented certificate expires sooner: a warning (the
    attempt succeeds, as in blackbox_exporter) unless `fail_if_expiring`."""
    fail_if_expiring: bool = False
    """Make cert_expiring a failure (probe_success 0, bad for SLOs) instead of a warning."""
    min_version: MinVersion = "TLS1.2"
    client_cert: str | None = None
    """PEM client certificate (with its key, or see client_key) for mutual TLS."""
    client_key: str | None = None

    def __post_init__(self) -> None:
        if self.min_days_remaining < 0:
            raise FieldError("min_days_remaining", f"must be at least 0, got {self.min_days_remaining:g}")
        if self.server_name is not None and not self.server_name.strip():
            raise FieldError("server_name", "must not be empty")
        check_tls_files(self, ca="ca_file", cert="client_cert", key="client_key", build=lambda: client_context(self))


def client_context(cfg: TlsProbeConfig) -> ssl.SSLContext:
    """The shared, cached client context for this probe's TLS settings (see common.tls.tls_context)."""
    return tls_context(cfg.ca_file, cfg.client_cert, cfg.client_key, cfg.insecure_skip_verify,
                       _MIN_VERSIONS[cfg.min_version])


def validate_target(target: str, _settings: object) -> None:
    split_host_port(target)


# --------------------------------------------------------------------------- the probe


class _Failed(Exception):
    """A handshake that failed before yielding a chain; carries the translated reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _Progress:
    """How far an attempt got, so that a failure still reports the time spent in the phase it
    stopped in (a refused connect its `connect` time), and a timeout says where it stopped."""

    phase: str = "connect"
    since: float = 0.0
    client: _TlsClient | None = None

    def enter(self, phase: str, since: float) -> None:
        self.phase, self.since = phase, since

    def stopped(self, phases: dict[str, float]) -> None:
        if self.phase not in phases:
            phases[self.phase] = time.perf_counter() - self.since


class TlsProbe:
    def __init__(self, spec: ProbeSpec, cfg: TlsProbeConfig) -> None:
        self._target = spec.target
        self._host, self._port = split_host_port(spec.target)
        self._server_name = cfg.server_name or self._host
        self._context = client_context(cfg)
        self._verify = not cfg.insecure_skip_verify
        self._mutual = cfg.client_cert is not None
        self._min_days = cfg.min_days_remaining
        self._fail_if_expiring = cfg.fail_if_expiring
        self._budget_s = budget_s(spec.timeout)
        # An IP target needs no resolution: its address is fixed for the probe's life.
        self._addresses: list[tuple[socket.AddressFamily, str]] | None = None
        if is_ip_literal(self._host):
            family = socket.AF_INET6 if ipaddress.ip_address(self._host).version == 6 else socket.AF_INET
            self._addresses = [(family, self._host)]
        self._last: tuple[ChainReport, float] | None = None
        """The last chain read, and when: carried by attempts that read none."""

    async def aclose(self) -> None:
        return None

    async def probe(self) -> ProbeResult:
        self._connected: tuple[int, str] | None = None  # set by the attempt once it has a connection
        result = await self._attempt_once()
        return with_lookup_time(result, self._connected)

    async def _attempt_once(self) -> ProbeResult:
        phases: dict[str, float] = {}
        progress = _Progress()
        try:
            async with asyncio.timeout(self._budget_s):
                report, verify_error = await self._attempt(phases, progress)
        except TimeoutError:
            progress.stopped(phases)
            return self._without_chain(Reason.TIMEOUT, self._timeout_detail(progress), phases)
        except _Failed as exc:
            progress.stopped(phases)
            return self._without_chain(exc.reason, exc.detail, phases)
        except OSError as exc:
            progress.stopped(phases)
            return self._without_chain(*classify(exc), phases)
        now = time.time()
        self._last = (report, now)
        reason, detail = judge(report, now, self._min_days, verify_error)
        result: dict[str, Any] = {
            "phases": phases, "values": cert_values(report, now), "info": cert_info(report),
            "facts": {"server_name": self._server_name, "tls": chain_facts(report, now)},
        }
        if reason is Reason.OK:
            return ProbeResult.ok(**result)
        if reason.can_warn and not self._fail_if_expiring:
            return ProbeResult.warn(reason, detail, **result)
        return ProbeResult.fail(reason, detail, **result)

    def _timeout_detail(self, progress: _Progress) -> str:
        """Where the attempt stood when its time ran out: what an operator would try next."""
        within = f"within {self._budget_s:g}s"
        client = progress.client
        if progress.phase == "resolve":
            return f"{self._host} not resolved {within}"
        if progress.phase == "connect" or client is None:
            return f"TCP connection to {self._target} not made {within}"
        if client.verdict_pending:
            return (f"TLS handshake done, but the server neither accepted nor rejected the client certificate "
                    f"{within} (no session ticket, no close)")
        if client.received == 0:
            return (f"connected, but no TLS handshake {within}: the server sent nothing "
                    "(not a TLS server, or stalled)")
        return f"TLS handshake not done {within} (the server sent {client.received} bytes, then stalled)"

    def _without_chain(self, reason: Reason, detail: str, phases: dict[str, float]) -> ProbeResult:
        """A failure that read no chain: carry the last known expiry (not the version or cipher)."""
        values: dict[str, float] = {}
        facts: dict[str, object] = {"server_name": self._server_name}
        if self._last is not None:
            report, read_at = self._last
            now = time.time()
            values = cert_values(report, now)
            facts["tls"] = {**chain_facts(report, now), "version": None, "cipher": None,
                            "last_known_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(read_at))}
        return ProbeResult.fail(reason, detail, phases=phases, values=values, facts=facts)

    async def _attempt(self, phases: dict[str, float],
                       progress: _Progress) -> tuple[ChainReport, ssl.SSLCertVerificationError | None]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        addresses = self._addresses
        if addresses is None:
            progress.enter("resolve", start)
            infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            addresses = [(family, str(addr[0])) for family, _, _, _, addr in infos]
            phases["resolve"] = time.perf_counter() - start
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = _TlsClient(self._context.wrap_bio(incoming, outgoing, server_hostname=self._server_name),
                            incoming, outgoing, loop)
        began = time.perf_counter()
        progress.enter("connect", began)
        try:
            transport = await self._connect(loop, client, addresses)
        except ConnectionError as exc:
            if not client.connected_at:
                raise
            # Connected, then broken before create_connection() returned: a handshake failure.
            phases["connect"] = client.connected_at - began
            progress.enter("tls", client.connected_at)
            raise _Failed(*_broken_handshake(exc)) from None
        try:
            phases["connect"] = client.connected_at - began
            progress.enter("tls", client.connected_at)
            progress.client = client
            error = await client.handshake
            verify_error: ssl.SSLCertVerificationError | None = None
            if isinstance(error, ssl.SSLCertVerificationError):
                verify_error = error
            elif isinstance(error, ssl.SSLError):
                raise _Failed(*classify_tls_error(error))
            elif isinstance(error, ConnectionError):
                raise _Failed(*_broken_handshake(error))
            elif error is not None:
                raise error
            elif self._mutual and client.tls.version() == "TLSv1.3":
                rejected = await client.close_and_wait()
                if rejected is not None:
                    raise _Failed(*_rejected(rejected))
            else:
                client.close_notify()
            phases["tls"] = time.perf_counter() - client.connected_at
            return read_chain(client.tls, verified=self._verify and verify_error is None), verify_error
        finally:
            transport.close()  # after sending what is buffered (close_notify, an alert)

    async def _connect(self, loop: asyncio.AbstractEventLoop, client: _TlsClient,
                       addresses: list[tuple[socket.AddressFamily, str]]) -> asyncio.BaseTransport:
        error: OSError | None = None
        for family, host in addresses:  # in the resolver's order, one at a time
            try:
                transport, _ = await loop.create_connection(lambda: client, host, self._port, family=family)
            except OSError as exc:
                if client.connected_at:
                    self._connected = (family, host)
                    raise  # this address answered, then broke the connection: no other to try
                error = error or exc
                continue
            self._connected = (family, host)
            return transport
        assert error is not None, "getaddrinfo returns at least one address or raises"
        raise error


class _TlsClient(asyncio.Protocol):
    """One TLS handshake over a plain TCP transport, with an SSLObject on memory buffers.

    Driving the SSLObject here rather than through asyncio's SSL transport (`ssl=` or
    `start_tls()`) keeps it in hand when verification fails, so the presented chain is still
    read (see common/certs.py); it also costs less CPU per handshake than awaiting socket reads
    (docs/performance.md), as the transport keeps the socket registered with the event loop for
    its whole life.

    The futures carry the outcome as a value (an exception or None), never as a raised
    exception: a cancelled attempt leaves no "exception never retrieved" behind.
    """

    def __init__(self, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.tls, self._incoming, self._outgoing = tls, incoming, outgoing
        self.handshake: asyncio.Future[BaseException | None] = loop.create_future()
        """The handshake's end: None, or what broke it (SSLCertVerificationError included)."""
        self._closed: asyncio.Future[BaseException | None] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self.connected_at = 0.0
        self.received = 0
        """Bytes the server sent (for the timeout's detail: silent, or stalled mid-handshake)."""
        self.verdict_pending = False
        """Mutual TLS 1.3: handshake done, waiting for the server's verdict on our certificate."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_at = time.perf_counter()
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self._advance()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._incoming.write(data)
        self._advance()

    def eof_received(self) -> bool:
        self._incoming.write_eof()
        self._advance()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_result(exc or ConnectionResetError("the server closed the connection"))
        self._verdict(exc if isinstance(exc, ConnectionResetError) else None)

    # -- the handshake and after

    def close_notify(self) -> None:
        """Send the client's last flight and close_notify in one write, without waiting for the
        server's: the server sees an orderly close rather than a reset."""
        with contextlib.suppress(ssl.SSLWantReadError):  # "want read": the server's close_notify
            self.tls.unwrap()
        self._flush()

    async def close_and_wait(self) -> BaseException | None:
        """close_notify, then read until the server closes; what it said if it rejected us.

        In TLS 1.3 the client's handshake is complete before the server has checked the client
        certificate: the server's verdict is its next record, session tickets (accepted) or an
        alert. A ticket ends the wait at once (a server sends one only once it has accepted the
        client's certificate); close_notify makes a server that sends none close promptly. A reset
        instead of an orderly close means the server closed with our close_notify unread, having
        given up on us; the kernel may then discard the alert it sent, so the reset is the verdict.
        """
        self.verdict_pending = True
        self.close_notify()
        self._after_handshake()  # the tickets may have come with the server's last flight
        return await self._closed

    def _verdict(self, rejected: BaseException | None) -> None:
        self.verdict_pending = False
        if not self._closed.done():
            self._closed.set_result(rejected)

    def _advance(self) -> None:
        if self.handshake.done():
            self._after_handshake()
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
        except ssl.SSLError as exc:
            self._flush()  # OpenSSL's alert: the server's log then says why the client gave up
            self.handshake.set_result(exc)
        else:
            self.handshake.set_result(None)  # the last flight is sent with close_notify

    def _after_handshake(self) -> None:
        try:
            while self.tls.read(_READ_BYTES):
                pass  # application data is not our business
        except ssl.SSLWantReadError:
            if self.verdict_pending and _has_ticket(self.tls):
                self._verdict(None)
        except ssl.SSLError as exc:
            self._verdict(exc if "ALERT" in (exc.reason or "") else None)

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and self._transport is not None:
            self._transport.write(data)


def _has_ticket(tls: ssl.SSLObject) -> bool:
    session = tls.session
    return session is not None and session.has_ticket


def _broken_handshake(exc: ConnectionError) -> tuple[Reason, str]:
    """The connection was made, then reset (or broken) before the handshake finished: the TCP
    side worked, the TLS side did not (an SNI the server rejects, an IPS, an overloaded TLS
    terminator), so it is `tls_handshake`, as a FIN at that point is."""
    if isinstance(exc, ConnectionResetError):
        return Reason.TLS_HANDSHAKE, "TLS: the server reset the connection during the handshake"
    return Reason.TLS_HANDSHAKE, f"TLS: the connection broke during the handshake ({exc.strerror or exc})"


def _rejected(exc: BaseException) -> tuple[Reason, str]:
    if isinstance(exc, ConnectionResetError):
        return Reason.TLS_HANDSHAKE, ("TLS: the server reset the connection right after the handshake "
                                      "(with TLS 1.3: the client certificate was rejected)")
    return classify(exc)


def _factory(spec: ProbeSpec, _ctx: ProbeContext) -> TlsProbe:
    return TlsProbe(spec, spec.settings)


KIND = ProbeKind(
    name="tls",
    config_cls=TlsProbeConfig,
    factory=_factory,
    validate_target=validate_target,
    aliases={**CERT_ALIASES, **LOOKUP_ALIAS},
    describe=describe_tls,
    phases=("resolve", "connect", "tls"),
    values=CERT_VALUES,
    infos=TLS_INFOS,
)
