"""`probed rules`: one Prometheus rule file for a config's SLOs and for probed itself.

Per SLO, the recording rules carry the names and labels Sloth generates (slok/sloth,
`examples/_gen/getting-started.yml`), so Sloth's Grafana dashboards read probed's SLOs unchanged:
the SLI error ratio per window from `probed_slo_events_total{result}`, the SLO window's ratio as
the mean of the 5m ratios over the window, the objective, the budget and the burn rates.

Where probed differs from Sloth, on purpose:
- Each burn-rate alert is one rule per window pair (1h+5m, 6h+30m for page; 1d+2h, 3d+6h for
  ticket) instead of one `or` of both pairs. With `or`, an alert's labels come from whichever
  pair matched first, so a burn moving from one pair to the other resolves and re-fires as a
  different alert; one rule per pair keeps each alert's identity, and its `sloth_window` label
  (the long window) says which pair fired.
- The alert's value is the long window's burn rate (not the error ratio), so the annotation can
  say "burning 20x" and Alertmanager templates can show it.
- Calendar SLOs (`calendar: month | week`) get rolling 30d / 7d windows here: PromQL has no
  calendar ranges. The daemon's own `probed_slo_error_budget_remaining_ratio` is the calendar figure.
The full list, with the labels, annotations and `sloth_slo_info` values: docs/alerts-and-dashboards.md,
"Differences from Sloth".

The operational alerts watch probed and its probes; they select `job="<job>"` (the scrape job,
`--job`), because `probe_success` and `probe_ssl_earliest_cert_expiry` are also blackbox_exporter's
names and a shared Prometheus would otherwise alert on both.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from probed import __version__
from probed.config.model import Config
from probed.config.schema import parse_duration
from probed.config.slo import SloSpec, window_label
from probed.output import catalog

SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""Sloth's SLI windows: every window a burn-rate alert reads."""

Severity = Literal["page", "ticket"]


@dataclass(frozen=True)
class BurnAlert:
    """One multi-window burn-rate condition (SRE Workbook, "Alerting on SLOs", table 5-8)."""

    severity: Severity
    factor: float
    long: str
    short: str


BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert("page", 14.4, "1h", "5m"),
    BurnAlert("page", 6.0, "6h", "30m"),
    BurnAlert("ticket", 3.0, "1d", "2h"),
    BurnAlert("ticket", 1.0, "3d", "6h"),
)
SLO_ALERT = "ProbedSLOErrorBudgetBurn"

OPERATIONAL_ALERTS = (
    "ProbedProbeFailing", "ProbedCertificateExpiringSoon", "ProbedDown", "ProbedProbeStale",
    "ProbedSchedulerLagging", "ProbedConfigReloadFailed", "ProbedAWSThrottled",
)
REASONS_DOC = "docs/reference/reasons.md"


@dataclass(frozen=True)
class RuleOptions:
    job: str = "probed"
    """The scrape job probed runs under: the operational alerts select it."""
    probe_failing_for: str = "5m"
    """How long every attempt of a probe must fail before ProbedProbeFailing fires."""
    cert_warning_days: float = 14.0
    cert_critical_days: float = 3.0
    lateness_budget_s: float = 0.25
    """Scheduler lateness p99 over 5 minutes above this fires ProbedSchedulerLagging."""
    runbook_base: str = ""
    """URL of the alerts page (docs/alerts-and-dashboards.md as published): operational alerts
    link `<base>#<alert name in lower case>`. Empty: no runbook_url on them."""


_JOB = re.compile(r"[A-Za-z0-9_.:/-]+")
_PROMETHEUS_DURATION = re.compile(r"(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")


def job_name(text: str) -> str:
    """`text`, when it can be a scrape job here: it goes into PromQL selectors and alert templates,
    quoted, so only characters that need no escaping in either (Kubernetes names,
    `namespace/name`, host:port). Raises ValueError naming `--job`."""
    if not _JOB.fullmatch(text):
        raise ValueError(f"--job {text!r} is not a job name: use letters, digits and _ . : / -")
    return text


