"""secret_readable: can this identity read the app's secret (FAILURE_MODES A11)?

The only way to prove a task role can read a secret (resource policy, KMS key policy, VPC
endpoint policy all included) is to read it. The value is dropped the moment the call returns:
it never enters a result, a log line or an exception, and only the version's stage survives.
botocore's DEBUG logging would print response bodies, which is why clients.py caps its loggers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check
from probed.result import ProbeResult


@dataclass(frozen=True)
class SecretParams:
    secret_id: str


async def secret_readable(client: Any, p: SecretParams, probe: str) -> ProbeResult:
    resp = await client.get_secret_value(SecretId=p.secret_id)
    stages = list(resp.get("VersionStages") or [])
    resp.clear()  # the SecretString/SecretBinary go now, before anything else can see them
    del resp
    return ProbeResult.ok(detail=f"secret {p.secret_id} readable", facts={"version_stages": stages})


SECRET_READABLE = Check(
    name="secret_readable", service="secretsmanager", params=SecretParams, run=secret_readable,
    target=lambda p: f"secretsmanager:{p.secret_id}",
    iam_actions=("secretsmanager:GetSecretValue", "kms:Decrypt (customer-managed keys)"),
)
