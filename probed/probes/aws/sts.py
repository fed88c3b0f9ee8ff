"""sts_identity: does probed (or the role it assumes) have working credentials, in the right account?

GetCallerIdentity needs no IAM permission, so it fails only when the credentials themselves are
missing, invalid or expired (`aws_auth`). `expect_account` catches credentials that work but
belong to another account (a staging key in production, a role_arn typo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from probed.config.schema import FieldError
from probed.probes.aws.check import Check, check_failed
from probed.result import ProbeResult

_ACCOUNT = re.compile(r"\d{12}")


@dataclass(frozen=True)
class StsIdentityParams:
    expect_account: str | None = None

    def __post_init__(self) -> None:
        if self.expect_account is not None and not _ACCOUNT.fullmatch(self.expect_account):
            raise FieldError("expect_account", f"an AWS account ID is 12 digits, got {self.expect_account!r}"
                             " (quote it in YAML if it starts with 0)")


async def sts_identity(client: Any, p: StsIdentityParams, probe: str) -> ProbeResult:
    resp = await client.get_caller_identity()
    account, arn = resp.get("Account", ""), resp.get("Arn", "")
    facts = {"account": account, "arn": arn}
    if p.expect_account is not None and account != p.expect_account:
        return check_failed(f"signed in as {arn} in account {account}, expected account {p.expect_account}",
                            facts=facts)
    return ProbeResult.ok(detail=arn, facts=facts)


def _target(p: StsIdentityParams) -> str:
    return "sts:caller-identity" + (f"/{p.expect_account}" if p.expect_account else "")


STS_IDENTITY = Check(name="sts_identity", service="sts", params=StsIdentityParams, run=sts_identity,
                     target=_target, iam_actions=())
