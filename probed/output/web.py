"""The HTTP face of the daemon: /metrics, health, reload, the JSON API and the status page (routes only:
the page's HTML is in pages.py).

Every request passes one guard first (`_guard`): on a loopback listener only local Host names are
served (a DNS-rebinding page would otherwise reach the daemon through the browser), basic auth when
the web config file asks for it, and state-changing requests (POST /-/reload) only from the daemon's
own origin or from tools that send no Origin at all (curl, sidecar reloaders). Every response says
`nosniff`; HTML pages also carry pages.PAGE_HEADERS.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from yarl import URL

from probed.output import pages
from probed.output.api import probe_json, slo_json
from probed.output.exposition import CONTENT_TYPE, ExpositionView
from probed.output.scrapes import Scrapes
from probed.output.webconfig import BasicAuth, WebConfig
from probed.output.webstats import WebStats
from probed.result import REASONS_BY_CODE
from probed.runtime.daemon import Daemon
from probed.runtime.slicing import sliced_map
from probed.runtime.state import ProbeState
from probed.slo.engine import SloEngine

log = logging.getLogger("probed")

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Policy:
    hosts: frozenset[str] | None
    """Host names served; None: any (a listener others reach by many names)."""
    auth: BasicAuth | None
    headers: Mapping[str, str]
    """The web config file's http_server_config.headers, over the defaults."""


