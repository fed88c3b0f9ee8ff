"""acm_certificate: is the certificate ISSUED and far enough from expiry?

ACM renews DNS-validated certificates by itself from 60 days before expiry, but not imported
ones, nor those whose validation record was deleted; those expire silently behind the ALB or
CloudFront. The expiry is exported as a timestamp (base unit) and as days left (what people read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import (
    Check,
    arn_resource,
    check_failed,
    clip,
    require_at_least,
    require_prefix,
    status_info,
)
from probed.result import ProbeResult, Reason

ISSUED = "ISSUED"
DAY_S = 86400.0


@dataclass(frozen=True)
class CertificateParams:
    certificate_arn: str
    min_days_remaining: float = 30.0

    def __post_init__(self) -> None:
        require_prefix("certificate_arn", self.certificate_arn, "arn:",
                       "arn:aws:acm:REGION:ACCOUNT:certificate/ID")
        require_at_least("min_days_remaining", self.min_days_remaining, 0)


async def certificate(client: Any, p: CertificateParams, probe: str) -> ProbeResult:
    cert = (await client.describe_certificate(CertificateArn=p.certificate_arn)).get("Certificate") or {}
    status = cert.get("Status", "unknown")
    name = cert.get("DomainName") or arn_resource(p.certificate_arn)
    renewal = cert.get("RenewalSummary") or {}
    facts: dict[str, object] = {"status": status, "domain_name": cert.get("DomainName"), "type": cert.get("Type"),
                                "in_use_by": len(cert.get("InUseBy") or [])}
    info = status_info(status)
    values: dict[str, float] = {}
    not_after = cert.get("NotAfter")
    if not_after is not None:
        expiry = not_after.timestamp()
        days = (expiry - time.time()) / DAY_S
        values = {"acm_cert_expiry_timestamp_seconds": expiry, "acm_cert_days_remaining": days}
        facts["not_after"] = not_after.isoformat()
    if status == "EXPIRED" or (not_after is not None and values["acm_cert_days_remaining"] <= 0):
        return ProbeResult.fail(Reason.CERT_EXPIRED, f"certificate {name} expired", values=values, info=info,
                                facts=facts)
    if status != ISSUED:
        why = cert.get("FailureReason") or ""
        return check_failed(f"certificate {name} is {status}, not {ISSUED}" + (f" ({why})" if why else ""),
                            values=values, info=info, facts=facts)
    if not values:
        return check_failed(f"certificate {name} is {status} but has no expiry date", info=info, facts=facts)
    days = values["acm_cert_days_remaining"]
    if days < p.min_days_remaining:
        renewing = renewal.get("RenewalStatus")
        detail = f"certificate {name} expires in {days:.1f} days (< {p.min_days_remaining:g})"
        if renewing:
            detail += f", renewal {renewing}" + (f": {clip(renewal['RenewalStatusReason'], 100)}"
                                                 if renewal.get("RenewalStatusReason") else "")
        elif cert.get("Type") == "IMPORTED":
            detail += ", imported: ACM will not renew it"
        return ProbeResult.fail(Reason.CERT_EXPIRING, detail, values=values, info=info, facts=facts)
    return ProbeResult.ok(detail=f"certificate {name} {status}, {days:.0f} days left", values=values, info=info,
                          facts=facts)


ACM_CERTIFICATE = Check(
    name="acm_certificate", service="acm", params=CertificateParams, run=certificate,
    target=lambda p: f"acm:{arn_resource(p.certificate_arn)}", iam_actions=("acm:DescribeCertificate",),
)
