"""The HTTP face of the daemon: /metrics, health, reload, the JSON API and a status page."""

from __future__ import annotations

import html
import json
import time
from typing import Any

from aiohttp import web

from probed import __version__
from probed.output.api import probe_json
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


async def status_page(request: web.Request) -> web.Response:
    """A page a person can read: one row per probe, failing ones first."""
    daemon = request.app[DAEMON_KEY]
    now = time.time()
    ordered = sorted(daemon.states.values(), key=lambda s: (s.last is None or s.last.success, s.spec.name))
    rows = await sliced_map(ordered, lambda state: _status_row(probe_json(state, now)))
    page = _page(len(daemon.states), "".join(rows))
    return web.Response(text=page, content_type="text/html")


def _status_row(p: dict[str, Any]) -> str:
    """One probe's row (and its detail row when failing) of the status page."""
    last = p["last"]
    status = "pending" if last is None else ("ok" if last["success"] else last["reason"])
    css = "pending" if last is None else ("ok" if last["success"] else "fail")
    p5 = p["percentiles"]["5m"]
    day = p["windows"]["1d"]["success_ratio"]
    return (
        "<tr class='{}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            css, html.escape(p["name"]), html.escape(p["type"]), html.escape(p["target"]),
            html.escape(status),
            "" if last is None else f"{last['duration_seconds'] * 1000:.1f} ms",
            "&ndash;" if p5 is None else f"{p5['p50'] * 1000:.1f} / {p5['p99'] * 1000:.1f} ms",
            "&ndash;" if day is None else f"{day * 100:.2f}%",
        ) + ("" if last is None or not last["detail"] else
             f"<tr class='detail'><td></td><td colspan='6'>{html.escape(last['detail'])}</td></tr>")
    )


def _page(count: int, rows: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>probed</title>
<meta http-equiv="refresh" content="5">
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;text-align:left;border-bottom:1px solid #ddd}}tr.ok td:nth-child(4){{color:#080}}
tr.fail td:nth-child(4){{color:#c00;font-weight:bold}}tr.detail td{{color:#666;font-size:12px}}</style></head>
<body><h1>probed {__version__}</h1><p>{count} probes &middot; <a href="/metrics">/metrics</a>
&middot; <a href="/api/v1/probes">/api/v1/probes</a></p>
<table><tr><th>probe</th><th>type</th><th>target</th><th>status</th><th>last</th><th>p50 / p99 (5m)</th>
<th>success (1d)</th></tr>{rows}</table></body></html>"""