class ProbeAnswer(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def content_type(self) -> str: ...


class ProbeEndpoint(Protocol):
    """What serves `GET /probe` (probed/blackbox/endpoint.py): run.py hands it in, so the web
    layer never depends on the blackbox package."""

    async def handle(self, query: Mapping[str, str], scrape_timeout: str | None) -> ProbeAnswer: ...

    async def aclose(self) -> None: ...


DAEMON_KEY = web.AppKey("daemon", Daemon)
SLOS_KEY = web.AppKey("slos", SloEngine)
STATS_KEY = web.AppKey("web_stats", WebStats)
SCRAPES_KEY = web.AppKey("scrapes", Scrapes)
POLICY_KEY = web.AppKey("policy", Policy)
BLACKBOX_KEY: web.AppKey[ProbeEndpoint] = web.AppKey("blackbox")


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_app(daemon: Daemon, slos: SloEngine | None = None, *, web_config: WebConfig | None = None,
             listen_host: str | None = None, stats: WebStats | None = None,
             blackbox: ProbeEndpoint | None = None) -> web.Application:
    """The routes. `listen_host`: the address served on; when it is a loopback one, foreign Host
    headers are refused. `stats`: the counters the connection guard shares (a fresh set if None).
    `blackbox`: what answers /probe (run.py builds it from the config's modules); without it,
    /probe is not served."""
    app = web.Application(middlewares=[_guard])
    app[DAEMON_KEY] = daemon
    app[SLOS_KEY] = slos if slos is not None else SloEngine()
    app[STATS_KEY] = stats = stats if stats is not None else WebStats()
    app[SCRAPES_KEY] = scrapes = Scrapes(lambda: ExpositionView.of(daemon, app[SLOS_KEY], stats), stats)
    hosts = None
    if listen_host is not None and is_loopback(listen_host):
        hosts = LOCAL_HOSTS | {_bare_host(listen_host)}
    app[POLICY_KEY] = Policy(hosts, web_config.auth() if web_config else None,
                             web_config.headers if web_config else {})
    app.on_response_prepare.append(_security_headers)
    if blackbox is not None:
        app[BLACKBOX_KEY] = blackbox

    async def close_scrapes(app: web.Application) -> None:
        await scrapes.close()
        if blackbox is not None:
            await blackbox.aclose()

    app.on_cleanup.append(close_scrapes)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/probes", probes)
    app.router.add_get("/api/v1/probes/{name}", probe)
    app.router.add_get("/api/v1/slos", slo_list)
    app.router.add_get("/api/v1/slos/{name}", slo_one)
    app.router.add_get("/", status_page)
    app.router.add_get("/probes/{name}", probe_page)
    if blackbox is not None:
        app.router.add_get("/probe", blackbox_probe)
    return app


# --------------------------------------------------------------------------- the guard


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    policy, stats = request.app[POLICY_KEY], request.app[STATS_KEY]
    if policy.hosts is not None:
        host = request.headers.get("Host")
        if host is not None and _bare_host(host) not in policy.hosts:
            stats.requests_refused["host"] += 1
            log.debug("refused %s %s: Host %r is not a local name", request.method, request.path, host)
            raise web.HTTPForbidden(text="probed: this address serves only localhost, 127.0.0.1, [::1] "
                                         "and its listen address in the Host header\n")
    if policy.auth is not None and not await policy.auth.check(request.headers.get("Authorization")):
        stats.requests_refused["unauthorized"] += 1
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="probed", charset="UTF-8"'},
                                   text="probed: unauthorized\n")
    if request.method not in SAFE_METHODS and _cross_site(request):
        stats.requests_refused["cross_site"] += 1
        log.debug("refused cross-site %s %s (Origin %r, Sec-Fetch-Site %r)", request.method, request.path,
                  request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"))
        raise web.HTTPForbidden(text="probed: cross-site requests cannot change the daemon "
                                     "(POST from its own origin, or without an Origin, as curl does)\n")
    return await handler(request)


def _cross_site(request: web.Request) -> bool:
    """A browser says where a request comes from; tools like curl say nothing, and are let through."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    try:
        url = URL(origin)
        own = URL.build(scheme=url.scheme, authority=request.headers.get("Host", ""))
    except ValueError:
        return True
    if not url.scheme or not url.host:  # "null": a sandboxed page, a file: or data: URL
        return True
    return (url.host.lower().rstrip("."), url.port) != ((own.host or "").lower().rstrip("."), own.port)


def _bare_host(host: str) -> str:
    """'[::1]:9470' -> '::1', 'LocalHost.:80' -> 'localhost', '127.0.0.1' -> '127.0.0.1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html":
        response.headers.update(pages.PAGE_HEADERS)
    response.headers.update(request.app[POLICY_KEY].headers)


# --------------------------------------------------------------------------- routes


async def metrics(request: web.Request) -> web.StreamResponse:
    # Concurrent scrapes share one render (scrapes.py); the body is streamed as it is made.
    gzip = _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    body = request.app[SCRAPES_KEY].join(gzip)
    headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    async for chunk in body.as_gzip() if gzip else body.as_text():
        await response.write(chunk)
    await response.write_eof()
    return response


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            for param in params.split(";"):
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        return float(value) > 0
                    except ValueError:
                        return False
            return True
    return False


async def blackbox_probe(request: web.Request) -> web.Response:
    """blackbox_exporter's multi-target endpoint: `?module=NAME&target=...` (probed/blackbox/)."""
    answer = await request.app[BLACKBOX_KEY].handle(request.query,
                                                   request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
    return web.Response(status=answer.status, text=answer.text,
                        headers={"Content-Type": answer.content_type
                                 if "charset" in answer.content_type else f"{answer.content_type}; charset=utf-8"})


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="probed is healthy\n")


async def ready(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    if daemon.ready and daemon.scheduler is not None and daemon.scheduler.started:
        return web.Response(text="probed is ready\n")
    return web.Response(status=503, text="probed is not ready\n")


async def reload(request: web.Request) -> web.Response:
    outcome = await request.app[DAEMON_KEY].reload()
    body = {"ok": outcome.ok, "errors": outcome.errors, "added": outcome.added, "removed": outcome.removed,
            "changed": outcome.changed, "unchanged": outcome.unchanged}
    return web.json_response(body, status=200 if outcome.ok else 400)


def _selected(request: web.Request) -> tuple[list[ProbeState], int]:
    """The probes a listing asks for (`?state=failing|warning|pending|ok`, `?type=`), and how many
    there are in all. An unknown state or a bad number is the caller's error (400)."""
    states = list(request.app[DAEMON_KEY].states.values())
    want_state, want_type = request.query.get("state"), request.query.get("type")
    if want_state is not None and want_state not in _STATES:
        raise web.HTTPBadRequest(text=f"state must be one of: {', '.join(_STATES)}")
    if want_type is not None:
        states = [s for s in states if s.spec.type == want_type]
    if want_state is not None:
        states = [s for s in states if _state_of(s) == _STATES[want_state]]
    return states, len(states)


_STATES = {"failing": "fail", "warning": "warn", "pending": "pending", "ok": "ok"}


def _state_of(state: ProbeState) -> str:
    last = state.last
    return pages.status_of(None, None) if last is None else pages.status_of(last.success, last.warning)


_ORDER = {"fail": 0, "warn": 1, "pending": 2, "ok": 3}


def _triage_key(state: ProbeState, now: float) -> tuple[str, int, float, str]:
    """Failing first, then warnings, pending, ok; within each, the highest failure share over the
    last hour first (a probe at 47% sits above one at 100%, whatever its last result)."""
    kind = _state_of(state)
    hour = state.ring.window_counts(now, 3600)
    ratio = hour.failures / hour.attempts if hour.attempts else 0.0
    return kind, _ORDER[kind], -ratio, state.spec.name


def _window(request: web.Request, total: int) -> slice:
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", str(total)))
    except ValueError:
        raise web.HTTPBadRequest(text="offset and limit are whole numbers") from None
    if offset < 0 or limit < 0:
        raise web.HTTPBadRequest(text="offset and limit must not be negative")
    return slice(offset, offset + limit)


async def probes(request: web.Request) -> web.Response:
    """Every probe as JSON; `?state=`, `?type=`, `?offset=` and `?limit=` narrow it down."""
    now = time.time()
    states, total = _selected(request)
    chosen = sorted(states, key=lambda s: s.spec.name)[_window(request, total)]
    items = await sliced_map(chosen, lambda s: json.dumps(probe_json(s, now)))
    return web.Response(text=f'{{"total": {total}, "probes": [' + ", ".join(items) + "]}",
                        content_type="application/json")


async def probe(request: web.Request) -> web.Response:
    state = request.app[DAEMON_KEY].states.get(request.match_info["name"])
    if state is None:
        return web.json_response({"error": "no such probe"}, status=404)
    return web.json_response(probe_json(state, time.time()))


async def slo_list(request: web.Request) -> web.Response:
    engine, states, now = request.app[SLOS_KEY], request.app[DAEMON_KEY].states, time.time()
    reports = [engine.reports[s.name] for s in engine.specs if s.name in engine.reports]
    items = await sliced_map(reports, lambda r: json.dumps(slo_json(r, states, now)))
    return web.Response(text='{"slos": [' + ", ".join(items) + "]}", content_type="application/json")


async def slo_one(request: web.Request) -> web.Response:
    report = request.app[SLOS_KEY].reports.get(request.match_info["name"])
    if report is None:
        return web.json_response({"error": "no such SLO"}, status=404)
    return web.json_response(slo_json(report, request.app[DAEMON_KEY].states, time.time()))


async def status_page(request: web.Request) -> web.Response:
    """A page a person can read: the SLOs, then one row per probe, failing ones first."""
    daemon, engine = request.app[DAEMON_KEY], request.app[SLOS_KEY]
    now = time.time()
    states = daemon.states
    reports = [engine.reports[s.name] for s in engine.specs if s.name in engine.reports]
    slo_rows = await sliced_map(reports, lambda r: pages.slo_row(
        slo_json(r, states, now), pages.burn_down(r.spec, states, engine, now)))
    chosen, total = _selected(request)
    keyed = await sliced_map(chosen, lambda state: (_triage_key(state, now), state))
    keyed.sort(key=lambda pair: pair[0][1:])
    counts = Counter(key[0] for key, _ in keyed)
    if request.query.get("all") != "1":  # every probe's JSON is most of a large page's cost: show what needs eyes
        keyed = keyed[:max(pages.MAX_ROWS, counts["fail"] + counts["warn"])]
    rows = await sliced_map(keyed, lambda pair: pages.probe_row(probe_json(pair[1], now), now))
    shown = keyed
    section = pages.probes_section(rows, counts, len(shown), total)
    return web.Response(text=pages.page(len(states), pages.slo_section(slo_rows), section), content_type="text/html")


async def probe_page(request: web.Request) -> web.Response:
    """One probe, for triage: its last attempt and failure, percentiles, attempts, reasons."""
    state = request.app[DAEMON_KEY].states.get(request.match_info["name"])
    if state is None:
        raise web.HTTPNotFound(text="no such probe")
    now = time.time()
    samples = state.ring.samples()
    recent = samples.reasons[samples.timestamps > now - 3600]
    by_reason = Counter(REASONS_BY_CODE[int(code)].value for code in recent[recent != 0])
    return web.Response(text=pages.detail_page(probe_json(state, now), by_reason, now), content_type="text/html")
