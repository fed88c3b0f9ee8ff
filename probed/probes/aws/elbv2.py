"""elbv2_target_health: does the ALB/NLB target group have healthy targets behind it?

An ALB answers 502/503 when no target is healthy (FAILURE_MODES H3); this check says so with
the reason codes ELB gives per target (Target.ResponseCodeMismatch, Target.Timeout ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check, arn_resource, check_failed, require_at_least, require_prefix
from probed.result import ProbeResult

_LISTED = 3


@dataclass(frozen=True)
class TargetHealthParams:
    target_group_arn: str
    min_healthy: int = 1
    all_healthy: bool = False
    """Also fail when any target is `unhealthy`, even if enough others are healthy."""

    def __post_init__(self) -> None:
        require_prefix("target_group_arn", self.target_group_arn, "arn:",
                       "arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID")
        require_at_least("min_healthy", self.min_healthy, 0)


async def target_health(client: Any, p: TargetHealthParams, probe: str) -> ProbeResult:
    resp = await client.describe_target_health(TargetGroupArn=p.target_group_arn)
    targets = resp.get("TargetHealthDescriptions") or []
    states = Counter(t.get("TargetHealth", {}).get("State", "unknown") for t in targets)
    healthy, unhealthy = states.get("healthy", 0), states.get("unhealthy", 0)
    values = {"elbv2_healthy_targets": float(healthy), "elbv2_unhealthy_targets": float(unhealthy),
              "elbv2_targets": float(len(targets))}
    facts = {"states": dict(states)}
    summary = f"healthy {healthy}/{len(targets)}"
    not_healthy = [t for t in targets if t.get("TargetHealth", {}).get("State") != "healthy"]
    if not_healthy:
        summary += "; " + ", ".join(_describe(t) for t in not_healthy[:_LISTED])
        if len(not_healthy) > _LISTED:
            summary += f" and {len(not_healthy) - _LISTED} more"
    if healthy < p.min_healthy:
        return check_failed(f"{summary} (need {p.min_healthy})", values=values, facts=facts)
    if p.all_healthy and unhealthy:
        return check_failed(f"{summary} ({unhealthy} unhealthy)", values=values, facts=facts)
    return ProbeResult.ok(detail=summary, values=values, facts=facts)


def _describe(t: dict[str, Any]) -> str:
    health = t.get("TargetHealth", {})
    target = t.get("Target", {})
    where = target.get("Id", "?") + (f":{target['Port']}" if target.get("Port") else "")
    return f"{where} {health.get('State', '?')}" + (f" ({health['Reason']})" if health.get("Reason") else "")


ELBV2_TARGET_HEALTH = Check(
    name="elbv2_target_health", service="elbv2", params=TargetHealthParams, run=target_health,
    target=lambda p: f"elbv2:{arn_resource(p.target_group_arn)}",
    iam_actions=("elasticloadbalancing:DescribeTargetHealth",),
)
