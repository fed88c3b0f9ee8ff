"""cloudwatch_alarms and cloudwatch_metric: what CloudWatch already knows, on probed's schedule.

`cloudwatch_alarms` fails while any selected alarm is in ALARM. The state is checked here, not
filtered by the API (`StateValue=ALARM`), so the check also sees how many alarms it covers and
notices named alarms that were deleted (an alarm that no longer exists pages nobody). The
selection (`names`, `name_prefix`) is sent to the API and re-checked on what comes back, so an
endpoint that ignores the filter (a proxy, an emulator) cannot page for someone else's alarm.

`cloudwatch_metric` reads one statistic over the latest *complete* period (a partial period
understates sums and counts) and compares it like a CloudWatch alarm would: ECS CPU/memory,
TargetResponseTime, WAF BlockedRequests, RDS CPU, cache hit rate, with the same SLO machinery as
every other probe.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from probed.config.schema import Duration, FieldError
from probed.probes.aws.check import Check, check_failed, clip
from probed.probes.aws.errors import with_code
from probed.result import ProbeResult, Reason

ALARM = "ALARM"
MAX_ALARM_PAGES = 10
"""DescribeAlarms returns at most 100 per page: beyond 1,000 matching alarms the check says it stopped."""
LOOKBACK_PERIODS = 5
"""Periods fetched: metrics arrive minutes late, so the latest complete period may still be empty."""
_LISTED = 5
_HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)
_STATISTIC = re.compile(r"Average|Sum|Minimum|Maximum|SampleCount|IQM"
                        r"|(p|tm|wm|tc|ts)(\d{1,2}(\.\d{1,10})?|100)|(tm|wm|tc|ts|pr)\([^()]*\)")

Comparison = Literal["GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold",
                     "LessThanOrEqualToThreshold"]
_COMPARE: Mapping[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (operator.gt, ">"),
    "GreaterThanOrEqualToThreshold": (operator.ge, ">="),
    "LessThanThreshold": (operator.lt, "<"),
    "LessThanOrEqualToThreshold": (operator.le, "<="),
}


@dataclass(frozen=True)
class AlarmsParams:
    names: tuple[str, ...] | None = None
    name_prefix: str | None = None
    """Neither: every alarm in the region."""

    def __post_init__(self) -> None:
        if self.names is not None and self.name_prefix is not None:
            raise FieldError("name_prefix", "use either `names` or `name_prefix` (DescribeAlarms takes one)")
        if self.names is not None and not 1 <= len(self.names) <= 100:
            raise FieldError("names", "list 1 to 100 alarm names")


@dataclass(frozen=True)
class MetricParams:
    namespace: str
    metric_name: str
    threshold: float
    dimensions: Mapping[str, str] = field(default_factory=dict)
    statistic: str = "Average"
    period: Duration = 300.0
    comparison: Comparison = "GreaterThanThreshold"
    treat_missing_data: Literal["breaching", "notBreaching"] = "breaching"
    """No datapoint in the lookback: fail (the metric stopped: a service gone, an agent dead) or pass
    (sparse metrics such as WAF BlockedRequests report nothing when nothing happens)."""

    def __post_init__(self) -> None:
        if not _STATISTIC.fullmatch(self.statistic):
            raise FieldError("statistic", f"unknown statistic {self.statistic!r} (Average, Sum, Minimum, Maximum, "
                                          "SampleCount, or a percentile like p99)")
        seconds = self.period
        if seconds != int(seconds) or not (seconds in _HIGH_RESOLUTION_PERIODS or
                                           (seconds >= 60 and seconds % 60 == 0)):
            raise FieldError("period", "CloudWatch periods are 1s, 5s, 10s, 30s or a multiple of 60s")
        if len(self.dimensions) > 30:
            raise FieldError("dimensions", "CloudWatch allows at most 30 dimensions")


async def alarms(client: Any, p: AlarmsParams, probe: str) -> ProbeResult:
    request: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": 100}
    if p.names is not None:
        request["AlarmNames"] = list(p.names)
    elif p.name_prefix is not None:
        request["AlarmNamePrefix"] = p.name_prefix
    found: list[dict[str, Any]] = []
    token = None
    for _ in range(MAX_ALARM_PAGES):
        resp = await client.describe_alarms(**request, **({"NextToken": token} if token else {}))
        found += (resp.get("MetricAlarms") or []) + (resp.get("CompositeAlarms") or [])
        token = resp.get("NextToken")
        if not token:
            break

    read = len(found)
    found = [a for a in found if _selected(p, str(a.get("AlarmName", "")))]
    firing = sorted(a.get("AlarmName", "?") for a in found if a.get("StateValue") == ALARM)
    missing = sorted(set(p.names or ()) - {a.get("AlarmName") for a in found})
    values = {"cloudwatch_alarms_in_alarm": float(len(firing)), "cloudwatch_alarms": float(len(found))}
    facts: dict[str, object] = {"in_alarm": firing, "alarms": len(found)}
    notes = [f"only the first {read} alarms were read"] if token else []
    if missing:
        facts["missing"] = missing
        notes.append(f"not found: {_listed(missing)}")
    if firing:
        reasons = {a.get("AlarmName"): a.get("StateReason") for a in found if a.get("StateValue") == ALARM}
        first_reason = clip(reasons.get(firing[0]) or "", 150)
        detail = f"{len(firing)} of {len(found)} alarms in ALARM: {_listed(firing)}"
        detail += f" ({firing[0]}: {first_reason})" if first_reason else ""
        return check_failed("; ".join([detail, *notes]), values=values, facts=facts)
    if missing:
        return check_failed("; ".join([f"none of {len(found)} alarms in ALARM", *notes]), values=values, facts=facts)
    return ProbeResult.ok(detail="; ".join([f"none of {len(found)} alarms in ALARM", *notes]), values=values,
                          facts=facts)


async def metric(client: Any, p: MetricParams, probe: str) -> ProbeResult:
    period = int(p.period)
    end = math.floor(time.time() / period) * period  # the end of the latest complete period
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {"Namespace": p.namespace, "MetricName": p.metric_name,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(p.dimensions.items())]},
            "Period": period,
            "Stat": p.statistic,
        },
        "ReturnData": True,
    }
    resp = await client.get_metric_data(
        MetricDataQueries=[query], ScanBy="TimestampDescending",
        StartTime=datetime.fromtimestamp(end - period * LOOKBACK_PERIODS, UTC),
        EndTime=datetime.fromtimestamp(end, UTC))
    result = (resp.get("MetricDataResults") or [{}])[0]
    what = f"{p.namespace} {p.metric_name} {p.statistic}/{period}s"
    status = result.get("StatusCode", "Complete")
    if status in ("InternalError", "Forbidden"):
        messages = "; ".join(m.get("Value", "") for m in resp.get("Messages") or [] if m.get("Value"))
        detail = f"GetMetricData {what}: {status}" + (f": {messages}" if messages else "")
        return with_code(Reason.AWS_ERROR, clip(detail), status)
    points = sorted(zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False), reverse=True)
    if not points:
        detail = f"{what}: no datapoints in the last {LOOKBACK_PERIODS} periods"
        if p.treat_missing_data == "notBreaching":
            return ProbeResult.ok(detail=detail, facts={"datapoints": 0})
        return check_failed(detail, facts={"datapoints": 0})
    stamp, value = points[0]
    compare, symbol = _COMPARE[p.comparison]
    values = {"cloudwatch_metric_value": float(value)}
    facts = {"value": value, "timestamp": stamp.isoformat(), "datapoints": len(points)}
    if compare(value, p.threshold):
        return check_failed(f"{what} = {value:g} {symbol} {p.threshold:g}", values=values, facts=facts)
    return ProbeResult.ok(detail=f"{what} = {value:g} (fails when {symbol} {p.threshold:g})", values=values,
                          facts=facts)


def _selected(p: AlarmsParams, name: str) -> bool:
    if p.names is not None:
        return name in p.names
    return name.startswith(p.name_prefix or "")


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _alarms_target(p: AlarmsParams) -> str:
    if p.names is not None:
        return "cloudwatch:alarms/" + ",".join(p.names)
    return f"cloudwatch:alarms/{p.name_prefix or ''}*"


def _metric_target(p: MetricParams) -> str:
    dims = ",".join(f"{k}={v}" for k, v in sorted(p.dimensions.items()))
    return f"cloudwatch:{p.namespace}/{p.metric_name}" + (f"{{{dims}}}" if dims else "")


CLOUDWATCH_ALARMS = Check(
    name="cloudwatch_alarms", service="cloudwatch", params=AlarmsParams, run=alarms, target=_alarms_target,
    iam_actions=("cloudwatch:DescribeAlarms",),
)
CLOUDWATCH_METRIC = Check(
    name="cloudwatch_metric", service="cloudwatch", params=MetricParams, run=metric, target=_metric_target,
    iam_actions=("cloudwatch:GetMetricData",),
)
