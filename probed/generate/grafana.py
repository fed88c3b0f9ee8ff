"""A small, typed builder for the part of Grafana's dashboard JSON model probed's dashboards use.

Why not grafana-foundation-sdk: `probed dashboards` runs from the installed daemon package, and
the SDK's default install is the Grafana 10.1 build (a pinned epoch, `1769699379!11.6.0`, is
needed for 11.x output): a runtime dependency that silently changes shape with pip's choice. The
subset used here (timeseries, stat, table, row panels; query, datasource and ad hoc variables)
is small, its output is sorted and stable, and what proves it is the same either way: the tests
parse every dashboard, check the layout and run every query against a real Prometheus. The SDK
is still used, in the tests only, to read the JSON back with Grafana 11.6's own models and fail
on any key they do not know.

`schemaVersion` 39 (Grafana 10.4): Grafana 10.4, 11 and 12 all read it and migrate it forward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24

PanelType = Literal["timeseries", "stat", "table", "row", "text"]
Feeds = Literal["yes", "no", "slo"]
"""Whether `probed demo` gives the query data: "slo" when it needs the demo's SLOs (and rules)."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    feeds: Feeds = "yes"
    """Does a Prometheus scraping `probed demo` (with the demo's rules loaded) return data for it?"""


@dataclass(frozen=True)
class Panel:
    title: str
    type: PanelType
    queries: tuple[Query, ...] = ()
    description: str = ""
    unit: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False
    min: float | None = None
    max: float | None = None
    thresholds: tuple[tuple[float | None, str], ...] = ()
    mappings: tuple[Mapping[str, Any], ...] = ()
    decimals: int | None = None
    links: tuple[Mapping[str, str], ...] = ()
    overrides: tuple[Mapping[str, Any], ...] = ()
    transformations: tuple[Mapping[str, Any], ...] = ()
    content: str = ""
    """Markdown, for text panels."""


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str = ""
    """`label_values(metric{selector}, label)`; empty for datasource and ad hoc variables."""
    kind: Literal["query", "datasource", "adhoc"] = "query"
    multi: bool = True
    include_all: bool = True
    feeds: Feeds = "yes"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ("probed",)
    time_from: str = "now-6h"
    refresh: str = "30s"
    links: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


def _refs() -> list[str]:
    return [chr(ord("A") + i) for i in range(26)]


def _field_config(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if p.unit:
        defaults["unit"] = p.unit
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    if p.decimals is not None:
        defaults["decimals"] = p.decimals
    if p.mappings:
        defaults["mappings"] = list(p.mappings)
    steps = [{"color": color, "value": value} for value, color in p.thresholds] or \
        [{"color": "green", "value": None}]
    defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if p.type == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 30 if p.stack else 10, "showPoints": "never",
            "spanNulls": False, "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if p.thresholds else "off"},
        }
        defaults["color"] = {"mode": "palette-classic"}
    elif p.type == "stat":
        defaults["color"] = {"mode": "thresholds"}
    elif p.type == "table":
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
        defaults["color"] = {"mode": "thresholds"}
    if p.links:
        defaults["links"] = list(p.links)
    return {"defaults": defaults, "overrides": list(p.overrides)}


def _options(p: Panel) -> dict[str, Any]:
    if p.type == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if p.type == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background" if p.thresholds or p.mappings else "value", "graphMode": "none",
                "justifyMode": "auto", "orientation": "auto", "textMode": "auto", "wideLayout": True,
                "showPercentChange": False}
    if p.type == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if p.type == "text":
        return {"mode": "markdown", "content": p.content}
    return {}


def _target(q: Query, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "refId": ref, "expr": q.expr, "legendFormat": q.legend or "__auto",
            "instant": q.instant, "range": not q.instant, "format": "table" if q.table else "time_series",
            "editorMode": "code"}


def layout(panels: Sequence[Panel]) -> list[tuple[Panel, dict[str, int]]]:
    """Left to right, top to bottom; a row starts a new line and takes the full width."""
    placed: list[tuple[Panel, dict[str, int]]] = []
    x = y = line_height = 0
    for p in panels:
        width = GRID_WIDTH if p.type == "row" else p.width
        height = 1 if p.type == "row" else p.height
        if p.type == "row" or x + width > GRID_WIDTH:
            y += line_height
            x, line_height = 0, 0
        placed.append((p, {"h": height, "w": width, "x": x, "y": y}))
        x += width
        line_height = max(line_height, height)
        if p.type == "row":
            x, y, line_height = 0, y + 1, 0
    return placed


def panel_json(p: Panel, grid: Mapping[str, int], panel_id: int) -> dict[str, Any]:
    if p.type == "row":
        return {"type": "row", "id": panel_id, "title": p.title, "collapsed": False, "gridPos": dict(grid),
                "panels": []}
    out: dict[str, Any] = {
        "type": p.type, "id": panel_id, "title": p.title, "description": p.description, "gridPos": dict(grid),
        "datasource": DATASOURCE, "fieldConfig": _field_config(p), "options": _options(p),
        "targets": [_target(q, ref) for q, ref in zip(p.queries, _refs(), strict=False)],
    }
    if p.transformations:
        out["transformations"] = list(p.transformations)
    if p.type == "text":
        del out["datasource"], out["targets"], out["fieldConfig"]
    return out


def variable_json(v: Variable) -> dict[str, Any]:
    if v.kind == "datasource":
        return {"name": v.name, "label": v.label, "type": "datasource", "query": "prometheus",
                "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
                "regex": "", "skipUrlSync": False}
    if v.kind == "adhoc":
        return {"name": v.name, "label": v.label, "type": "adhoc", "datasource": DATASOURCE,
                "hide": 0, "skipUrlSync": False}
    out: dict[str, Any] = {
        "name": v.name, "label": v.label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": v.query, "refId": f"PrometheusVariableQueryEditor-{v.name}", "qryType": 1},
        "current": {}, "hide": 0, "multi": v.multi, "includeAll": v.include_all,
        "options": [], "refresh": 2, "regex": "", "sort": 1, "skipUrlSync": False,
    }
    if v.include_all:
        out["allValue"] = ".*"
    return out


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    panels = [panel_json(p, grid, i) for i, (p, grid) in enumerate(layout(d.panels), start=1)]
    return {
        "uid": d.uid, "title": d.title, "description": d.description, "tags": list(d.tags),
        "editable": True, "graphTooltip": 1, "timezone": "browser", "schemaVersion": SCHEMA_VERSION,
        "version": 1, "refresh": d.refresh, "time": {"from": d.time_from, "to": "now"},
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": list(d.links),
        "templating": {"list": [variable_json(v) for v in d.variables]},
        "panels": panels,
    }
