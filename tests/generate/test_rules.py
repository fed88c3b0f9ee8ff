"""`probed rules`: Sloth's names, the SRE Workbook's windows, the committed file, and promtool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from probed.cli import main
from probed.generate import rules
from probed.generate.rules import BURN_ALERTS, OPERATIONAL_ALERTS, SLO_ALERT, RuleOptions, render, rule_groups
from probed.runtime.probeset import parse_config

from .tools import (
    ALERTMANAGER,
    HELM_RULES,
    HELM_SOURCE,
    ROOT,
    RULES,
    UNIT_TESTS,
    bundled_config,
    helm_config,
    run,
    tool,
)

SLOTH_RECORDS = [
    *(f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")),
    "slo:objective:ratio", "slo:error_budget:ratio", "slo:time_period:days", "slo:current_burn_rate:ratio",
    "slo:period_burn_rate:ratio", "slo:period_error_budget_remaining:ratio", "sloth_slo_info",
]

CONFIG = """\
probes:
  - {name: a, type: tcp, target: "127.0.0.1:1"}
  - {name: b, type: tcp, target: "127.0.0.1:2", labels: {team: x}}
slos:
  - {name: rolling, service: svc, probes: [a], objective: 99.5, window: 7d, labels: {tier: "1"}}
  - {name: month, probes: [a], objective: 99, calendar: month, alerting: {page: false}}
  - {name: sliced, match: {labels: {team: x}}, objective: 95, window: 28d, budgeting: timeslices,
     timeslice: {good_ratio: 0.9}, alerting: {page: false, ticket: false}}
