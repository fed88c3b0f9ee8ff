"""One aiobotocore client per (identity, service, region, endpoint), shared by every probe.

Why a pool, and why this shape (figures in docs/performance.md, from bench/aws_client_stall.py):

- Creating a client first parses the service's JSON model (EC2's is 4 MB), and that blocks the
  event loop, delaying every probe in flight. So clients are created when a probe is built (at
  start-up or reload), not on its first attempt; the models are parsed in a worker thread, in a
  way that lets the loop run (models.py); clients are created one at a time, so two parses never
  chain their stalls; and all sessions share one data loader, whose cache makes every later
  client of a service cheap.
- A client is safe for hundreds of concurrent calls, so probes share it. Its connection pool has
  no cap of its own: a probe has at most one attempt in flight and an attempt's calls are
  sequential, so a client never holds more connections than the probes sharing it, and the
  scheduler's `max_concurrency` bounds them all. Any cap below that would queue calls inside
  aiobotocore, and the wait would be measured as API latency (botocore's default pool of 10 did
  that, see docs/performance.md).
- One attempt per call (retries off): the scheduler owns time, and a retried call would hide the
  failure a probe exists to report. connect/read timeouts come from the probe timeout; the
  scheduler's cancellation is the hard deadline.
- Credentials come from the standard chain (env, profile, IRSA web identity, ECS task role,
  instance profile). With `role_arn`, the pool assumes the role through STS for 1 hour when it
  creates the client (so a role that cannot be assumed shows at start-up, and the first attempt
  does not pay for the STS call), and botocore refreshes it 15 minutes before expiry: one STS call
  per hour, not one per request.

Clients are reference-counted by the leases probes hold: the last probe of a key to close (on
reload or shutdown) closes its client, and `aclose()` closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioCredentialResolver,
    AioDeferredRefreshableCredentials,
)
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider
from botocore.exceptions import ClientError, NoCredentialsError

from probed import redact
from probed.probes.aws.errors import AssumeRoleFailed, error_code
from probed.probes.aws.models import create_loader, load_models

ROLE_SESSION_SECONDS = 3600
"""AssumeRole duration. botocore refreshes 15 min before expiry, so 900 s would refresh on every call."""
POOL_CONNECTIONS_UNCAPPED = 0
"""aiohttp's `limit=0`: no per-client cap (see the module docstring: the scheduler bounds calls in flight)."""
STS_TIMEOUT_S = 10.0
USER_AGENT = "probed"

# At DEBUG, botocore logs request headers (the session token), canonical requests and raw response
# bodies (GetSecretValue's secret). `probed run --log-level debug` must not turn that on, so these
# loggers never go below INFO unless someone lowers them explicitly after this import.
for _name in ("botocore", "aiobotocore"):
    _logger = logging.getLogger(_name)
    _logger.setLevel(max(_logger.level, logging.INFO))


@dataclass(frozen=True)
class Identity:
    """Whose credentials a client signs with: a profile (or the default chain), maybe a role on top."""

    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = "probed"
    sts_region: str | None = None
    """Where AssumeRole is called (the probe's region and endpoint); None without a role."""
    sts_endpoint_url: str | None = None


@dataclass(frozen=True)
class ClientKey:
    identity: Identity
    service: str
    region: str
    endpoint_url: str | None
    timeout_s: float


@dataclass(eq=False)
class _Entry:
    users: int = 0
    client: Any = None
    task: asyncio.Task[Any] | None = None
    stack: contextlib.AsyncExitStack | None = None


