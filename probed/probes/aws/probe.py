"""AwsProbe: one attempt = one check against a client borrowed from the shared pool."""

from __future__ import annotations

import dataclasses
from typing import Any

from probed.config.model import ProbeSpec
from probed.probes import ProbeContext
from probed.probes.aws.check import Check
from probed.probes.aws.clients import ClientKey, ClientPool, Identity
from probed.probes.aws.errors import AWS_FAILURES, AssumeRoleFailed, failure
from probed.probes.aws.registry import CHECKS
from probed.probes.aws.settings import DEFAULT_SESSION_NAME, AwsSection
from probed.redact import redact
from probed.result import ProbeResult

KIND_NAME = "aws"
_CAUGHT: tuple[type[Exception], ...] = (*AWS_FAILURES, AssumeRoleFailed)


def client_key(settings: AwsSection, check: Check[Any], timeout_s: float) -> ClientKey:
    region = check.region or settings.region
    assert region is not None, "AwsSection requires a region for regional checks"
    role = settings.role_arn
    identity = Identity(
        profile=settings.profile,
        role_arn=role,
        external_id=settings.external_id if role else None,
        session_name=(settings.session_name or DEFAULT_SESSION_NAME) if role else DEFAULT_SESSION_NAME,
        sts_region=(settings.region or region) if role else None,
        sts_endpoint_url=settings.endpoint_url if role else None,
    )
    return ClientKey(identity, check.service, region, settings.endpoint_url, timeout_s)


class AwsProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        settings: AwsSection = spec.settings
        self.name = spec.name
        self.check = CHECKS[settings.check]
        self.params = settings.params
        self._secrets = ctx.secrets
        shared = ctx.shared.get(KIND_NAME)
        # The daemon always provides the shared pool; a probe built on its own owns a private one.
        self._own_pool: ClientPool | None = None
        if isinstance(shared, ClientPool):
            pool = shared
        else:
            pool = self._own_pool = ClientPool()
        self.lease = pool.lease(client_key(settings, self.check, spec.timeout))

    async def probe(self) -> ProbeResult:
        try:
            client = await self.lease.client()
            result = await self.check.run(client, self.params, self.name)
        except _CAUGHT as exc:  # CancelledError is not among them: the timeout stays the scheduler's
            return failure(exc, self._secrets)
        if self._secrets and result.detail:
            result = dataclasses.replace(result, detail=redact(result.detail, self._secrets))
        return result

    async def aclose(self) -> None:
        await self.lease.release()
        if self._own_pool is not None:
            await self._own_pool.aclose()
