"""`type: redis`: connect (AUTH, SELECT), PING, then INFO for memory, clients and role.

Driver: redis.asyncio (redis-py), the official client. The probe drives one
`redis.asyncio.Connection` directly instead of a `Redis` client with a pool: one fresh
connection per attempt, no retries (redis-py retries by default, which would hide a flapping
server), and no CLIENT SETINFO round trips. Absolute imports make `import redis` the library
even though this module is `probed.probes.redis`.

Phases: `connect` (TCP, TLS), `auth` (AUTH, SELECT), `query` (PING), `checks` (INFO). Cluster mode is not
followed: the probe checks the one node it is pointed at (which is what PING and INFO answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from probed.config.schema import FieldError
from probed.probes import MetricAlias, ProbeKind
from probed.probes.common.deadline import Deadline
from probed.probes.common.transports import RemembersTransports
from probed.probes.sql.attempt import GARBLED, Attempt, DbProbe, driver_choked, raised_in, timed_out, transport_failure
from probed.probes.sql.checks import SQL_ALIASES
from probed.probes.sql.credentials import PasswordOptions, check_password_sources
from probed.probes.sql.url import DbUrl, parse_db_url
from probed.result import ProbeResult, Reason

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import ProbeContext

SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379
SERVER_INFO = "probed_redis_server_info"

ALIASES: Mapping[str, MetricAlias] = {
    "memory_used_ratio": MetricAlias(
        "probed_redis_memory_used_ratio", "Redis used_memory over maxmemory (from the last attempt)."),
    "connected_clients": MetricAlias(
        "probed_redis_connected_clients", "Clients connected to Redis (from the last attempt)."),
    "connections_used_ratio": SQL_ALIASES["connections_used_ratio"],
}

RedisRole = Literal["master", "primary", "replica"]


@dataclass(frozen=True)
class RedisProbeConfig(PasswordOptions):
    sslmode: Literal["require", "verify-ca", "verify-full"] | None = None
    """Only with rediss:// (default verify-full); require encrypts without verifying, unless
    sslrootcert is given (then it verifies the chain, as verify-ca)."""
    sslrootcert: str | None = None
    info: bool = True
    """Read INFO after PING (needs the +info ACL permission); the checks below depend on it."""
    max_memory_ratio: float | None = None
    max_connections_ratio: float | None = None
    expect_role: RedisRole | None = None
    """master (or primary) or replica, as INFO's role reports it."""

    def __post_init__(self) -> None:
        PasswordOptions.__post_init__(self)
        for name in ("max_memory_ratio", "max_connections_ratio"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise FieldError(name, "must be in (0, 1]")
        if not self.info:
            for name in ("max_memory_ratio", "max_connections_ratio", "expect_role"):
                if getattr(self, name) is not None:
                    raise FieldError(name, "needs `info: true` (the value comes from INFO)")


class _Connection(RemembersTransports, redis.asyncio.Connection):
    pass


class _SSLConnection(RemembersTransports, redis.asyncio.SSLConnection):
    pass


class RedisProbe(DbProbe):
    schemes = SCHEMES
    default_port = DEFAULT_PORT
    url_params = ()
    default_sslmode = "verify-full"

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        super().__init__(spec, ctx)
        self.cfg: RedisProbeConfig = spec.settings
        self.db = _db_index(self.url)
        self.uses_tls = self.url.scheme == "rediss"

    def _connection(self, password: str | None, deadline: Deadline,
                    transport_up: Callable[[], None]) -> _Connection | _SSLConnection:
        async def session_setup(conn: redis.asyncio.Connection) -> None:
            transport_up()  # TCP, and TLS (which Redis speaks from the first byte), are done
            await conn.on_connect()

        common: dict[str, Any] = dict(
            host=self.url.host, port=self.url.port, db=self.db, username=self.url.user, password=password,
            socket_timeout=deadline.remaining(), socket_connect_timeout=deadline.remaining(),
            retry=Retry(NoBackoff(), 0), driver_info=None, protocol=2, redis_connect_func=session_setup)
        if not self.uses_tls:
            return _Connection(**common)
        return _SSLConnection(
            ssl_cert_reqs="none" if self.sslmode == "require" else "required",
            ssl_check_hostname=self.sslmode == "verify-full", ssl_ca_certs=self.sslrootcert, **common)

    async def probe(self) -> ProbeResult:
        attempt, deadline, password, failed = self.begin()
        if failed is not None:
            return failed

        conn = self._connection(password, deadline, attempt.mark_auth)
        stage = "connect"
        try:
            with attempt.connecting():  # connect: TCP and TLS; auth: AUTH and SELECT
                async with asyncio.timeout(deadline.remaining()):
                    await conn.connect()  # type: ignore[no-untyped-call]
            attempt.facts["tls"] = self.uses_tls
            stage = "query"
            with attempt.phase("query"):
                async with asyncio.timeout(deadline.remaining()):
                    await conn.send_command("PING")
                    pong = await conn.read_response()
            if pong not in (b"PONG", "PONG"):
                attempt.problems.append((Reason.UNEXPECTED_RESULT, f"PING answered {pong!r}, expected PONG"))
            if self.cfg.info:
                stage = "checks"
                with attempt.phase("checks"):
                    async with asyncio.timeout(deadline.remaining()):
                        await conn.send_command("INFO")
                        raw = await conn.read_response()
                self._check_info(attempt, parse_info(raw))
            return attempt.finish()
        except Exception as exc:
            reason, detail = _classify(exc, attempt.stage(stage), deadline)
            return attempt.fail(reason, detail)
        finally:
            # Abort first, before any await, so a cancelled attempt closes its socket too; the
            # disconnect after it only resets redis-py's own state.
            conn.abort_transports()
            await conn.disconnect(nowait=True)

    def _check_info(self, attempt: Attempt, info: Mapping[str, str]) -> None:
        version, mode = info.get("redis_version", ""), info.get("redis_mode", "")
        if version:
            attempt.server(SERVER_INFO, {"version": version, "mode": mode or "standalone"},
                           server_version=version, mode=mode or "standalone")
        clients, maxclients = _int(info, "connected_clients"), _int(info, "maxclients")
        used, maxmemory = _int(info, "used_memory"), _int(info, "maxmemory")
        if clients is not None:
            attempt.values["connected_clients"] = float(clients)
            attempt.facts["connected_clients"] = clients
        if clients is not None and maxclients:  # maxclients is in INFO from Redis 7
            ratio = clients / maxclients
            attempt.values.update(connections_max=float(maxclients), connections_used_ratio=ratio)
            attempt.facts["maxclients"] = maxclients
            limit = self.cfg.max_connections_ratio
            if limit is not None and ratio > limit:
                attempt.problems.append((Reason.TOO_MANY_CONNECTIONS,
                                         f"{clients} of {maxclients} clients connected ({ratio:.0%} > {limit:.0%})"))
        if used is not None:
            attempt.values["memory_used_bytes"] = float(used)
            attempt.facts["used_memory"] = used
        if used is not None and maxmemory:  # maxmemory 0 means no limit: no ratio to speak of
            ratio = used / maxmemory
            attempt.values.update(memory_max_bytes=float(maxmemory), memory_used_ratio=ratio)
            attempt.facts["maxmemory"] = maxmemory
            limit = self.cfg.max_memory_ratio
            if limit is not None and ratio > limit:
                attempt.problems.append((Reason.MEMORY_HIGH, f"used_memory {info.get('used_memory_human', used)} "
                                         f"is {ratio:.0%} of maxmemory ({limit:.0%} allowed)"))
        role = info.get("role")
        if role:
            is_replica = role == "slave"
            attempt.values["is_replica"] = 1.0 if is_replica else 0.0
            attempt.facts["role"] = "replica" if is_replica else "master"
            if is_replica:
                attempt.facts["master_link_status"] = info.get("master_link_status", "")
            expected = self.cfg.expect_role
            if expected is not None and is_replica != (expected == "replica"):
                attempt.problems.append((Reason.WRONG_ROLE, f"server is a {attempt.facts['role']}, "
                                         f"expected a {expected}"))


def parse_info(raw: object) -> dict[str, str]:
    """INFO's `key:value` lines (sections and comments skipped) as strings."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _int(info: Mapping[str, str], key: str) -> int | None:
    try:
        return int(info[key])
    except (KeyError, ValueError):
        return None


_DRIVER = ("redis",)


def _classify(exc: Exception, stage: str, deadline: Deadline) -> tuple[Reason, str]:
    if isinstance(exc, (TimeoutError, redis.exceptions.TimeoutError)):
        return timed_out(stage, deadline)
    if isinstance(exc, (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError)):
        return Reason.AUTH_FAILED, f"{stage}: {exc}"
    if isinstance(exc, redis.exceptions.BusyLoadingError):
        return Reason.CONNECTION_REFUSED, f"{stage}: server is loading its dataset ({exc})"
    if isinstance(exc, redis.exceptions.ConnectionError):
        if "max number of clients" in str(exc):
            return Reason.TOO_MANY_CONNECTIONS, f"{stage}: {exc}"
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (OSError, EOFError)):  # refused, reset, TLS: the transport's own reason
            return transport_failure(cause, stage)
        return Reason.CONNECTION_RESET, f"{stage}: {exc}"
    if isinstance(exc, redis.exceptions.ResponseError):
        if "DB index is out of range" in str(exc):
            return Reason.DATABASE_NOT_FOUND, f"{stage}: {exc}"
        return Reason.QUERY_ERROR, f"{stage}: {exc}"
    if (isinstance(exc, redis.exceptions.InvalidResponse) or driver_choked(exc, stage, _DRIVER)
            or (isinstance(exc, GARBLED) and raised_in(exc, _DRIVER))):
        # Bytes that are not RESP (a length of -5, an HTTP status line): not a Redis server. The
        # parser reads the server's bytes in every stage; in ours, a ValueError is a bug of ours.
        return Reason.PROTOCOL_ERROR, f"{stage}: not a Redis server: {exc}"
    return transport_failure(exc, stage)


def _db_index(url: DbUrl) -> int:
    if url.database is None:
        return 0
    if not url.database.isdigit():
        raise ValueError(f"the database in a redis URL is a number (redis://host:6379/0), got {url.database!r}")
    return int(url.database)


def _validate_target(target: str, settings: RedisProbeConfig | None) -> None:
    url = parse_db_url(target, SCHEMES, DEFAULT_PORT, params=())
    _db_index(url)
    if settings is not None:
        check_password_sources(url, settings)
        if url.scheme == "redis" and (settings.sslmode or settings.sslrootcert):
            raise ValueError("sslmode and sslrootcert need a rediss:// target (TLS)")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def describe(result: ProbeResult) -> list[str]:
    f = result.facts
    lines = []
    if "server_version" in f:
        role = f" ({f['role']})" if "role" in f else ""
        lines.append(f"server: Redis {f['server_version']} {f.get('mode', '')}{role}")
    used, limit = f.get("used_memory"), f.get("maxmemory")
    if isinstance(used, int):
        if isinstance(limit, int) and limit > 0:
            lines.append(f"memory: {_mib(used)} of {_mib(limit)} maxmemory ({used / limit:.0%})")
        else:
            lines.append(f"memory: {_mib(used)} (no maxmemory)")
    if "connected_clients" in f:
        limit = f" of {f['maxclients']}" if "maxclients" in f else ""
        lines.append(f"clients: {f['connected_clients']}{limit}")
    return lines


KIND = ProbeKind(
    name="redis",
    config_cls=RedisProbeConfig,
    factory=RedisProbe,
    validate_target=_validate_target,
    aliases=ALIASES,
    describe=describe,
    phases=("connect", "auth", "query", "checks"),
    values=("connections_max", "memory_used_bytes", "memory_max_bytes", "is_replica"),
    infos={SERVER_INFO: "The Redis server's version and mode (standalone, cluster, sentinel) (value 1)."},
)
