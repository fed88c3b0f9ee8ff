"""cloudfront_distribution: is the distribution enabled and `Deployed`?

A disabled distribution serves nothing; one stuck `InProgress` serves the previous config. The
CloudFront API is global and lives in us-east-1, whatever `region` the probe names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check, check_failed, status_info
from probed.result import ProbeResult

DEPLOYED = "Deployed"


@dataclass(frozen=True)
class DistributionParams:
    distribution_id: str


async def distribution(client: Any, p: DistributionParams, probe: str) -> ProbeResult:
    resp = await client.get_distribution(Id=p.distribution_id)
    dist = resp.get("Distribution") or {}
    status = dist.get("Status", "unknown")
    config = dist.get("DistributionConfig") or {}
    enabled = bool(config.get("Enabled"))
    facts = {"status": status, "enabled": enabled, "domain_name": dist.get("DomainName"),
             "aliases": (config.get("Aliases") or {}).get("Items") or []}
    problems = ([] if enabled else ["disabled"]) + ([] if status == DEPLOYED else [f"status {status}, not {DEPLOYED}"])
    if problems:
        return check_failed(f"distribution {p.distribution_id}: {', '.join(problems)}", info=status_info(status),
                            facts=facts)
    return ProbeResult.ok(detail=f"distribution {p.distribution_id} enabled and {status}", info=status_info(status),
                          facts=facts)


CLOUDFRONT_DISTRIBUTION = Check(
    name="cloudfront_distribution", service="cloudfront", params=DistributionParams, run=distribution,
    target=lambda p: f"cloudfront:{p.distribution_id}", region="us-east-1",
    iam_actions=("cloudfront:GetDistribution",),
)