"""


AlertKey = tuple[str, str, str | None]
"""(alertname, severity, sloth_window): an alert rule as the unit tests must fire it."""


def groups_of(text: str) -> list[dict[str, Any]]:
    loaded: dict[str, list[dict[str, Any]]] = yaml.safe_load(text)
    return loaded["groups"]


def test_the_committed_rules_are_what_the_bundled_config_generates() -> None:
    expected = render(bundled_config(), source="probes.yaml")
    assert RULES.read_text(encoding="utf-8") == expected, \
        "prometheus/probed-rules.yaml is stale: python -m probed rules --no-env -o prometheus/probed-rules.yaml"


def test_the_helm_chart_carries_the_rules_of_its_default_config() -> None:
    expected = render(helm_config(), source=HELM_SOURCE)
    assert HELM_RULES.read_text(encoding="utf-8") == expected, \
        "helm/probed/files/probed-rules.yaml is stale: regenerate it from values.yaml `config` (see docs)"


def test_cli_writes_the_committed_file_without_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("API_TOKEN", "ORDERS_DB_PROBE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "rules.yaml"
    assert main(["rules", "--config", "probes.yaml", "--no-env", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == RULES.read_text(encoding="utf-8")
    assert main(["rules", "--config", "probes.yaml"]) == 2  # without --no-env the missing secrets are errors


def test_each_slo_gets_sloths_record_names_groups_and_labels() -> None:
    config = parse_config(CONFIG, "t.yaml", {})
    groups = rule_groups(config)
    names = [g["name"] for g in groups]
    kinds = ("sli-recordings", "meta-recordings", "alerts")
    assert names == [f"sloth-slo-{kind}-svc-rolling" for kind in kinds] + [
        "sloth-slo-sli-recordings-month-month", "sloth-slo-meta-recordings-month-month", "sloth-slo-alerts-month-month",
        "sloth-slo-sli-recordings-sliced-sliced", "sloth-slo-meta-recordings-sliced-sliced", "probed-operational"]
    sli, meta = groups[0]["rules"], groups[1]["rules"]
    assert [r["record"] for r in sli + meta] == [n.replace("30d", "7d") for n in SLOTH_RECORDS]
    for r in sli + meta:
        assert {"sloth_id": "svc-rolling", "sloth_service": "svc", "sloth_slo": "rolling", "tier": "1"}.items() <= \
            r["labels"].items()
    assert [r["labels"]["sloth_window"] for r in sli] == ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "7d"]
    assert 'probed_slo_events_total{slo="rolling",result="bad"}[5m]' in sli[0]["expr"]
    assert "sum_over_time(slo:sli_error:ratio_rate5m{" in sli[-1]["expr"] and "[7d]" in sli[-1]["expr"]
    by_record = {r["record"]: r["expr"] for r in meta}
    assert by_record["slo:objective:ratio"] == "vector(0.995)"
    assert by_record["slo:error_budget:ratio"] == "vector(1-0.995)"
    assert by_record["slo:time_period:days"] == "vector(7)"
    assert "/ on(sloth_id, sloth_slo, sloth_service) group_left" in by_record["slo:current_burn_rate:ratio"]
    # a calendar month is a rolling 30d for Prometheus
    assert groups[3]["rules"][-1]["record"] == "slo:sli_error:ratio_rate30d"


def test_burn_alerts_follow_the_workbook_and_the_alerting_switches() -> None:
    assert [(a.severity, a.factor, a.long, a.short) for a in BURN_ALERTS] == [
        ("page", 14.4, "1h", "5m"), ("page", 6.0, "6h", "30m"),
        ("ticket", 3.0, "1d", "2h"), ("ticket", 1.0, "3d", "6h")]
    groups = rule_groups(parse_config(CONFIG, "t.yaml", {}))
    alerts = {g["name"]: g["rules"] for g in groups if g["name"].startswith("sloth-slo-alerts-")}
    assert [(r["labels"]["severity"], r["labels"]["sloth_window"]) for r in alerts["sloth-slo-alerts-svc-rolling"]] \
        == [("page", "1h"), ("page", "6h"), ("ticket", "1d"), ("ticket", "3d")]
    assert [r["labels"]["sloth_severity"] for r in alerts["sloth-slo-alerts-month-month"]] == ["ticket", "ticket"]
    assert "sloth-slo-alerts-sliced-sliced" not in alerts  # page and ticket both off
    page = alerts["sloth-slo-alerts-svc-rolling"][0]
    assert "ratio_rate1h{" in page["expr"] and "ratio_rate5m{" in page["expr"] and "/ 0.005) > 14.4" in page["expr"]
    assert "for" not in page  # the short window ends it; a `for` would only delay the page
    assert page["labels"]["tier"] == "1"
    # 14.4x over 7d burns 14.4/168 of the budget an hour
    assert "8.6% of the 7d error budget burns per hour" in page["annotations"]["description"]
    assert "runbook_url" not in page["annotations"]
    bundled = rule_groups(bundled_config())
    assert all(r["annotations"]["runbook_url"] == "https://runbooks.example.com/api/availability"
               for g in bundled if g["name"] == "sloth-slo-alerts-api-api-availability" for r in g["rules"])


def test_operational_alerts_are_named_exactly_and_take_their_options() -> None:
    groups = rule_groups(parse_config(CONFIG, "t.yaml", {}),
                         RuleOptions(job="blackbox-probed", probe_failing_for="10m", runbook_base="https://d/alerts"))
    ops = groups[-1]["rules"]
    assert list(dict.fromkeys(r["alert"] for r in ops)) == list(OPERATIONAL_ALERTS)
    failing = ops[0]
    assert failing["for"] == "10m" and failing["expr"] == 'probe_success{job="blackbox-probed"} == 0'
    assert failing["annotations"]["runbook_url"] == "https://d/alerts#probedprobefailing"
    assert "[10m]" in failing["annotations"]["description"]
    assert all('job="blackbox-probed"' in r["expr"] for r in ops)


def test_promtool_accepts_every_generated_file(tmp_path: Path) -> None:
    promtool = tool("promtool")
    files = [RULES, HELM_RULES]
    for name, config in {"t": parse_config(CONFIG, "t.yaml", {})}.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(render(config), encoding="utf-8")
        files.append(path)
    done = run(promtool, "check", "rules", "--lint-fatal", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = tool("promtool")
    assert UNIT_TESTS
    done = run(promtool, "test", "rules", *UNIT_TESTS, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_and_severity_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet() -> None:
    # Keyed on the window pair too (sloth_window, the long window; None on operational alerts): a
    # burn-rate pair no test fires is as untested as a missing alert.
    generated: set[AlertKey] = {(r["alert"], r["labels"]["severity"], r["labels"].get("sloth_window"))
                           for g in groups_of(RULES.read_text()) for r in g["rules"] if "alert" in r}
    assert {a for a, _, _ in generated} == {SLO_ALERT, *OPERATIONAL_ALERTS}
    fired: set[AlertKey] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", ()):
                if case["exp_alerts"]:
                    fired |= {(case["alertname"], a["exp_labels"]["severity"], a["exp_labels"].get("sloth_window"))
                              for a in case["exp_alerts"]}
                else:
                    quiet.add(case["alertname"])
    assert generated - fired == set(), "alerts (name, severity, window pair) no unit test fires"
    assert {a for a, _, _ in generated} - quiet == set(), "alerts no unit test checks quiet"


def test_the_example_alertmanager_config_routes_page_and_ticket() -> None:
    amtool = tool("amtool")
    done = run(amtool, "check-config", ALERTMANAGER)
    assert done.returncode == 0, done.stdout + done.stderr
    for labels, receiver in ((("severity=page", f"alertname={SLO_ALERT}"), "pager"),
                             (("severity=ticket", f"alertname={SLO_ALERT}"), "tickets"),
                             (("severity=critical", "alertname=ProbedDown"), "pager"),
                             (("severity=warning", "alertname=ProbedProbeFailing"), "tickets")):
        done = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        assert done.stdout.strip() == receiver, (labels, done.stdout, done.stderr)


def test_the_module_documents_how_it_differs_from_sloth() -> None:
    assert rules.__doc__ is not None and "differs from Sloth" in rules.__doc__


SHORT_WINDOWS = """\
probes:
  - {name: a, type: tcp, target: "127.0.0.1:1"}
