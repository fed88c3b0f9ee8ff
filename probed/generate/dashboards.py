"""probed's Grafana dashboards: overview, probe drill-down, SLOs and probed itself.

Every query is written here once, with the metric names the catalog declares (a test checks
each name against `probed.output.catalog`) and a note of whether `probed demo` feeds it (a test
runs each one on a real Prometheus scraping the demo). The JSON comes from `probed.generate.grafana`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probed.generate.grafana import Dashboard, Panel, Query, Variable, dashboard_json
from probed.generate.rules import SLO_ALERT

# -- variables and selectors

DS = Variable("datasource", "Data source", kind="datasource")
JOB = Variable("job", "Job", "label_values(probed_build_info, job)")
INSTANCE = Variable("instance", "Instance", 'label_values(probed_build_info{job=~"$job"}, instance)')
TYPE = Variable("type", "Type", 'label_values(probed_probe_info{job=~"$job", instance=~"$instance"}, type)')
PROBE = Variable("probe", "Probe",
                 'label_values(probed_probe_info{job=~"$job", instance=~"$instance", type=~"$type"}, probe)')
ONE_PROBE = Variable("probe", "Probe", 'label_values(probed_probe_info{job=~"$job", instance=~"$instance"}, probe)',
                     multi=False, include_all=False)
REASON = Variable("reason", "Reason", 'label_values(probed_probe_failures_total{job=~"$job"}, reason)')
FILTERS = Variable("Filters", "Labels", kind="adhoc")
SERVICE = Variable("service", "Service", 'label_values(probed_slo_objective_ratio{job=~"$job"}, service)',
                   feeds="slo")
SLO = Variable("slo", "SLO", 'label_values(probed_slo_objective_ratio{job=~"$job", service=~"$service"}, slo)',
               feeds="slo")

P = 'job=~"$job", instance=~"$instance", type=~"$type", probe=~"$probe"'
"""Probe series on the overview, filtered by every variable."""
ONE = 'job=~"$job", instance=~"$instance", probe="$probe"'
"""The drill-down's one probe."""
S = 'job=~"$job", slo=~"$slo", service=~"$service"'
SELF = 'job=~"$job", instance=~"$instance"'
BY_PROBE = "instance, probe, type"

