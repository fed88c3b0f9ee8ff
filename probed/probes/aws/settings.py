"""The `aws:` section: which check, where, as whom, and the check's own parameters.

One flat dataclass, because that is what the YAML looks like (`check: ecs_service`, `cluster:`,
`service:` side by side). `AwsSection` declares what every check shares; `AwsSettings` adds every
check's parameters, taken from the checks' own params dataclasses (so each is declared once, where
the check uses it), each optional. `__post_init__` holds each check to its own set: a parameter
another check owns is rejected by name ("min_healthy is not a parameter of check ecs_service"), a
missing one likewise, and the check's frozen params dataclass (built here, validated by itself) is
what the check receives.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
import urllib.parse
from dataclasses import dataclass, field
from typing import Annotated, Any

from probed.config.schema import SECRET, FieldError
from probed.probes.aws.registry import CHECKS

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
DEFAULT_SESSION_NAME = "probed"


@dataclass(frozen=True)
class AwsSection:
    """The fields every check shares; see AwsSettings for the section with the checks' parameters."""

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


def _check_parameters() -> list[tuple[str, Any, Any]]:
    """(name, type | None, field(default=None)) for every check's parameters, each name once."""
    found: dict[str, Any] = {}
    for check in CHECKS.values():
        hints = typing.get_type_hints(check.params, include_extras=True)
        for name, tp in ((f.name, hints[f.name]) for f in dataclasses.fields(check.params) if f.init):
            if found.setdefault(name, tp) != tp:
                raise TypeError(f"aws check parameter {name!r} is declared with two types: {found[name]} and {tp}")
    return [(name, tp | None, field(default=None)) for name, tp in found.items()]


COMMON: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AwsSection) if f.init)
AwsSettings: type[AwsSection] = dataclasses.make_dataclass(
    "AwsSettings", _check_parameters(), bases=(AwsSection,), frozen=True, namespace={"__module__": __name__})
"""The `aws:` section: the shared fields plus every check's parameters (all optional here)."""
PARAMETERS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(AwsSettings) if f.init and f.name not in COMMON)
"""Every check parameter the section knows; a check accepts the subset its params dataclass names."""