slos:
  - {name: daily, probes: [a], objective: 99, window: 1d}
  - {name: three-days, probes: [a], objective: 99, window: 3d}
"""


def test_an_slo_window_that_is_also_an_alert_window_gets_its_sli_rule_once(tmp_path: Path) -> None:
    config = parse_config(SHORT_WINDOWS, "t.yaml", {})
    for group in rule_groups(config):
        if group["name"].startswith("sloth-slo-sli-recordings-"):
            keys = [(r["record"], tuple(sorted(r["labels"].items()))) for r in group["rules"]]
            assert len(keys) == len(set(keys)), f"{group['name']} records a series twice"
            assert [r["labels"]["sloth_window"] for r in group["rules"]] == list(rules.SLI_WINDOWS)
    path = tmp_path / "short.yaml"
    path.write_text(render(config), encoding="utf-8")
    done = run(tool("promtool"), "check", "rules", "--lint-fatal", path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("options, message", [
    (RuleOptions(probe_failing_for="5 minutes"), "--probe-failing-for"),
    (RuleOptions(probe_failing_for=""), "--probe-failing-for"),
    (RuleOptions(job='pro"bed'), "--job"),
    (RuleOptions(job=""), "--job"),
])
def test_options_prometheus_would_refuse_are_rejected_with_the_option_named(options: RuleOptions,
                                                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules.validate_options(options)
    with pytest.raises(ValueError, match=message):
        rule_groups(parse_config(CONFIG, "t.yaml", {}), options)


def test_options_prometheus_reads_are_accepted() -> None:
    for options in (RuleOptions(), RuleOptions(job="blackbox-probed", probe_failing_for="1h30m")):
        rules.validate_options(options)
