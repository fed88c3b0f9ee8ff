"""The web port's connections: a cap, a deadline for the first request head, file descriptors kept
for probing.

A probe needs a file descriptor for every attempt. Left alone, the web port takes one for every
connection anyone opens and keeps it as long as the peer likes: 1,100 idle connections under
`nofile` 1024 made every probe fail with "Too many open files". So:

- At start the soft RLIMIT_NOFILE is raised to the hard limit (`raise_fd_limit`).
- The web port holds at most `cap` connections (`connection_cap`: the configured maximum, and
  never more than a quarter of the descriptor limit, so probing keeps three quarters whatever the
  web port is sent). A connection beyond the cap is answered 503 and closed as soon as it is
  accepted: a descriptor for a moment, not for as long as the client wants.
- A connection must complete a request head within `header_timeout_s` of being accepted (TLS
  handshake included), or it is dropped: a client that connects and says nothing, or sends its
  headers a byte a second, holds a slot for that long at most. Between requests aiohttp's
  keep-alive timeout (`idle_timeout_s`) closes connections that sit idle, mid-header too.

TLS is started here rather than by the listening socket so that a connection counts against the
cap from the moment it is accepted, not only once its handshake has finished.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from probed.output.webstats import WebStats

log = logging.getLogger("probed")

FD_SHARE_FOR_WEB = 4
"""The web port gets at most 1/FD_SHARE_FOR_WEB of the descriptor limit; probing keeps the rest."""
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class WebLimits:
    max_connections: int = 256
    header_timeout_s: float = 10.0
    """From accept to a complete first request head (TLS handshake included)."""
    idle_timeout_s: float = 60.0
    """Keep-alive: how long a connection may wait between requests."""


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS caps the soft limit below a large hard one
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft
    log.debug("raised the open-file limit from %d to %d", soft, hard)
    return hard


def connection_cap(limits: WebLimits, fd_limit: int) -> int:
    """The web port's connection cap: the configured maximum, within its share of descriptors."""
    return max(1, min(limits.max_connections, fd_limit // FD_SHARE_FOR_WEB))


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with every accepted connection going through `_Guarded` first."""

    __slots__ = ("_bound", "_cap", "_host", "_limits", "_port", "_stats")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: WebLimits, cap: int,
                 stats: WebStats, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port, self._bound = host, port, port
        self._limits, self._cap, self._stats = limits, cap, stats

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._bound}"

    @property
    def port(self) -> int:
        return self._bound

    @property
    def stats(self) -> WebStats:
        return self._stats

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Guarded(self, server), self._host, self._port,
                                                backlog=self._backlog)
        if self._server.sockets:
            self._bound = self._server.sockets[0].getsockname()[1]


class _Guarded(asyncio.Protocol):
    """Counts a connection against the cap, arms its head deadline, starts TLS, then hands the
    connection to aiohttp's protocol and forwards everything to it."""

    __slots__ = ("_counted", "_early", "_factory", "_head", "_inner", "_site", "_tail", "_timer", "_tls_task",
                 "_transport")

    def __init__(self, site: GuardedSite, factory: Callable[[], asyncio.Protocol]) -> None:
        self._site, self._factory = site, factory
        self._inner: Any = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._head = False
        self._tail = b""
        self._tls_task: asyncio.Task[None] | None = None
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses
        site, stats = self._site, self._site._stats
        self._transport = transport
        if stats.connections_open >= site._cap:
            stats.connections_refused_total += 1
            if site._ssl_context is None:
                transport.write(_REFUSAL)  # a plain "try later" a scraper can report
                transport.close()
            else:
                transport.abort()
            return
        stats.connections_open += 1
        self._counted = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(site._limits.header_timeout_s, self._too_slow)
        if site._ssl_context is None:
            self._attach(transport)
        else:
            transport.pause_reading()  # nothing reaches us before the TLS layer is in place
            self._tls_task = loop.create_task(self._start_tls(transport, site._ssl_context))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, self, context, server_side=True,
                                       ssl_handshake_timeout=self._site._limits.header_timeout_s)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            transport.abort()
            self._release()
            return
        if tls is None or not self._counted:  # closed meanwhile (the deadline passed)
            return
        self._attach(tls)

    def _attach(self, transport: asyncio.Transport) -> None:
        self._inner = self._factory()
        self._inner.connection_made(transport)
        # The TLS layer may hand over the first request before start_tls() has returned to us.
        early, self._early = self._early, []
        for data in early:
            self._inner.data_received(data)

    def _too_slow(self) -> None:
        self._timer = None
        if not self._head and self._transport is not None:
            self._site._stats.connections_timed_out_total += 1
            self._transport.abort()
            self._release()

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._counted = False
            self._site._stats.connections_open -= 1

    def data_received(self, data: bytes) -> None:
        if not self._head:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._head = True
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            result: bool | None = self._inner.eof_received()
            return result
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
