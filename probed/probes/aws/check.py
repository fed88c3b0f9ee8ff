"""The one interface every AWS check implements, and the helpers they share.

A check is a describe-style call (sometimes two or three) plus a verdict on what came back. It
gets a ready client and its own frozen parameters, returns a ProbeResult when the call worked
(`ok`, or `aws_check_failed` with the state in the detail), and lets botocore's exceptions
propagate: the probe translates them once, in errors.py. Checks that treat a specific error
code as a *state* (ECR's ImageNotFoundException: the tag is missing) catch just that code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from probed.config.schema import FieldError
from probed.result import ProbeResult, Reason

P = TypeVar("P")

STATUS_INFO = "probed_aws_status_info"
"""info key for a resource's status word (`available`, `stopped`, `Deployed` ...): bounded by the API."""

_STATUS = re.compile(r"[A-Za-z0-9 ._-]{1,64}")
_MAX_DETAIL_PART = 200


@dataclass(frozen=True)
class Check(Generic[P]):
    name: str
    """The `aws.check` value."""
    service: str
    """botocore's client name (`ecs`, `elbv2` ...): one shared client per service and region."""
    params: type[P]
    """Frozen dataclass of the check's parameters, named like the AWS API's in snake_case."""
    run: Callable[[Any, P, str], Awaitable[ProbeResult]]
    """(client, params, probe name) -> result."""
    target: Callable[[P], str]
    """The derived `target` when the config omits it, e.g. `ecs:cluster/service`."""
    calls: int | Callable[[P], int] = 1
    """API calls per attempt in the worst case, for `probed check`'s calls-per-minute estimate."""
    region: str | None = None
    """Set for global services whose API lives in one region (CloudFront: us-east-1)."""
    iam_actions: tuple[str, ...] = ()
    """The read-only IAM actions the check needs (in the README's IAM table, tested for drift)."""

    def calls_per_attempt(self, params: P) -> int:
        return self.calls(params) if callable(self.calls) else self.calls


def check_failed(detail: str, **kwargs: object) -> ProbeResult:
    """The call worked and the resource is in a bad state."""
    return ProbeResult.fail(Reason.AWS_CHECK_FAILED, detail, **kwargs)


def status_info(status: str) -> dict[str, dict[str, str]]:
    return {STATUS_INFO: {"status": status if _STATUS.fullmatch(status) else "other"}}


def require_status(what: str, status: str, expected: str, facts: dict[str, object], why: str = "") -> ProbeResult:
    """The verdict of the status-word checks (RDS, ElastiCache, NAT gateway): `ok` only at `expected`.

    The word is exported as info either way; `why` (a failure code or message) goes into the detail.
    """
    info = status_info(status)
    facts = {"status": status, **facts}
    if status != expected:
        return check_failed(f"{what} is {status}, not {expected}" + (f" ({clip(why)})" if why else ""), info=info,
                            facts=facts)
    return ProbeResult.ok(detail=f"{what} is {status}", info=info, facts=facts)


def clip(text: str, limit: int = _MAX_DETAIL_PART) -> str:
    """One line, at most `limit` characters: AWS reasons can be long and multi-line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_prefix(field_name: str, value: str, prefix: str, example: str) -> None:
    """Catch a pasted name where an ID or ARN belongs before the first API call does."""
    if not value.startswith(prefix):
        raise FieldError(field_name, f"expected {example!r}-style value starting with {prefix!r}, got {value!r}")


def require_at_least(field_name: str, value: float | None, minimum: float) -> None:
    if value is not None and value < minimum:
        raise FieldError(field_name, f"must be at least {minimum:g}, got {value:g}")


def arn_resource(arn: str) -> str:
    """The resource part of an ARN (`targetgroup/api/73e2d6bc24d8a067` -> `api`, `cert/abc` -> `abc`)."""
    resource = arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) > 2 else parts[-1]
