"""Every dashboard query on a real Prometheus scraping a running `probed demo`, with the rules
`probed rules` makes for the demo's config loaded: no query may error, and every query the demo
feeds (each query says whether it does) must return data. Template variables are substituted as
Grafana would: "All" is `.*`, the drill-down shows demo-flaky."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed.demo import DEMO_CONFIG
from probed.generate import dashboards, rules
from probed.generate.grafana import Query, Variable
from probed.runtime.probeset import parse_config

from .tools import free_port, tool

pytestmark = pytest.mark.slow

ALL = ".*"
SUBSTITUTE = {"$job": "probed", "$instance": ALL, "$type": ALL, "$reason": ALL, "$service": ALL, "$slo": ALL,
              "$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}
PROBE = {"probe": "demo-flaky"}  # the drill-down's probe: http, fails about 1 in 10
DEADLINE_S = 90.0


def substitute(expr: str, board: str) -> str:
    values = dict(SUBSTITUTE, **{"$probe": PROBE["probe"] if board == "probe" else ALL})
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def variable_expr(v: Variable) -> tuple[str, str]:
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v.query)
    assert m is not None, v.query
    return m.group(1), m.group(2)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> tuple[int, dict[str, object]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = tool("prometheus")
    tmp = tmp_path_factory.mktemp("live")
    demo_port, prom_port = free_port(), free_port()
    rules_file = tmp / "rules.yaml"
    rules_file.write_text(rules.render(parse_config(DEMO_CONFIG.format(port=1, closed_port=2), "demo.yaml", {})))
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules_file}]\n"
        f"scrape_configs: [{{job_name: probed, static_configs: [{{targets: ['127.0.0.1:{demo_port}']}}]}}]\n")
    with (tmp / "demo.log").open("w") as demo_log, (tmp / "prometheus.log").open("w") as prom_log:
        demo = subprocess.Popen([sys.executable, "-m", "probed", "demo", "--listen", f"127.0.0.1:{demo_port}"],
                                stdout=subprocess.DEVNULL, stderr=demo_log)
        prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=prom_log)
        try:
            yield Prometheus(f"http://127.0.0.1:{prom_port}")
        finally:
            _stop(prom, demo)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def all_queries() -> list[tuple[str, str, str, bool]]:
    """(dashboard, what, PromQL, the demo feeds it) for every panel query and variable."""
    out = []
    for name, board in dashboards.all_dashboards().items():
        for v in board.variables:
            if v.kind == "query":
                expr, _label = variable_expr(v)
                out.append((name, f"variable ${v.name}", substitute(expr, name), v.feeds != "no"))
        for p in board.panels:
            for q in p.queries:
                out.append((name, f"{p.title!r} {q.legend or q.expr[:40]!r}", substitute(q.expr, name),
                            q.feeds != "no"))
    return out


def test_every_panel_query_evaluates_and_the_fed_ones_return_data(prometheus: Prometheus,
                                                                    tmp_path: Path) -> None:
    queries = all_queries()
    started = time.monotonic()
    pending = list(queries)
    errors: list[str] = []
    while pending and time.monotonic() - started < DEADLINE_S:
        still = []
        for board, what, expr, fed in pending:
            try:
                status, body = prometheus.query(expr)
            except (urllib.error.URLError, ConnectionError):
                still.append((board, what, expr, fed))  # not up yet
                continue
            if status == 400:
                errors.append(f"{board} {what}: {body.get('error')} in {expr}")
                continue
            data = body.get("data")
            empty = not isinstance(data, dict) or not data.get("result")
            if status != 200 or (fed and empty):
                still.append((board, what, expr, fed))
        pending = still
        if pending:
            time.sleep(2)
    assert not errors, "queries Prometheus rejects:\n" + "\n".join(errors)
    assert not pending, (f"no data after {DEADLINE_S:.0f} s for queries the demo feeds:\n"
                         + "\n".join(f"{b} {w}: {e}" for b, w, e, _ in pending))
    assert len(queries) > 60


def test_a_misspelled_query_is_caught(prometheus: Prometheus) -> None:
    status, body = prometheus.query("sum by (probe (rate(probed_probes_total[1m]))")
    assert status == 400 and body["errorType"] == "bad_data"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = prometheus.query("probed_probes_total")
        if status == 200 and body["data"]["result"]:  # type: ignore[index]
            break
        time.sleep(1)
    status, body = prometheus.query('probed_probes_total{result="sucess"}')
    assert status == 200 and body["data"]["result"] == []  # type: ignore[index]


def test_queries_declare_whether_the_demo_feeds_them() -> None:
    fed = {q.feeds for b in dashboards.all_dashboards().values() for p in b.panels for q in p.queries}
    assert fed == {"yes", "no", "slo"}
    assert Query("x").feeds == "yes"