def prometheus_duration(text: str) -> str:
    """`text` (any duration probed reads) as Prometheus writes it for `for:` and range selectors:
    whole units, largest first (`1.5m` is `1m30s`). Raises ValueError naming `--probe-failing-for`."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"--probe-failing-for: {exc}") from None
    if seconds <= 0:
        raise ValueError(f'--probe-failing-for: duration "{text}" must be longer than 0')
    if _PROMETHEUS_DURATION.fullmatch(text):
        return text
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6:
        raise ValueError(f'--probe-failing-for: duration "{text}" is finer than Prometheus reads (1ms)')
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def validate_options(options: RuleOptions) -> None:
    """Raise ValueError, naming the option, when an option would make rules Prometheus refuses
    (the CLI checks its flags with the same two functions before it gets here)."""
    job_name(options.job)
    written = prometheus_duration(options.probe_failing_for)
    if written != options.probe_failing_for:
        raise ValueError(f"--probe-failing-for {options.probe_failing_for!r}: Prometheus writes it {written!r}")


# --------------------------------------------------------------------------- SLO rules


def sloth_id(spec: SloSpec) -> str:
    return f"{spec.service}-{spec.name}"


def period(spec: SloSpec) -> tuple[str, float]:
    """The window label of the SLO's own SLI rule and its length in days."""
    if spec.calendar is not None:
        return ("30d", 30.0) if spec.calendar == "month" else ("7d", 7.0)
    return window_label(spec.window_s), spec.window_s / 86400.0


def _num(value: float) -> str:
    """A float as PromQL reads it, without binary noise (1 - 0.999 -> 0.001)."""
    return f"{round(value, 12):.12g}"


def _duration(days: float) -> str:
    return f"{days:g}"


