"""The `aws:` section: which check, where, as whom, and the check's own parameters.

One flat dataclass, because that is what the YAML looks like (`check: ecs_service`, `cluster:`,
`service:` side by side). Every check parameter is optional here and `__post_init__` holds each
check to its own set: a parameter another check owns is rejected by name ("min_healthy is not a
parameter of check ecs_service"), a missing one likewise, and the check's frozen params
dataclass (built here, validated by itself) is what the check receives.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from probed.config.schema import SECRET, Duration, FieldError
from probed.probes.aws.cloudwatch import Comparison
from probed.probes.aws.registry import CHECKS

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
DEFAULT_SESSION_NAME = "probed"


@dataclass(frozen=True)
class AwsSettings:
    check: str
    region: str | None = None
    """Required except for global APIs (CloudFront), which use us-east-1."""
    profile: str | None = None
    """A profile from ~/.aws/config; default: the standard chain (env, IRSA, ECS task role, instance)."""
    role_arn: str | None = None
    """Assume this role (cross-account probing) on top of the base credentials."""
    external_id: Annotated[str | None, SECRET] = None
    session_name: str | None = None
    endpoint_url: str | None = None
    """Send every call of this probe here, AssumeRole included (emulators, custom endpoints)."""

    # ---- check parameters: each check accepts exactly the fields of its params dataclass
    cluster: str | None = None
    service: str | None = None
    min_running: int | None = None
    target_group_arn: str | None = None
    min_healthy: int | None = None
    all_healthy: bool | None = None
    db_instance_identifier: str | None = None
    db_cluster_identifier: str | None = None
    bucket: str | None = None
    round_trip: bool | None = None
    key: str | None = None
    expect_account: str | None = None
    distribution_id: str | None = None
    nat_gateway_id: str | None = None
    subnet_id: str | None = None
    min_free: int | None = None
    names: tuple[str, ...] | None = None
    name_prefix: str | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: Mapping[str, str] | None = None
    statistic: str | None = None
    period: Duration | None = None
    threshold: float | None = None
    comparison: Comparison | None = None
    treat_missing_data: Literal["breaching", "notBreaching"] | None = None
    certificate_arn: str | None = None
    min_days_remaining: float | None = None
    topic_arn: str | None = None
    min_subscriptions: int | None = None
    secret_id: str | None = None
    repository: str | None = None
    tag: str | None = None
    cache_cluster_id: str | None = None

    params: Any = field(default=None, init=False, repr=False, compare=False)
    """The check's own frozen parameters, built from the fields above."""

    def __post_init__(self) -> None:
        check = CHECKS.get(self.check)
        if check is None:
            close = difflib.get_close_matches(self.check, CHECKS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {', '.join(CHECKS)})"
            raise FieldError("check", f"unknown check {self.check!r}{hint}")
        self._validate_common(check.region is not None)
        accepted = {f.name: f for f in dataclasses.fields(check.params)}
        given = {name: getattr(self, name) for name in PARAMETERS if getattr(self, name) is not None}
        for name in given:
            if name not in accepted:
                takes = ", ".join(accepted) or "no parameters"
                raise FieldError(name, f"{name} is not a parameter of check {self.check} (it takes: {takes})")
        for name, f in accepted.items():
            if name not in given and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise FieldError(name, f"check {self.check} needs '{name}'")
        object.__setattr__(self, "params", check.params(**given))

    def _validate_common(self, global_api: bool) -> None:
        if self.region is None and not global_api:
            raise FieldError("region", f"check {self.check} needs a region, e.g. `region: us-east-1`")
        if self.region is not None and not _REGION.fullmatch(self.region):
            raise FieldError("region", f"invalid region {self.region!r} (e.g. us-east-1, eu-central-1)")
        if self.role_arn is not None and not _ROLE_ARN.fullmatch(self.role_arn):
            raise FieldError("role_arn", f"expected arn:aws:iam::ACCOUNT:role/NAME, got {self.role_arn!r}")
        for name in ("external_id", "session_name"):
            if getattr(self, name) is not None and self.role_arn is None:
                raise FieldError(name, f"{name} only applies with role_arn")
        if self.session_name is not None and not _SESSION_NAME.fullmatch(self.session_name):
            raise FieldError("session_name", "2-64 characters of letters, digits and +=,.@_-")
        if self.endpoint_url is not None:
            url = urllib.parse.urlsplit(self.endpoint_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise FieldError("endpoint_url", f"expected an http(s) URL, got {self.endpoint_url!r}")


COMMON = ("check", "region", "profile", "role_arn", "external_id", "session_name", "endpoint_url")
PARAMETERS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(AwsSettings) if f.init and f.name not in COMMON)
"""Every check parameter the section knows; a check accepts the subset its params dataclass names."""
