"""The HTTP face of the daemon: /metrics, health, reload, the JSON API and the status page (routes only:
the page's HTML is in pages.py)."""

from __future__ import annotations

import json
import time

from aiohttp import web

from probed.output import pages
from probed.output.api import probe_json, slo_json
from probed.output.exposition import CONTENT_TYPE, ExpositionView, render_chunks
from probed.runtime.daemon import Daemon
from probed.runtime.slicing import sliced_map
from probed.slo.engine import SloEngine

DAEMON_KEY = web.AppKey("daemon", Daemon)
SLOS_KEY = web.AppKey("slos", SloEngine)


def make_app(daemon: Daemon, slos: SloEngine | None = None) -> web.Application:
    app = web.Application()
    app[DAEMON_KEY] = daemon
    app[SLOS_KEY] = slos if slos is not None else SloEngine()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/probes", probes)
    app.router.add_get("/api/v1/probes/{name}", probe)
    app.router.add_get("/api/v1/slos", slo_list)
    app.router.add_get("/api/v1/slos/{name}", slo_one)
    app.router.add_get("/", status_page)
    return app


async def metrics(request: web.Request) -> web.StreamResponse:
    # Rendered in slices and streamed: a 10,000-probe body never sits on the loop in one piece.
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)
    async for chunk in render_chunks(ExpositionView.of(request.app[DAEMON_KEY], request.app[SLOS_KEY])):
        await response.write(chunk)
    await response.write_eof()
    return response


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


async def probes(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    now = time.time()
    items = await sliced_map(daemon.states.values(), lambda s: json.dumps(probe_json(s, now)))
    return web.Response(text='{"probes": [' + ", ".join(items) + "]}", content_type="application/json")


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
    ordered = sorted(states.values(), key=lambda s: (s.last is None or s.last.success, s.spec.name))
    rows = await sliced_map(ordered, lambda state: pages.probe_row(probe_json(state, now)))
    return web.Response(text=pages.page(len(states), pages.slo_section(slo_rows), "".join(rows)),
                        content_type="text/html")