def slo_groups(spec: SloSpec) -> list[dict[str, Any]]:
    sid = sloth_id(spec)
    ident = {"sloth_id": sid, "sloth_service": spec.service, "sloth_slo": spec.name}
    labels = {**dict(sorted(spec.labels.items())), **ident}
    selector = f'sloth_id="{sid}", sloth_service="{spec.service}", sloth_slo="{spec.name}"'
    events = f'probed_slo_events_total{{slo="{spec.name}"'
    own_window, days = period(spec)

    sli = []
    for window in SLI_WINDOWS:
        sli.append({
            "record": f"slo:sli_error:ratio_rate{window}",
            "expr": (f'(sum(rate({events},result="bad"}}[{window}])))\n/\n'
                     f"(sum(rate({events}}}[{window}])))\n"),
            "labels": {**labels, "sloth_window": window},
        })
    ratio_5m = f"slo:sli_error:ratio_rate5m{{{selector}}}"
    if own_window not in SLI_WINDOWS:
        # A window that is also an alert window (1d, 3d, ...) already has its record above, from
        # the events' rate: a second rule of the same name and labels would be a duplicate series.
        sli.append({
            "record": f"slo:sli_error:ratio_rate{own_window}",
            "expr": (f"sum_over_time({ratio_5m}[{own_window}])\n/ ignoring (sloth_window)\n"
                     f"count_over_time({ratio_5m}[{own_window}])\n"),
            # Sloth sets only sloth_window here (the rest comes with the 5m series); the full set keeps
            # two SLOs' rules distinct for promtool's duplicate-rule lint.
            "labels": {**labels, "sloth_window": own_window},
        })

    budget = f"slo:error_budget:ratio{{{selector}}}"
    join = "/ on(sloth_id, sloth_slo, sloth_service) group_left"
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({_num(spec.objective)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1-{_num(spec.objective)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({_duration(days)})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio", "expr": f"{ratio_5m}\n{join}\n{budget}\n", "labels": labels},
        {"record": "slo:period_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate{own_window}{{{selector}}}\n{join}\n{budget}\n", "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio",
         "expr": f"1 - slo:period_burn_rate:ratio{{{selector}}}", "labels": labels},
        {"record": "sloth_slo_info", "expr": "vector(1)", "labels": {
            **labels, "sloth_mode": "probed-rules", "sloth_objective": _num(spec.objective * 100),
            "sloth_spec": "probed/v1", "sloth_version": __version__}},
    ]

    alerts = [_burn_alert(spec, a, selector, ident, own_window, days) for a in BURN_ALERTS
              if (spec.page if a.severity == "page" else spec.ticket)]
    groups: list[dict[str, Any]] = [
        {"name": f"sloth-slo-sli-recordings-{sid}", "rules": sli},
        {"name": f"sloth-slo-meta-recordings-{sid}", "rules": meta},
    ]
    if alerts:
        groups.append({"name": f"sloth-slo-alerts-{sid}", "rules": alerts})
    return groups


def _burn_alert(spec: SloSpec, alert: BurnAlert, selector: str, ident: Mapping[str, str], own_window: str,
                days: float) -> dict[str, Any]:
    budget = _num(spec.error_budget)
    threshold = _num(alert.factor)
    expr = (f"(slo:sli_error:ratio_rate{alert.long}{{{selector}}} / {budget}) > {threshold}\n"
            f"and ignoring (sloth_window)\n"
            f"(slo:sli_error:ratio_rate{alert.short}{{{selector}}} / {budget}) > {threshold}\n")
    per_hour = alert.factor / (days * 24)
    exhausted_h = days * 24 / alert.factor
    objective = f"{_num(spec.objective * 100)}%"
    what = "attempts succeeding" if spec.sli == "availability" else "attempts succeeding within the latency threshold"
    if spec.budgeting == "timeslices":
        what = f"good minutes ({what} in at least {_num(spec.good_ratio * 100)}% of the minute's attempts)"
    description = (
        f"{objective} of {what} over {own_window} (SLO {spec.name}, service {spec.service}). "
        f"Over the last {alert.long} the budget burned {{{{ printf \"%.1f\" $value }}}}x as fast as the SLO allows, "
        f"and over {alert.short} too (both above {threshold}x). At {threshold}x, "
        f"{_pct(per_hour)} of the {own_window} error budget burns per hour: all of it in {_hours(exhausted_h)}."
    )
    if spec.description:
        description += f" {spec.description.rstrip('.')}."
    annotations = {
        "summary": f"({alert.severity}) {spec.service} {spec.name}: error budget burning over {threshold}x "
                   f"on {alert.long} and {alert.short}",
        "description": description,
    }
    if spec.runbook_url:
        annotations["runbook_url"] = spec.runbook_url
    return {
        "alert": SLO_ALERT,
        "expr": expr,
        # The series already carry these (sloth_window: the long window's); on the rule they keep
        # the rules of one severity, and of two SLOs, distinct for promtool's duplicate-rule lint.
        "labels": {**dict(sorted(spec.labels.items())), **ident, "severity": alert.severity,
                   "sloth_severity": alert.severity, "sloth_window": alert.long},
        "annotations": annotations,
    }


def _pct(ratio: float) -> str:
    pct = ratio * 100
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


def _hours(hours: float) -> str:
    if hours < 48:
        return f"{hours:.0f} hours" if hours >= 2 else f"{hours * 60:.0f} minutes"
    return f"{hours / 24:.0f} days"


# --------------------------------------------------------------------------- operational


def operational_group(options: RuleOptions) -> dict[str, Any]:
    job = f'job="{options.job}"'
    families = {f.name: f for f in catalog.all_families()}

    def m(name: str, extra: str = "", suffix: str = "") -> str:
        family = families.get(name)
        assert family is not None, f"{name} is not in the metric catalog"
        assert not suffix or family.type == "histogram", f"{name} is not a histogram"
        return f"{name}{suffix}{{{job}{extra}}}"

    def rule(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
        annotations = {"summary": summary, "description": description}
        if options.runbook_base:
            annotations["runbook_url"] = f"{options.runbook_base}#{name.lower()}"
        out: dict[str, Any] = {"alert": name, "expr": expr}
        if for_:
            out["for"] = for_
        out["labels"] = {"severity": severity}
        out["annotations"] = annotations
        return out

    window = options.probe_failing_for
    reason_query = (
        "{{ with printf `topk(1, increase(probed_probe_failures_total"
        '{job="%s",instance="%s",probe="%s"}' f"[{window}]))` "
        "$labels.job $labels.instance $labels.probe | query }}{{ . | first | label \"reason\" }}{{ end }}")
    days_left = f"(probe_ssl_earliest_cert_expiry{{{job}}} - time()) / 86400"
    acm_days = f'{m("probed_aws_acm_cert_days_remaining")} + 0'
    warn, crit = _num(options.cert_warning_days), _num(options.cert_critical_days)
    cert_text = ("{{ $labels.probe }} ({{ $labels.type }}): the certificate expires in "
                 "{{ printf \"%.1f\" $value }} days")
    lateness = _num(options.lateness_budget_s)
    throttled = m("probed_probe_failures_total", ',reason="aws_throttled"')
    rules = [
        rule("ProbedProbeFailing", f"{m('probe_success')} == 0", window, "warning",
             "Probe {{ $labels.probe }} ({{ $labels.type }}) has failed every attempt for " + window,
             f"Every attempt of {{{{ $labels.probe }}}} on {{{{ $labels.instance }}}} failed for {window}; "
             f"the most frequent reason over the last {window}: {reason_query}. "
             f"The reasons are listed in {REASONS_DOC}; `probed once {{{{ $labels.probe }}}}` shows the detail."),
        rule("ProbedCertificateExpiringSoon",
             f"{days_left} < {warn} >= {crit}\nor\n{acm_days} < {warn} >= {crit}\n", "15m", "warning",
             cert_text, f"{cert_text} (warning under {warn} days, critical under {crit}). Renew it, or check "
             "that the renewed certificate is deployed on every endpoint behind the name."),
        rule("ProbedCertificateExpiringSoon",
             f"{days_left} < {crit}\nor\n{acm_days} < {crit}\n", "15m", "critical",
             cert_text, f"{cert_text} (critical under {crit} days): clients fail when it expires. Renew and "
             "deploy it now; a negative figure means it has already expired."),
        rule("ProbedDown", f'up{{{job}}} == 0\nor\nabsent(up{{{job}}})\n', "5m", "critical",
             "probed{{ with $labels.instance }} ({{ . }}){{ end }} is down or not scraped",
             f"Prometheus has no successful scrape of job {options.job} (target down, or no target at all): "
             "no probe results and no SLO figures arrive. Check the process or pod, then Prometheus's "
             "targets page for the scrape error."),
        rule("ProbedProbeStale",
             f"time() - {m('probed_probe_last_run_timestamp_seconds')}\n> 3 * "
             f"{m('probed_probe_interval_seconds')}\n", "2m", "warning",
             "Probe {{ $labels.probe }} has not run for over 3 intervals",
             "{{ $labels.probe }}'s last attempt finished {{ humanizeDuration $value }} ago, over three of its "
             "intervals: its runs are skipped (probed_probe_skipped_runs_total: overrun or concurrency_limit) "
             "or the scheduler is stuck. Check probed_scheduler_in_flight and the log."),
        rule("ProbedSchedulerLagging",
             "histogram_quantile(0.99, sum by (job, instance, le) (rate("
             f"{m('probed_scheduler_lateness_seconds', suffix='_bucket')}[5m])))"
             f"\n> {lateness}\n", "10m", "warning",
             "probed ({{ $labels.instance }}) starts probes late",
             f"99% of runs over the last 5 minutes started within {{{{ humanizeDuration $value }}}} of their "
             f"deadline, over the {lateness} s budget: probed is short of CPU (too many probes or a heavy "
             "scrape). See probed_event_loop_lag_max_seconds and the 'probed itself' dashboard."),
        rule("ProbedConfigReloadFailed", f"{m('probed_config_last_reload_successful')} == 0", "5m", "warning",
             "probed ({{ $labels.instance }}) could not load its new config",
             "The last config reload failed and probed keeps running the previous config. "
             "`probed check --config FILE` prints every error with its line."),
        rule("ProbedAWSThrottled",
             f"increase({throttled}[15m]) > 0", "10m",
             "warning", "AWS throttles probe {{ $labels.probe }}",
             "{{ $labels.probe }}'s AWS API calls were throttled ({{ printf \"%.0f\" $value }} in 15 minutes). "
             "The resource is not known to be down; probed and other clients share the account's rate limit. "
             "Lengthen the AWS probes' intervals (`probed check` prints the calls per minute)."),
    ]
    return {"name": "probed-operational", "rules": rules}


# --------------------------------------------------------------------------- the file


def rule_groups(config: Config, options: RuleOptions | None = None) -> list[dict[str, Any]]:
    options = options or RuleOptions()
    validate_options(options)
    groups: list[dict[str, Any]] = []
    for spec in config.slos:
        groups.extend(slo_groups(spec))
    groups.append(operational_group(options))
    return groups


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a label set written out each time: no &id001 anchors in a file people read


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(config: Config, options: RuleOptions | None = None, source: str | None = None) -> str:
    """The rule file as text: a header saying where it came from, then `groups:`."""
    out = io.StringIO()
    out.write(f"# Generated by `probed rules` (probed {__version__}) from {source or config.path}.\n"
              "# DO NOT EDIT: change the config (or the generator) and regenerate.\n")
    yaml.dump({"groups": rule_groups(config, options)}, out, Dumper=_Dumper, sort_keys=False,
              default_flow_style=False, width=1000, allow_unicode=True)
    return out.getvalue()


def alert_names(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]
