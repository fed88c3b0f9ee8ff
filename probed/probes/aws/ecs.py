"""ecs_service: is the service running the tasks it should, and if not, why did the last one stop?

The runbook sequence, automated: `aws ecs describe-services` for running/desired and the
deployment's rollout state, then (only when that fails, to keep the healthy path at one call)
`list-tasks --desired-status STOPPED` + `describe-tasks` for the most recent stoppedReason,
which names the cause (CannotPullContainerError, an essential container's exit code, OOM).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from probed.probes.aws.check import Check, check_failed, clip, require_at_least, status_info
from probed.probes.aws.errors import error_code
from probed.result import ProbeResult

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STOPPED_TASKS_LOOKED_AT = 10


@dataclass(frozen=True)
class EcsServiceParams:
    cluster: str
    service: str
    min_running: int | None = None
    """Fail below this many running tasks instead of below desiredCount (tolerates scaling)."""

    def __post_init__(self) -> None:
        require_at_least("min_running", self.min_running, 0)


async def ecs_service(client: Any, p: EcsServiceParams, probe: str) -> ProbeResult:
    resp = await client.describe_services(cluster=p.cluster, services=[p.service])
    services = resp.get("services") or []
    if not services:
        why = ", ".join(f.get("reason", "?") for f in resp.get("failures") or []) or "not returned"
        return check_failed(f"service {p.service} not found in cluster {p.cluster} ({why})",
                            info=status_info("MISSING"))
    svc = services[0]
    status = svc.get("status", "UNKNOWN")
    running, desired, pending = svc.get("runningCount", 0), svc.get("desiredCount", 0), svc.get("pendingCount", 0)
    values = {"ecs_running_tasks": float(running), "ecs_desired_tasks": float(desired),
              "ecs_pending_tasks": float(pending)}
    primary: dict[str, Any] = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
    facts: dict[str, object] = {
        "status": status,
        "deployments": [{k: d.get(k) for k in ("status", "rolloutState", "runningCount", "desiredCount",
                                               "failedTasks", "taskDefinition")}
                        for d in svc.get("deployments") or []],
    }

    need = p.min_running if p.min_running is not None else desired
    problems = []
    if status != "ACTIVE":
        problems.append(f"service is {status}")
    if primary.get("rolloutState") == "FAILED":
        problems.append(f"rollout FAILED: {clip(primary.get('rolloutStateReason') or 'no reason given')}")
    summary = f"running {running}/{desired}" + (f" (pending {pending})" if pending else "")
    if running < need or problems:
        if p.min_running is not None and running < need:
            summary += f", below min_running {need}"
        last = await _last_stop(client, p)
        if last:
            facts["last_stopped_reason"] = last
            problems.append(f"last stop: {last}")
        return check_failed(", ".join([summary, *problems]), values=values, info=status_info(status), facts=facts)
    return ProbeResult.ok(detail=summary, values=values, info=status_info(status), facts=facts)


async def _last_stop(client: Any, p: EcsServiceParams) -> str | None:
    """The newest stopped task's reason; ECS keeps stopped tasks for about an hour."""
    try:
        arns = (await client.list_tasks(cluster=p.cluster, serviceName=p.service, desiredStatus="STOPPED",
                                        maxResults=_STOPPED_TASKS_LOOKED_AT)).get("taskArns") or []
        if not arns:
            return None
        tasks = (await client.describe_tasks(cluster=p.cluster, tasks=arns)).get("tasks") or []
    except ClientError as exc:
        # The service's state is the finding; a missing ecs:ListTasks permission must not hide it.
        return f"unavailable ({error_code(exc)})"
    if not tasks:
        return None
    task = max(tasks, key=lambda t: t.get("stoppedAt") or t.get("stoppingAt") or t.get("createdAt") or _EPOCH)
    reason: str = task.get("stoppedReason") or task.get("stopCode") or "no reason given"
    # "Essential container in task exited" says little; the container's exit code and reason say why.
    for container in task.get("containers") or []:
        code, why = container.get("exitCode"), container.get("reason")
        if why or (code not in (None, 0)):
            reason += f" ({container.get('name', '?')}: " + ", ".join(
                x for x in (f"exit {code}" if code is not None else "", why or "") if x) + ")"
            break
    return clip(reason)


ECS_SERVICE = Check(
    name="ecs_service", service="ecs", params=EcsServiceParams, run=ecs_service,
    target=lambda p: f"ecs:{p.cluster}/{p.service}", calls=3,
    iam_actions=("ecs:DescribeServices", "ecs:ListTasks", "ecs:DescribeTasks"),
)