class ClientPool:
    """Created once per daemon (ProbeKind.shared) and closed by it on shutdown."""

    def __init__(self, data_loader: Any = None) -> None:
        self._loader = data_loader if data_loader is not None else create_loader()
        self._sessions: dict[Identity, AioSession] = {}
        self._entries: dict[ClientKey, _Entry] = {}
        self._parsing = asyncio.Lock()
        self._closed = False

    @property
    def clients(self) -> int:
        """How many clients are open (for tests and `probed once` diagnostics)."""
        return sum(1 for e in self._entries.values() if e.client is not None)

    def lease(self, key: ClientKey) -> ClientLease:
        """Register a user of `key`'s client and start creating it in the background."""
        if self._closed:
            raise RuntimeError("the AWS client pool is closed")
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        with contextlib.suppress(RuntimeError):  # no running loop: created on first use instead
            asyncio.get_running_loop()
            self._start(key, entry)
        return ClientLease(self, key)

    async def client(self, key: ClientKey) -> Any:
        entry = self._entries[key]
        if entry.client is not None:  # the hot path: one dict lookup
            return entry.client
        # shield: a probe cancelled by its timeout must not cancel a creation other probes await.
        return await asyncio.shield(self._start(key, entry))

    async def ready(self) -> None:
        """Wait until every client being created exists (or failed). For start-up, before probes run."""
        pending = [e.task for e in self._entries.values() if e.task is not None and not e.task.done()]
        await asyncio.gather(*pending, return_exceptions=True)

    async def release(self, key: ClientKey) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del self._entries[key]
            await _close(entry)

    async def aclose(self) -> None:
        self._closed = True
        entries, self._entries = list(self._entries.values()), {}
        await asyncio.gather(*(_close(e) for e in entries), return_exceptions=True)

    # ---- creation
    def _start(self, key: ClientKey, entry: _Entry) -> asyncio.Task[Any]:
        if entry.task is None or (entry.task.done() and entry.client is None):
            # A failed creation (no credentials yet, unknown profile) is retried by the next attempt.
            entry.task = asyncio.get_running_loop().create_task(self._create(key, entry),
                                                                name=f"aws-client-{key.service}")
            entry.task.add_done_callback(_consume_exception)
        return entry.task

    async def _create(self, key: ClientKey, entry: _Entry) -> Any:
        session = self._session(key.identity)
        services = (key.service, "sts") if key.identity.role_arn else (key.service,)
        async with self._parsing:  # one at a time: concurrent model parses would add up their stalls
            await asyncio.to_thread(load_models, self._loader, services)
        # A client made without credentials would keep failing after they appear (e.g. the ECS
        # credentials endpoint was briefly unreachable at start-up): make none until they exist.
        credentials = await session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        if key.identity.role_arn is not None:
            # AssumeRole now, at build time, rather than inside the first attempt (raises AssumeRoleFailed).
            await credentials.get_frozen_credentials()
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(session.create_client(
            key.service, region_name=key.region, endpoint_url=key.endpoint_url,
            config=_client_config(key.timeout_s)))
        entry.client, entry.stack = client, stack
        return client

    def _session(self, identity: Identity) -> AioSession:
        session = self._sessions.get(identity)
        if session is not None:
            return session
        if identity.role_arn is None:
            session = AioSession(profile=identity.profile)
        else:
            base = self._session(Identity(profile=identity.profile))
            credentials = AioDeferredRefreshableCredentials(
                refresh_using=_assume_role(base, identity), method="assume-role")
            session = AioSession()
            session.register_component("credential_provider", AioCredentialResolver([_Fixed(credentials)]))
        session.register_component("data_loader", self._loader)  # one model cache for all sessions
        self._sessions[identity] = session
        return session


class ClientLease:
    """A probe's handle on a shared client; `release()` when the probe closes."""

    def __init__(self, pool: ClientPool, key: ClientKey) -> None:
        self.pool = pool
        self.key = key
        self._released = False

    async def client(self) -> Any:
        return await self.pool.client(self.key)

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self.pool.release(self.key)


class _Fixed(CredentialProvider):  # type: ignore[misc]  # botocore ships no types
    """A credential chain of one: the role's refreshable credentials."""

    METHOD = "assume-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> Any:
        return self._credentials


def _assume_role(base: AioSession, identity: Identity) -> Callable[[], Awaitable[dict[str, Any]]]:
    """botocore's refresh callback: AssumeRole with the base session's (own refreshable) credentials."""
    assert identity.role_arn is not None
    role_arn = identity.role_arn
    extra: dict[str, Any] = {"RoleSessionName": identity.session_name, "DurationSeconds": ROLE_SESSION_SECONDS}
    if identity.external_id:
        extra["ExternalId"] = identity.external_id
    sts = functools.partial(base.create_client, region_name=identity.sts_region,
                            endpoint_url=identity.sts_endpoint_url, config=_client_config(STS_TIMEOUT_S))

    async def refresh() -> dict[str, Any]:
        source = await base.get_credentials()
        if source is None:
            raise NoCredentialsError()
        fetcher = AioAssumeRoleCredentialFetcher(client_creator=sts, source_credentials=source,
                                                 role_arn=role_arn, extra_args=extra)
        try:
            credentials: dict[str, Any] = await fetcher.fetch_credentials()
        except ClientError as exc:
            message = (exc.response.get("Error") or {}).get("Message") or ""
            raise AssumeRoleFailed(role_arn, error_code(exc), message) from None
        # The role's temporary secret and session token are secrets of this process from now on:
        # the log handler and every output mask them like the configured ones.
        redact.remember([str(credentials.get(k) or "") for k in ("secret_key", "token")])
        return credentials

    return refresh


def _client_config(timeout_s: float) -> AioConfig:
    return AioConfig(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=POOL_CONNECTIONS_UNCAPPED,
        user_agent_extra=USER_AGENT,
    )


async def _close(entry: _Entry) -> None:
    if entry.task is not None and not entry.task.done():
        entry.task.cancel()
        await asyncio.gather(entry.task, return_exceptions=True)
    if entry.stack is not None:
        stack, entry.stack, entry.client = entry.stack, None, None
        await stack.aclose()


def _consume_exception(task: asyncio.Task[Any]) -> None:
    # A failed background creation is reported by the next attempt that needs the client.
    if not task.cancelled():
        task.exception()
