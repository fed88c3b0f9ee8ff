"""`type: aws`: the `aws ... describe-*` checks of every runbook, run continuously.

Each check lives in the module of its AWS service (ecs.py, elbv2.py, rds.py ...) behind the
interface in check.py; registry.py lists them, settings.py is the `aws:` section, clients.py the
shared client pool (the kind's shared state, owned and closed by the daemon), errors.py the
translation of botocore's exceptions into reasons.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from probed.config.model import ProbeSpec
from probed.probes import MetricAlias, Probe, ProbeContext, ProbeKind
from probed.probes.aws.check import STATUS_INFO
from probed.probes.aws.clients import ClientPool
from probed.probes.aws.probe import KIND_NAME, AwsProbe
from probed.probes.aws.registry import CHECKS
from probed.probes.aws.s3 import PHASES as S3_PHASES
from probed.probes.aws.settings import AwsSection, AwsSettings
from probed.result import ProbeResult

DEFAULT_INTERVAL_S = 60.0
"""AWS calls cost money and share account-wide rate limits; state changes in minutes anyway."""
DEFAULT_TIMEOUT_S = 10.0
API_CALLS_PER_MINUTE_BUDGET = 300
"""Per service and account. AWS throttles describe-style APIs per account and region with token
buckets whose sustained rate is typically 20 to 100 calls per second, shared with the console,
CI deploys, Terraform and autoscaling. 300 per minute (5 per second) leaves most of the smallest
of those buckets to them. `probed check` warns above it."""

_ALIASES = {
    "ecs_running_tasks": "ECS service tasks in RUNNING state",
    "ecs_desired_tasks": "ECS service desiredCount",
    "ecs_pending_tasks": "ECS service tasks in PENDING state",
    "elbv2_healthy_targets": "Target group targets in state healthy",
    "elbv2_unhealthy_targets": "Target group targets in state unhealthy",
    "elbv2_targets": "Targets registered in the target group",
    "s3_round_trip_seconds": "S3 canary object put + get + delete time",
    "subnet_available_ip_addresses": "Free IP addresses in the subnet",
    "cloudwatch_alarms_in_alarm": "Selected CloudWatch alarms in state ALARM",
    "cloudwatch_alarms": "CloudWatch alarms the check selected",
    "cloudwatch_metric_value": "Latest complete-period value of the CloudWatch metric",
    "acm_cert_expiry_timestamp_seconds": "ACM certificate NotAfter as a Unix timestamp",
    "acm_cert_days_remaining": "Days until the ACM certificate expires",
    "sns_pending_subscriptions": "SNS topic subscriptions still PendingConfirmation",
    "sns_confirmed_subscriptions": "SNS topic subscriptions confirmed",
    "ecr_image_pushed_timestamp_seconds": "When the ECR image tag was pushed, as a Unix timestamp",
}
ALIASES: Mapping[str, MetricAlias] = {name: MetricAlias(f"probed_aws_{name}", help_)
                                      for name, help_ in _ALIASES.items()}


def api_calls_per_minute(specs: Iterable[ProbeSpec]) -> dict[str, float]:
    """Worst-case AWS API calls per minute per service (a failing check may make extra calls).

    AssumeRole for `role_arn` probes is left out: one call per role and region per hour.
    """
    calls: dict[str, float] = defaultdict(float)
    for spec in specs:
        settings: AwsSection = spec.settings
        check = CHECKS[settings.check]
        calls[check.service] += check.calls_per_attempt(settings.params) * 60.0 / spec.interval
    return dict(calls)


def derive_target(settings: AwsSection) -> str:
    return CHECKS[settings.check].target(settings.params)


def describe(result: ProbeResult) -> list[str]:
    """`probed once` lines from a result's facts (never secrets: checks put none there)."""
    lines = []
    for key, value in result.facts.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ", ".join(str(v) if not isinstance(v, dict) else
                              " ".join(f"{k}={x}" for k, x in v.items() if x is not None) for v in value)
        else:
            shown = str(value)
        lines.append(f"{key}: {shown}")
    return lines


def _factory(spec: ProbeSpec, ctx: ProbeContext) -> Probe:
    return AwsProbe(spec, ctx)


def _shared() -> Any:
    return ClientPool()


def estimate(specs: Sequence[ProbeSpec]) -> list[str]:
    """AWS APIs cost money and share account-wide rate limits: show the calls these probes make."""
    lines = []
    for service, n in sorted(api_calls_per_minute(specs).items()):
        warn = (f"  WARNING: above {API_CALLS_PER_MINUTE_BUDGET:g}/min; this shares {service}'s API rate limit"
                if n > API_CALLS_PER_MINUTE_BUDGET else "")
        lines.append(f"aws: {service}: {n:.3g} API calls per minute{warn}")
    return lines


KIND = ProbeKind(
    name=KIND_NAME,
    config_cls=AwsSettings,
    factory=_factory,
    derive_target=derive_target,
    default_interval=DEFAULT_INTERVAL_S,
    default_timeout=DEFAULT_TIMEOUT_S,
    aliases=ALIASES,
    shared=_shared,
    describe=describe,
    estimate=estimate,
    phases=S3_PHASES,
    infos={STATUS_INFO: "The resource's status word as the AWS API reports it (available, ACTIVE ...) (value 1)."},
)

__all__ = ["API_CALLS_PER_MINUTE_BUDGET", "KIND", "AwsProbe", "AwsSettings", "ClientPool", "api_calls_per_minute"]