UP_DOWN = ({"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0}, "1": {"text": "UP", "color": "green", "index": 1}}},)
RATIO_THRESHOLDS: tuple[tuple[float | None, str], ...] = ((None, "red"), (0.99, "orange"), (0.999, "green"))
PROBE_LINK = {"title": "Probe ${__data.fields.probe}",
              "url": "/d/probed-probe/probed-probe?var-job=${job}&var-instance=${__data.fields.instance}"
                     "&var-probe=${__data.fields.probe}&${__url_time_range}"}
DASHBOARD_LINKS = ({"title": "probed", "type": "dashboards", "tags": ["probed"], "asDropdown": True,
                    "includeVars": True, "keepTime": True},)


def _ratio(num: str, den: str, by: str, window: str) -> str:
    return f"sum by ({by}) (increase({num}[{window}]))\n/\nsum by ({by}) (increase({den}[{window}]))"


def _merge(names: dict[str, str]) -> tuple[dict[str, Any], ...]:
    return ({"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names,
                                           "indexByName": {}}})


# --------------------------------------------------------------------------- overview


def overview() -> Dashboard:
    table_queries = (
        Query(f"max by ({BY_PROBE}) (probe_success{{{P}}})", instant=True, table=True),
        Query(f"max by ({BY_PROBE}, reason) (topk by ({BY_PROBE}) (1, "
              f"increase(probed_probe_failures_total{{{P}}}[$__range])) > 0)", instant=True, table=True),
        Query(f'max by ({BY_PROBE}) (probed_probe_latency_seconds{{{P}, quantile="0.5", window="5m"}})',
              instant=True, table=True),
        Query(f'max by ({BY_PROBE}) (probed_probe_latency_seconds{{{P}, quantile="0.99", window="5m"}})',
              instant=True, table=True),
        Query(_ratio(f'probed_probes_total{{{P}, result="success"}}', f"probed_probes_total{{{P}}}", BY_PROBE,
                     "$__range"), instant=True, table=True),
        Query(f"max by ({BY_PROBE}) (time() - probed_probe_last_run_timestamp_seconds{{{P}}})",
              instant=True, table=True),
    )
    columns = {"Value #A": "State", "reason": "Top reason (range)", "Value #B": "Failures (range)",
               "Value #C": "p50 (5m)", "Value #D": "p99 (5m)", "Value #E": "Success ratio (range)",
               "Value #F": "Last run (s ago)"}
    overrides = (
        {"matcher": {"id": "byName", "options": "State"},
         "properties": [{"id": "mappings", "value": list(UP_DOWN)},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}}]},
        {"matcher": {"id": "byRegexp", "options": "p50.*|p99.*"}, "properties": [{"id": "unit", "value": "s"}]},
        {"matcher": {"id": "byName", "options": "Success ratio (range)"},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 2},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}}]},
        {"matcher": {"id": "byName", "options": "Last run (s ago)"}, "properties": [{"id": "unit", "value": "s"}]},
    )
    return Dashboard(
        uid="probed-overview", title="probed / Overview",
        description="Every probe: state, top failure reason, p50/p99, success ratio. Filter by job, type, "
                    "probe, reason and any label (Labels).",
        variables=(DS, JOB, INSTANCE, TYPE, PROBE, REASON, FILTERS),
        links=DASHBOARD_LINKS,
        panels=(
            Panel("Probes", "stat", (Query(f"count(probed_probe_info{{{P}}}) or vector(0)", instant=True),),
                  "Probes configured and matching the filters.", width=4, height=4),
            Panel("Failing now", "stat", (Query(f"count(probe_success{{{P}}} == 0) or vector(0)", instant=True),),
                  "Probes whose last attempt failed.", width=4, height=4,
                  thresholds=((None, "green"), (1, "red"))),
            Panel("Success ratio (range)", "stat", (Query(
                f'sum(increase(probed_probes_total{{{P}, result="success"}}[$__range]))\n/\n'
                f"sum(increase(probed_probes_total{{{P}}}[$__range]))", instant=True),),
                "Successful attempts over all attempts in the time range.", unit="percentunit", decimals=2,
                width=4, height=4, thresholds=RATIO_THRESHOLDS),
            Panel("Attempts per second", "stat", (Query(f"sum(rate(probed_probes_total{{{P}}}[5m]))", instant=True),),
                  "Probe attempts per second, all matching probes.", unit="ops", width=4, height=4),
            Panel("SLOs burning (1h over 1x)", "stat", (Query(
                'count(probed_slo_burn_rate{job=~"$job", window="1h"} > 1) or vector(0)', instant=True),),
                "SLOs spending their budget faster than the SLO allows over the last hour.", width=4, height=4,
                thresholds=((None, "green"), (1, "orange"))),
            Panel("Slowest p99 (5m)", "stat", (Query(
                f'max(probed_probe_latency_seconds{{{P}, quantile="0.99", window="5m"}})', instant=True),),
                "The highest p99 of successful attempts over 5 minutes, any matching probe.", unit="s",
                width=4, height=4),
            Panel("Probes", "table", table_queries,
                  "One row per probe. State is the last attempt; the top reason is the most frequent failure "
                  "reason in the time range. Click a probe for its drill-down.",
                  width=24, height=12, links=(PROBE_LINK,), overrides=overrides, transformations=_merge(columns)),
            Panel("Success ratio by probe", "timeseries", (Query(_ratio(
                f'probed_probes_total{{{P}, result="success"}}', f"probed_probes_total{{{P}}}", "probe",
                "$__rate_interval"), legend="{{probe}}"),),
                "Successful attempts over all attempts, per probe.", unit="percentunit", max=1),
            Panel("Failures by reason", "timeseries", (Query(
                f'sum by (reason) (rate(probed_probe_failures_total{{{P}, reason=~"$reason"}}[$__rate_interval]))',
                legend="{{reason}}"),),
                "Failed attempts per second by reason (the reason vocabulary: docs/reference/reasons.md).",
                unit="ops", stack=True),
            Panel("p50 latency by probe (5m window)", "timeseries", (Query(
                f'max by (probe) (probed_probe_latency_seconds{{{P}, quantile="0.5", window="5m"}})',
                legend="{{probe}}"),), "Median of successful attempts over a trailing 5 minutes.", unit="s"),
            Panel("p99 latency by probe (5m window)", "timeseries", (Query(
                f'max by (probe) (probed_probe_latency_seconds{{{P}, quantile="0.99", window="5m"}})',
                legend="{{probe}}"),), "99th percentile of successful attempts over a trailing 5 minutes.",
                unit="s"),
            Panel("Failing probes and why (range)", "table", (Query(
                f'sum by ({BY_PROBE}, reason) (increase(probed_probe_failures_total{{{P}, reason=~"$reason"}}'
                f"[$__range])) > 0", instant=True, table=True),),
                "Failed attempts in the time range, per probe and reason.", width=24, height=8,
                links=(PROBE_LINK,), transformations=({"id": "organize", "options": {
                    "excludeByName": {"Time": True}, "renameByName": {"Value": "Failures"}, "indexByName": {}}},)),
        ),
    )


