"""The HTTP probe's machinery: per-attempt phase timing from aiohttp trace hooks, shared sessions.

Phases follow blackbox_exporter (prober/http.go), summed over redirect hops:

    resolve     DNS lookup (0 for an IP literal)
    connect     TCP connect, from the end of the lookup (or the start of the connection)
    tls         TLS handshake, from the first handshake byte to a usable connection
    processing  from a usable (new or reused) connection to the response headers: request sent,
                server thinking, first byte back
    transfer    from the response headers to the last body byte read (final response only)

aiohttp reports connection creation as one span that includes DNS and TLS; the TLS start comes
from `TimedSSLContext` (see common/tls.py), which marks the exact moment the TCP connection is up.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
from collections.abc import Callable
from time import perf_counter
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from probed import __version__
from probed.probes.common.net import connect
from probed.probes.common.tls import TLS_WATCHER
from probed.probes.http.body import ACCEPT_ENCODING

USER_AGENT = f"probed/{__version__}"


class Timing:
    """Timestamps and phase sums of one attempt. Written by the trace hooks, read by the probe."""

    __slots__ = ("conn_start", "connect", "dns_end", "dns_start", "peer", "processing", "ready", "resolve",
                 "response_at", "ssl_object", "start", "tls", "tls_start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.dns_start = self.dns_end = self.conn_start = self.tls_start = 0.0
        self.ready = self.response_at = 0.0
        self.resolve = self.connect = self.tls = self.processing = 0.0
        self.ssl_object: ssl.SSLObject | None = None
        self.peer: tuple[int, str] | None = None
        """Address family and address of the newest connection this attempt opened (None: it opened none)."""
        """TLS state of the newest connection this attempt opened (the final hop's, for https)."""

    def tls_started(self, ssl_object: ssl.SSLObject) -> None:
        self.tls_start = perf_counter()
        self.ssl_object = ssl_object

    def phases(self, end: float) -> dict[str, float]:
        """The phase sums; `transfer` runs to `end` once the final response's headers are in."""
        receiving = self.response_at and self.response_at >= self.ready
        return {
            "resolve": self.resolve,
            "connect": self.connect,
            "tls": self.tls,
            "processing": self.processing,
            "transfer": end - self.response_at if receiving else 0.0,
        }

    def interrupted(self, now: float) -> None:
        """The attempt broke off at `now`: charge the span that was open to its phase, so a
        refused connect or a handshake that failed still shows where the time went."""
        if self.conn_start > self.ready:  # making a connection
            if self.dns_start and not self.dns_end:
                self.resolve += now - self.dns_start
            elif self.tls_start:
                self.connect += self.tls_start - (self.dns_end or self.conn_start)
                self.tls += now - self.tls_start
            else:
                self.connect += now - (self.dns_end or self.conn_start)
        elif self.ready > self.response_at:  # waiting for response headers
            self.processing += now - self.ready


# The hooks run on every attempt: keep them to a clock read and a few attribute writes.
async def _dns_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    ctx.trace_request_ctx.dns_start = perf_counter()


async def _dns_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    t: Timing = ctx.trace_request_ctx
    t.dns_end = perf_counter()
    t.resolve += t.dns_end - t.dns_start


async def _connection_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    t: Timing = ctx.trace_request_ctx
    t.conn_start = perf_counter()
    t.dns_start = t.dns_end = t.tls_start = 0.0
    t.ssl_object = None


async def _connection_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    t: Timing = ctx.trace_request_ctx
    now = perf_counter()
    begin = t.dns_end or t.conn_start
    if t.tls_start:
        t.connect += t.tls_start - begin
        t.tls += now - t.tls_start
    else:
        t.connect += now - begin
    t.ready = now


async def _connection_reused(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    ctx.trace_request_ctx.ready = perf_counter()


async def _response(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: Any) -> None:
    """Headers of a response arrived: a redirect hop's, or the final one's."""
    t: Timing = ctx.trace_request_ctx
    t.response_at = perf_counter()
    t.processing += t.response_at - t.ready


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_dns_resolvehost_start.append(_dns_start)
    trace.on_dns_resolvehost_end.append(_dns_end)
    trace.on_connection_create_start.append(_connection_start)
    trace.on_connection_create_end.append(_connection_end)
    trace.on_connection_reuseconn.append(_connection_reused)
    trace.on_request_redirect.append(_response)
    trace.on_request_end.append(_response)
    return trace



def _noted(made: tuple[asyncio.Transport, ResponseHandler]) -> tuple[asyncio.Transport, ResponseHandler]:
    """Tell the attempt (its Timing, in TLS_WATCHER) to which address, over which family, it connected."""
    watcher = TLS_WATCHER.get()
    sock = made[0].get_extra_info("socket")
    peer = made[0].get_extra_info("peername")
    if isinstance(watcher, Timing) and sock is not None and peer:
        watcher.peer = (sock.family, str(peer[0]))
    return made

class _ResetHandler(ResponseHandler):
    """The protocol of a fresh-connection session: closing a connection aborts it. SO_LINGER 0 makes
    a plain close a reset already, but a TLS close first sends close_notify and waits for the
    server's, up to asyncio's 30 s shutdown timeout: a server that never answers would hold the
    socket that long after the attempt (the test zoo has one)."""

    def close(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.abort()
        super().close()


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector with a cheaper TCP connect for the common single-address case.

    aiohttp connects through aiohappyeyeballs, which awaits `loop.sock_connect()`. uvloop's
    sock_connect looks the numeric address up again with getaddrinfo *without a socket type*,
    which misses uvloop's static fast path and goes through libuv's thread pool, a sizeable
    share of a whole HTTP attempt's CPU (docs/performance.md). `common.net.connect` does the
    same non-blocking connect without the lookup. Anything else (several addresses to race, a
    local address) takes aiohttp's own path, and so does any aiohttp version whose private hooks
    differ (tests/probes/http/test_config.py has a tripwire for them).

    A fresh-connection probe closes with a reset (SO_LINGER 0) once the exchange is over. The
    prober closes first, so a graceful close would leave every connection in TIME_WAIT on this
    host for 60 s: at 500 probes/s to one ALB that is 30,000 ports, the whole ephemeral range,
    and well before that the kernel's search for a free port costs more than the request. The
    server has sent its whole response by then; it sees a reset instead of a FIN, nothing else.
    """

    def __init__(self, *args: Any, reset_on_close: bool, address_check: Callable[[str], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset_on_close = reset_on_close
        if reset_on_close:
            self._factory = functools.partial(_ResetHandler, loop=self._loop)  # type: ignore[assignment]
        self._address_check = address_check

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> tuple[asyncio.Transport, ResponseHandler]:
        addr_infos = kwargs.get("addr_infos")
        req = kwargs.get("req")
        if self._address_check is not None and req is not None:
            # Every address this connection may use, checked here where it is opened: redirects and
            # IP literals never pass through a resolver (the /probe endpoint's SSRF fence).
            for info in addr_infos or ():
                try:
                    self._address_check(str(info[4][0]))
                except Exception as exc:
                    denied = OSError(errno.EACCES, str(exc))
                    error_cls = kwargs.get("client_error", aiohttp.ClientConnectorError)
                    raise error_cls(req.connection_key, denied) from exc
        if addr_infos is None or len(addr_infos) != 1 or req is None or self._local_addr_infos:
            return _noted(await super()._wrap_create_connection(*args, **kwargs))
        del kwargs["addr_infos"]
        family, _type, _proto, _canonical, address = addr_infos[0]
        try:
            sock = await connect(self._loop, family, address, reset_on_close=self._reset_on_close)
        except OSError as exc:  # what aiohttp's own path raises, so its callers see no difference
            raise kwargs.get("client_error", aiohttp.ClientConnectorError)(req.connection_key, exc) from exc
        # From here the loop owns the socket (and closes it if the TLS handshake fails).
        return _noted(await self._wrap_existing_connection(*args, sock=sock, **kwargs))


class SessionPool:
    """aiohttp sessions for the http probes (KIND.shared).

    Probes without keepalive share one session per address family: per-probe settings
    (headers, TLS context, redirects) travel with each request, so 10,000 probes need a
    handful of sessions rather than 10,000 sessions and connectors. A keepalive probe gets a
    session of its own, so it measures its own connection: pooled connections are keyed by
    host, port and TLS context, not by the TLS server name, and must not be shared between
    probes that differ in it. Cookies are ignored, as a jar would carry them between requests.
    """

    def __init__(self, address_check: Callable[[str], None] | None = None) -> None:
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._trace = _trace_config()
        self._address_check = address_check
        """Raises for an address the pool must not connect to (the /probe endpoint's guard)."""

    def session(self, family: socket.AddressFamily) -> aiohttp.ClientSession:
        """The shared session (a new connection per request). Created lazily, inside the
        running loop, on the first attempt."""
        found = self._sessions.get(int(family))
        if found is None or found.closed:
            found = self._sessions[int(family)] = self._new_session(False, family)
        return found

    def keepalive_session(self, family: socket.AddressFamily) -> aiohttp.ClientSession:
        """A new session that keeps connections open, for one probe; the probe closes it."""
        return self._new_session(True, family)

    def _new_session(self, keepalive: bool, family: socket.AddressFamily) -> aiohttp.ClientSession:
        connector = _Connector(
            # keepalive off: a new connection per attempt, so connect and TLS are measured
            # every time (the connector and its objects are still reused).
            force_close=not keepalive,
            reset_on_close=not keepalive,
            address_check=self._address_check,
            limit=0,  # the scheduler's concurrency cap is the limit; no hidden queue here
            # Resolve on every attempt as blackbox_exporter does: a DNS failure must show now,
            # not when a 10 s cache entry expires.
            use_dns_cache=False,
            family=family,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[self._trace],
            # No aiohttp timers: the scheduler cancels the attempt at its timeout, and timer
            # handles per request are measurable overhead.
            timeout=aiohttp.ClientTimeout(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            # The probe inflates bodies itself, in bounded steps (see body.py): aiohttp would
            # do it inside its protocol callback, where no timeout can stop a gzip bomb.
            auto_decompress=False,
        )
        # aiohttp silently retries an idempotent request once when the connection drops. That
        # is right for a stale pooled connection (keepalive), but for a probe on a fresh
        # connection it hides a reset peer and doubles the load on a broken target: one
        # attempt must be one request. (tests/probes/http/test_failures.py proves a single connection.)
        session._retry_connection = keepalive
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
