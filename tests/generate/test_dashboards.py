"""The Grafana dashboards: regenerated without a diff, well-formed, laid out without overlaps,
every metric they name declared in the catalog, every key known to Grafana 11.6's own models."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from probed.cli import main
from probed.generate import dashboards
from probed.generate.grafana import layout
from probed.output import catalog

from .tools import DASHBOARDS, HELM_DASHBOARDS, ROOT, groups_of_rules

BUILT = dashboards.all_dashboards()
FILES = {name: DASHBOARDS / dashboards.file_name(name) for name in BUILT}
# Series that are not probed's own: Prometheus's per-target series and its alerts.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
FUNCTIONS = {"sum", "max", "min", "count", "rate", "increase", "topk", "histogram_quantile", "time", "vector",
             "changes", "by", "or", "and", "bool", "label_values"}


def test_the_committed_dashboards_are_what_the_generator_makes(tmp_path: Path) -> None:
    assert main(["dashboards", "-o", str(tmp_path)]) == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in DASHBOARDS.glob("*.json")), "a dashboard was added or removed"
    for path in tmp_path.iterdir():
        assert (DASHBOARDS / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), \
            f"grafana/dashboards/{path.name} is stale: python -m probed dashboards"


def test_the_helm_chart_carries_the_same_dashboards() -> None:
    helm = {p.name: p.read_text(encoding="utf-8") for p in HELM_DASHBOARDS.glob("*.json")}
    ours = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert helm == ours, "helm/probed/dashboards differs from grafana/dashboards: copy them again"


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_dashboard_parses_with_unique_ids_and_no_overlapping_panels(name: str) -> None:
    board = json.loads(FILES[name].read_text(encoding="utf-8"))
    assert board["uid"] and len(board["uid"]) <= 40 and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        for t in p.get("targets", ()):
            assert t["expr"].strip() and t["refId"], p["title"]
    assert {v["name"] for v in board["templating"]["list"]} >= {"datasource", "job"}


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in FILES.values()]
    assert len(uids) == len(set(uids)) == 4


def test_the_layout_check_catches_an_overlap() -> None:
    # the overlap assertion above can fail: two panels placed by hand on the same cell
    board = dashboards.overview()
    placed = layout(board.panels)
    grids = [g for _, g in placed]
    assert grids[0]["x"] == 0 and grids[1]["x"] == grids[0]["w"]
    assert all(g["x"] + g["w"] <= 24 for g in grids)


def names_in(expr: str) -> set[str]:
    expr = re.sub(r"label_values\((.*),\s*\w+\)", r"\1", expr)  # a variable's query: the label is no metric
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\b\d+(\.\d+)?(e\d+)?\b", "", expr)  # numbers (1e12)
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {t for t in tokens if t not in FUNCTIONS and not t.startswith("__")}


def known_names() -> set[str]:
    known = set(PROMETHEUS_SERIES)
    for family in (*catalog.all_families(), *catalog.CLIENT_FAMILIES):
        known.add(family.name)
        if family.type == "histogram":
            known |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
    known |= {r["record"] for g in groups_of_rules() for r in g["rules"] if "record" in r}
    return known


def test_every_metric_a_dashboard_names_is_declared() -> None:
    known = known_names()
    unknown = set()
    for board in BUILT.values():
        exprs = [q.expr for p in board.panels for q in p.queries] + [v.query for v in board.variables if v.query]
        for expr in exprs:
            unknown |= names_in(expr) - known
    assert not unknown, f"not in the metric catalog or the generated rules: {sorted(unknown)}"


def test_the_name_check_catches_a_misspelled_metric() -> None:
    assert names_in('sum by (probe) (rate(probed_probes_totl{job=~"$job"}[5m]))') - known_names() == \
        {"probed_probes_totl"}


TARGET = frozenset({"job", "instance"})  # what Prometheus adds to every scraped series


@functools.cache
def known_labels() -> dict[str, frozenset[str]]:
    """Metric name -> the label names its series can carry, as far as probed decides them (the
    global and per-probe/per-SLO labels a config adds are the user's, and no query names them)."""
    known: dict[str, frozenset[str]] = {"up": TARGET, "scrape_duration_seconds": TARGET,
                                        "scrape_samples_scraped": TARGET}
    for family in (*catalog.all_families(), *catalog.CLIENT_FAMILIES):
        own = {"probe", "type"} if family.per_probe else {"slo", "service"} if family in catalog.SLO_FAMILIES else set()
        labels = TARGET | own | set(family.labels)
        known[family.name] = labels
        if family.type == "histogram":
            known |= {family.name + suffix: labels for suffix in ("_bucket", "_sum", "_count")}
    alert_labels: set[str] = set()
    for group in groups_of_rules():
        for rule in group["rules"]:
            if "record" in rule:
                known[rule["record"]] = known.get(rule["record"], frozenset()) | set(rule["labels"])
            else:
                alert_labels |= set(rule.get("labels", {}))
    known["ALERTS"] = frozenset({"alertname", "alertstate", *TARGET, "probe", "type", *alert_labels})
    return known


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def _carried(names: set[str], known: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset({"__name__"}).union(*(known.get(n, frozenset()) for n in names))


def misspelled_labels(expr: str) -> set[str]:
    """Label names a query uses that its metrics do not carry: in a selector's matchers (against
    that selector's metric), in by/on/... clauses and label_values (against every metric the
    query reads)."""
    known = known_labels()
    variable = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr.strip())
    expr, grouped = (variable.group(1), {variable.group(2)}) if variable else (expr, set())
    wrong: set[str] = set()
    read = names_in(expr)
    for m in _SELECTOR.finditer(expr):
        matchers = dict(_MATCHER.findall(m.group(2)))
        # {__name__=~"probed_aws_.+", ...}: the known metrics the name matcher selects
        names = {m.group(1)} if m.group(1) else {n for n in known if re.fullmatch(matchers.get("__name__", ""), n)}
        read |= names
        carried = _carried(names, known)
        wrong |= {f"{label} (on {m.group(1) or m.group(2)})" for label in matchers if label not in carried}
    for m in _GROUPING.finditer(expr):
        grouped |= {label.strip() for label in m.group(1).split(",") if label.strip()}
    return wrong | (grouped - _carried(read, known))


def test_every_label_a_dashboard_query_uses_is_one_its_metrics_carry() -> None:
    wrong = {}
    for name, board in BUILT.items():
        exprs = [q.expr for p in board.panels for q in p.queries] + [v.query for v in board.variables if v.query]
        for expr in exprs:
            if bad := misspelled_labels(expr):
                wrong[f"{name}: {expr}"] = sorted(bad)
    assert not wrong, f"labels no metric of the query carries (catalog.py, the generated rules): {wrong}"


def test_the_label_check_catches_a_misspelled_label() -> None:
    # in a matcher, in a by() clause, in a variable's label_values: queries the demo does not feed
    # (feeds="no") would otherwise ship with an empty panel
    assert misspelled_labels('sum by (code) (increase(probed_probe_error_codes_total{job=~"$job", '
                             'probe="$probe", typ="aws"}[5m]))') == {"typ (on probed_probe_error_codes_total)"}
    assert misspelled_labels('sum by (reasn) (increase(probed_probe_failures_total{job=~"$job"}[5m]))') == {"reasn"}
    assert misspelled_labels("label_values(probed_probe_info{job=~\"$job\"}, probes)") == {"probes"}
    assert misspelled_labels('{__name__=~"probed_aws_.+", job=~"$job", prob="$probe"}') == \
        {'prob (on __name__=~"probed_aws_.+", job=~"$job", prob="$probe")'}
    assert misspelled_labels('sum by (probe, code) (increase(probed_probe_error_codes_total{type="aws"}[5m]))') == set()


def _keys(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            here = f"{path}.{k}"
            out.add(here)
            if k not in ("options", "custom", "query", "value", "matcher"):  # plugin-defined or free-form
                out |= _keys(v, here)
        return out
    if isinstance(value, list):
        return set().union(*(_keys(v, f"{path}[]") for v in value)) if value else set()
    return set()


@pytest.mark.parametrize("name", sorted(FILES))
def test_grafana_116_models_know_every_key(name: str) -> None:
    try:
        from grafana_foundation_sdk.cog.encoder import JSONEncoder  # test extra (pyproject: test)
        from grafana_foundation_sdk.models import dashboard as sdk  # same
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but grafana-foundation-sdk (test extra) is not installed", pytrace=False)
        pytest.skip("grafana-foundation-sdk==1769699379!11.6.0 is not installed")

    board = json.loads(FILES[name].read_text(encoding="utf-8"))
    back = json.loads(JSONEncoder().encode(sdk.Dashboard.from_json(board)))
    lost = _keys(board) - _keys(back)
    assert not lost, f"keys Grafana 11.6's dashboard model does not read: {sorted(lost)}"


def test_provisioning_points_grafana_at_the_dashboards() -> None:
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/probed.yaml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"


# Grafana expands provisioning values with Go's os.ExpandEnv: `${NAME}` and `$NAME` only. In
# `${PROMETHEUS_URL:-http://...}` it looks up a variable named "PROMETHEUS_URL:-http://..." and
# puts in nothing, so such a value becomes empty.
_SHELL_FORM = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*\})[^}]*\}")
PROVISIONING = sorted([*(ROOT / "grafana/provisioning").rglob("*.yaml"),
                       *(ROOT / "deploy/grafana/provisioning").rglob("*.yaml")])


def shell_forms(text: str) -> list[str]:
    return [m.group(0) for line in text.splitlines() if not line.lstrip().startswith("#")
            for m in _SHELL_FORM.finditer(line)]


@pytest.mark.parametrize("path", PROVISIONING, ids=lambda p: str(p.relative_to(ROOT)))
def test_provisioning_files_use_only_the_variable_forms_grafana_expands(path: Path) -> None:
    found = shell_forms(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)}: Grafana has no ${{VAR:-default}}, these become empty: {found}"


def test_the_variable_form_check_catches_a_shell_default() -> None:
    assert shell_forms("    url: ${PROMETHEUS_URL:-http://prometheus:9090}\n") == \
        ["${PROMETHEUS_URL:-http://prometheus:9090}"]
    assert shell_forms("    url: ${PROMETHEUS_URL}\n    # ${X:-y} in a comment\n") == []