# --------------------------------------------------------------------------- one probe


def probe() -> Dashboard:
    return Dashboard(
        uid="probed-probe", title="probed / Probe",
        description="One probe: its state, phases, percentiles over windows, failure reasons, and the values "
                    "its type reports (HTTP status, certificate days left, database connections, AWS detail).",
        variables=(DS, JOB, INSTANCE, ONE_PROBE),
        links=DASHBOARD_LINKS,
        panels=(
            Panel("State", "stat", (Query(f"probe_success{{{ONE}}}", instant=True),), "The last attempt.",
                  width=4, height=4, mappings=UP_DOWN, thresholds=((None, "red"), (1, "green"))),
            Panel("Last duration", "stat", (Query(f"probe_duration_seconds{{{ONE}}}", instant=True),),
                  "How long the last attempt took.", unit="s", width=4, height=4),
            Panel("Success ratio (range)", "stat", (Query(_ratio(
                f'probed_probes_total{{{ONE}, result="success"}}', f"probed_probes_total{{{ONE}}}", "probe",
                "$__range"), instant=True),), unit="percentunit", decimals=2, width=4, height=4,
                thresholds=RATIO_THRESHOLDS),
            Panel("Interval", "stat", (Query(f"probed_probe_interval_seconds{{{ONE}}}", instant=True),),
                  unit="s", width=4, height=4),
            Panel("Last run", "stat", (Query(f"time() - probed_probe_last_run_timestamp_seconds{{{ONE}}}",
                                             instant=True),), "Seconds since the last attempt finished.",
                  unit="s", width=4, height=4),
            Panel("HTTP status", "stat", (Query(f"probe_http_status_code{{{ONE}}}", instant=True),),
                  "Status code of the last response (http probes; 0: no response).", width=4, height=4,
                  thresholds=((None, "green"), (400, "red"))),
            Panel("Phases of the last attempt", "timeseries", (Query(
                f"probed_probe_phase_seconds{{{ONE}}} or probe_http_duration_seconds{{{ONE}}}", legend="{{phase}}"),),
                "resolve, connect, tls, processing, transfer, stacked: the top is the attempt's duration. Other "
                "types' phases need the metrics `phases` switch or `profile: full`.", unit="s", stack=True),
            Panel("Latency percentiles by window", "timeseries", (Query(
                f'probed_probe_latency_seconds{{{ONE}, window=~"1m|5m|1h"}}', legend="p{{quantile}} {{window}}"),),
                "Quantiles of successful attempts over trailing 1m, 5m and 1h windows, from the ring (the default "
                "profile exports p50 and p99 over 5m; `percentiles: true` or `profile: full` for all).", unit="s"),
            Panel("Duration histogram p50 / p99", "timeseries", (
                Query(f"histogram_quantile(0.5, sum by (le) (rate(probed_probe_duration_seconds_bucket{{{ONE}}}"
                      "[$__rate_interval])))", legend="p50"),
                Query(f"histogram_quantile(0.99, sum by (le) (rate(probed_probe_duration_seconds_bucket{{{ONE}}}"
                      "[$__rate_interval])))", legend="p99")),
                "From the all-attempts histogram, as PromQL sees it (needs the metrics `histogram` switch or "
                "`profile: full`).", unit="s"),
            Panel("Failures by reason", "timeseries", (Query(
                f"sum by (reason) (increase(probed_probe_failures_total{{{ONE}}}[$__rate_interval]))",
                legend="{{reason}}"),), "Failed attempts per interval by reason.", stack=True),
            Panel("Attempts by result", "timeseries", (Query(
                f"sum by (result) (rate(probed_probes_total{{{ONE}}}[$__rate_interval]))", legend="{{result}}"),),
                unit="ops", stack=True),
            Panel("Values reported by the last attempt", "timeseries", (Query(
                f"probed_probe_value{{{ONE}}}", legend="{{name}}"),),
                "Every numeric fact of a result (status code, content length, answers, connections ...); needs "
                "the metrics `values` switch or `profile: full`."),
            Panel("Certificate days left", "stat", (
                Query(f"(probe_ssl_earliest_cert_expiry{{{ONE}}} - time()) / 86400", legend="server certificate",
                      instant=True, feeds="no"),
                Query(f"probed_aws_acm_cert_days_remaining{{{ONE}}}", legend="ACM", instant=True, feeds="no")),
                "tls and https probes (earliest-expiring presented certificate), ACM checks.", unit="d",
                decimals=1, width=6, thresholds=((None, "red"), (3, "orange"), (14, "green"))),
            Panel("Database connections and memory", "timeseries", (
                Query(f"probed_db_connections_used_ratio{{{ONE}}}", legend="connections used", feeds="no"),
                Query(f"probed_redis_memory_used_ratio{{{ONE}}}", legend="memory used", feeds="no")),
                "postgres, mysql and redis probes with `check_connections` / `max_memory_ratio`.",
                unit="percentunit", max=1, width=6),
            Panel("AWS check detail", "table", (Query(f'{{__name__=~"probed_aws_.+", {ONE}}}', instant=True,
                                                      table=True, feeds="no"),),
                  "The values the AWS check reports (tasks, targets, alarms, days left ...).", width=12,
                  transformations=({"id": "organize", "options": {"excludeByName": {"Time": True, "job": True},
                                                                  "renameByName": {}, "indexByName": {}}},)),
            Panel("Error codes from the peer", "timeseries", (Query(
                f"sum by (code) (increase(probed_probe_error_codes_total{{{ONE}}}[$__rate_interval]))",
                legend="{{code}}", feeds="no"),), "Failed attempts by the peer's own error code (AWS ...).",
                stack=True),
            Panel("Skipped runs by cause", "timeseries", (Query(
                f"sum by (cause) (increase(probed_probe_skipped_runs_total{{{ONE}}}[$__rate_interval]))",
                legend="{{cause}}"),), "overrun: the previous attempt was still running; concurrency_limit "
                "(needs the metrics `skips` switch or `profile: full`)."),
            Panel("Configuration", "table", (Query(f"probed_probe_info{{{ONE}}}", instant=True, table=True),),
                  "Target (credentials removed) and labels.", width=24, height=4,
                  transformations=({"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True,
                                                                                   "__name__": True},
                                                                  "renameByName": {}, "indexByName": {}}},)),
        ),
    )


# --------------------------------------------------------------------------- SLOs


def slos() -> Dashboard:
    table = (
        Query(f"max by (slo, service) (probed_slo_objective_ratio{{{S}}})", instant=True, table=True, feeds="slo"),
        Query(f"max by (slo, service) (probed_slo_error_budget_remaining_ratio{{{S}}})", instant=True, table=True,
              feeds="slo"),
        Query(f'max by (slo, service) (probed_slo_burn_rate{{{S}, window="1h"}})', instant=True, table=True,
              feeds="slo"),
        Query(f"max by (slo, service) (probed_slo_budget_exhaustion_seconds{{{S}}})", instant=True, table=True,
              feeds="slo"),
        Query(f"max by (slo, service) (probed_slo_coverage_ratio{{{S}}})", instant=True, table=True, feeds="slo"),
    )
    columns = {"Value #A": "Objective", "Value #B": "Budget remaining", "Value #C": "Burn rate 1h",
               "Value #D": "Budget exhausted in", "Value #E": "Coverage"}
    overrides = (
        {"matcher": {"id": "byRegexp", "options": "Objective|Budget remaining|Coverage"},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 2}]},
        {"matcher": {"id": "byName", "options": "Budget exhausted in"}, "properties": [{"id": "unit", "value": "s"}]},
        {"matcher": {"id": "byName", "options": "Burn rate 1h"}, "properties": [{"id": "unit", "value": "x"}]},
    )
    return Dashboard(
        uid="probed-slos", title="probed / SLOs",
        description="Error budgets as probed computes them from every attempt (exact, and kept across restarts), "
                    "burn rates per window, time to exhaustion, events and the burn-rate alerts firing.",
        variables=(DS, JOB, SERVICE, SLO),
        links=DASHBOARD_LINKS, time_from="now-24h",
        panels=(
            Panel("SLOs", "table", table, "One row per SLO.", width=24, height=6, overrides=overrides,
                  transformations=_merge(columns)),
            Panel("Error budget remaining", "timeseries", (Query(
                f"probed_slo_error_budget_remaining_ratio{{{S}}}", legend="{{slo}}", feeds="slo"),),
                "1 - (bad/total)/(1 - objective) over the SLO window: 100% untouched, 0 spent, below 0 overspent.",
                unit="percentunit", thresholds=((None, "red"), (0, "orange"), (0.25, "green"))),
            Panel("Burn rate by window", "timeseries", (Query(
                f"probed_slo_burn_rate{{{S}}}", legend="{{slo}} {{window}}", feeds="slo"),),
                "How many times faster than allowed the budget burns, per window. Page: 14.4x on 1h and 5m, "
                "6x on 6h and 30m; ticket: 3x on 1d and 2h, 1x on 3d and 6h.", unit="x",
                thresholds=((None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red"))),
            Panel("SLI by window", "timeseries", (
                Query(f'probed_slo_sli_ratio{{{S}, window=~"1h|1d"}}', legend="{{slo}} {{window}}", feeds="slo"),
                Query(f"probed_slo_objective_ratio{{{S}}}", legend="{{slo}} objective", feeds="slo")),
                "Share of good events over the last hour and day, against the objective.", unit="percentunit"),
            Panel("Time to budget exhaustion", "timeseries", (Query(
                f"probed_slo_budget_exhaustion_seconds{{{S}}} < 1e12", legend="{{slo}}", feeds="slo"),),
                "At the last hour's burn rate; absent while not burning (+Inf).", unit="s"),
            Panel("Events", "timeseries", (Query(
                f"sum by (slo, result) (rate(probed_slo_events_total{{{S}}}[$__rate_interval]))",
                legend="{{slo}} {{result}}", feeds="slo"),),
                "Good and bad events per second (timeslices, for `budgeting: timeslices`).", unit="ops", stack=True),
            Panel("Coverage", "timeseries", (Query(f"probed_slo_coverage_ratio{{{S}}}", legend="{{slo}}",
                                                   feeds="slo"),),
                  "Share of the SLO window with data: below 100% when probed was not running.",
                  unit="percentunit", max=1),
            Panel("Error ratio: daemon and Prometheus (5m)", "timeseries", (
                Query(f'1 - probed_slo_sli_ratio{{{S}, window="5m"}}', legend="{{slo}} probed", feeds="slo"),
                Query('slo:sli_error:ratio_rate5m{sloth_slo=~"$slo", sloth_service=~"$service"}',
                      legend="{{sloth_slo}} rules", feeds="slo")),
                "The daemon's 5m error ratio next to the Sloth-style recording rule (`probed rules`): they agree "
                "within rounding while Prometheus scrapes without gaps.", unit="percentunit"),
            Panel("Burn-rate alerts firing", "table", (Query(
                f'ALERTS{{alertname="{SLO_ALERT}", alertstate="firing", sloth_slo=~"$slo", '
                'sloth_service=~"$service"}', instant=True, table=True, feeds="slo"),),
                "The alerts `probed rules` generates, firing now (needs the rules loaded in Prometheus).",
                width=24, height=6, transformations=({"id": "organize", "options": {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertname": True},
                    "renameByName": {}, "indexByName": {}}},)),
        ),
    )


# --------------------------------------------------------------------------- probed itself


def self_() -> Dashboard:
    lateness = f"probed_scheduler_lateness_seconds_bucket{{{SELF}}}"
    return Dashboard(
        uid="probed-self", title="probed / probed itself",
        description="Is probed healthy enough to trust its results: scheduler lateness, event-loop lag, skipped "
                    "runs, scrape duration (as Prometheus measures it), memory and CPU, config reloads, AWS probe "
                    "attempts and throttles.",
        variables=(DS, JOB, INSTANCE),
        links=DASHBOARD_LINKS,
        panels=(
            Panel("Up", "stat", (Query(f"up{{{SELF}}}", legend="{{instance}}", instant=True),), width=4, height=4,
                  mappings=UP_DOWN, thresholds=((None, "red"), (1, "green"))),
            Panel("Uptime", "stat", (Query(f"time() - process_start_time_seconds{{{SELF}}}", legend="{{instance}}",
                                           instant=True),), unit="s", width=4, height=4),
            Panel("Version", "stat", (Query(f"probed_build_info{{{SELF}}}", legend="{{version}} (Python {{python}})",
                                            instant=True),), width=4, height=4),
            Panel("Probes configured", "stat", (Query(f"sum(probed_probes_configured{{{SELF}}})", instant=True),),
                  width=4, height=4),
            Panel("Last config load", "stat", (Query(f"min(probed_config_last_reload_successful{{{SELF}}})",
                                                     instant=True),),
                  "1: the last load or reload succeeded.", width=4, height=4,
                  mappings=({"type": "value", "options": {"0": {"text": "FAILED", "color": "red", "index": 0},
                                                          "1": {"text": "OK", "color": "green", "index": 1}}},),
                  thresholds=((None, "red"), (1, "green"))),
            Panel("In flight", "stat", (Query(f"sum(probed_scheduler_in_flight{{{SELF}}})", instant=True),),
                  "Attempts running now.", width=4, height=4),
            Panel("Scheduler lateness", "timeseries", (
                Query(f"histogram_quantile(0.5, sum by (instance, le) (rate({lateness}[$__rate_interval])))",
                      legend="p50 {{instance}}"),
                Query(f"histogram_quantile(0.99, sum by (instance, le) (rate({lateness}[$__rate_interval])))",
                      legend="p99 {{instance}}")),
                "How late runs start after their deadline. Over 0.25 s p99 for 10m: ProbedSchedulerLagging.",
                unit="s", thresholds=((None, "green"), (0.25, "red"))),
            Panel("Event-loop lag", "timeseries", (
                Query(f"probed_event_loop_lag_seconds{{{SELF}}}", legend="last {{instance}}"),
                Query(f"probed_event_loop_lag_max_seconds{{{SELF}}}", legend="max over 1m {{instance}}")),
                "A stalled loop delays every probe and inflates their durations.", unit="s"),
            Panel("Skipped runs by cause", "timeseries", (Query(
                f"sum by (cause) (increase(probed_scheduler_skipped_runs_total{{{SELF}}}[$__rate_interval]))",
                legend="{{cause}}"),), "overrun: a probe still running at its next deadline; concurrency_limit: "
                                        "max_concurrency reached.", stack=True),
            Panel("In flight and configured", "timeseries", (
                Query(f"probed_scheduler_in_flight{{{SELF}}}", legend="in flight {{instance}}"),
                Query(f"probed_probes_configured{{{SELF}}}", legend="configured {{instance}}"))),
            Panel("Scrape duration (Prometheus's scrape_duration_seconds)", "timeseries", (
                Query(f"scrape_duration_seconds{{{SELF}}}", legend="render + transfer {{instance}}"),),
                "Prometheus's own measure of each scrape of probed: the render and the transfer together "
                "(probed exports no render time of its own). probed renders in slices while probing.", unit="s",
                overrides=()),
            Panel("Series per scrape", "timeseries", (
                Query(f"scrape_samples_scraped{{{SELF}}}", legend="{{instance}}"),),
                "Prometheus's scrape_samples_scraped: render time and body size grow with it."),
            Panel("Memory", "timeseries", (
                Query(f"process_resident_memory_bytes{{{SELF}}}", legend="resident {{instance}}"),),
                "Resident memory; the per-probe latency ring is most of it, so it grows with the probes.",
                unit="bytes"),
            Panel("CPU", "timeseries", (Query(
                f"rate(process_cpu_seconds_total{{{SELF}}}[$__rate_interval])", legend="{{instance}}"),),
                "Cores used.", unit="percentunit"),
            Panel("Garbage collections", "timeseries", (Query(
                f"sum by (generation) (rate(python_gc_collections_total{{{SELF}}}[$__rate_interval]))",
                legend="generation {{generation}}"),), "probed pauses the collector on the hot paths; "
                                                        "generation 2 passes on a large heap stall the loop.",
                unit="ops"),
            Panel("Open file descriptors", "timeseries", (
                Query(f"process_open_fds{{{SELF}}}", legend="open {{instance}}"),
                Query(f"process_max_fds{{{SELF}}}", legend="limit {{instance}}"))),
            Panel("Config loads", "timeseries", (
                Query(f"probed_config_last_reload_successful{{{SELF}}}", legend="last load ok {{instance}}"),
                Query(f"changes(probed_config_last_reload_success_timestamp_seconds{{{SELF}}}[$__range])",
                      legend="successful loads in range {{instance}}")),
                "A failed reload keeps the previous config running (ProbedConfigReloadFailed)."),
            Panel("AWS probe attempts per second", "timeseries", (Query(
                f'sum by (probe) (rate(probed_probes_total{{{SELF}, type="aws"}}[$__rate_interval]))',
                legend="{{probe}}", feeds="no"),),
                "Attempts of the AWS checks, not API calls: probed counts no API calls of its own. Each attempt "
                "makes one or a few calls (`probed check` prints the calls per minute per service).",
                unit="ops", stack=True),
            Panel("AWS throttled attempts and error codes", "timeseries", (
                Query(f'sum by (probe) (increase(probed_probe_failures_total{{{SELF}, type="aws", '
                      'reason="aws_throttled"}[$__rate_interval]))', legend="throttled {{probe}}", feeds="no"),
                Query(f'sum by (code) (increase(probed_probe_error_codes_total{{{SELF}, type="aws"}}'
                      "[$__rate_interval]))", legend="{{code}}", feeds="no")),
                "AWS probe attempts that failed throttled (reason aws_throttled: ProbedAWSThrottled), and the "
                "AWS error codes of failed attempts.", stack=True),
        ),
    )


DASHBOARDS = {"overview": overview, "probe": probe, "slos": slos, "self": self_}


def all_dashboards() -> dict[str, Dashboard]:
    return {name: build() for name, build in DASHBOARDS.items()}


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard_json(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def file_name(name: str) -> str:
    return f"probed-{name}.json"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in all_dashboards().items():
        path = directory / file_name(name)
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written
