"""`type: postgres`: connect, authenticate, run a query, optionally read the server's own state.

Driver: asyncpg, the fastest and most widely used native asyncio PostgreSQL driver. It speaks
SCRAM and libpq's sslmode semantics, takes a connect timeout, and on a query timeout sends the
server a cancel request instead of just dropping the socket.

Each attempt opens a fresh connection, as an application's first query after a failover or a
pool refill would; a kept connection would hide exactly the failures (auth, limits, TLS)
operators need to see. Phases: `connect` is TCP, TLS, startup and authentication together (asyncpg
does them in one call with no hook in between, so unlike mysql and redis there is no separate
`auth`; timing TCP on its own would need a second connection), `query` the configured query,
`checks` the one round trip reading pg_stat_activity and the role.

A query the probe gives up on must not keep running on the server: the connection starts with
`statement_timeout` set to the attempt's deadline, and asyncpg's own timeout cancels it sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from probed.probes.common.deadline import Deadline
from probed.probes.sql import sql_kind
from probed.probes.sql.attempt import DbProbe, driver_choked, timed_out, transport_failure
from probed.probes.sql.checks import ServerState, check_rows, check_server_state, record_sql_server
from probed.probes.sql.config import SqlProbeConfig
from probed.probes.sql.pgwire import WIRE_WATCH, WireWatch, install
from probed.probes.sql.tls import client_tls_context
from probed.result import ProbeResult, Reason

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import ProbeContext

SCHEMES = ("postgres", "postgresql")
DEFAULT_PORT = 5432
install()  # before any connection: see pgwire.py for the stall it prevents
CLEANUP_TIMEOUT_S = 5.0
"""How long a connection abandoned mid-query may take to deliver its cancel request and close."""

# One round trip for everything the checks need. Connections are counted against what
# applications can actually use: max_connections minus the slots reserved for superusers (and,
# from PostgreSQL 16, for pg_use_reserved_connections), because that is where they get refused.
STATE_QUERY = """
SELECT
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
  current_setting('max_connections')::int
    - current_setting('superuser_reserved_connections')::int
    - coalesce(current_setting('reserved_connections', true)::int, 0) AS usable,
  (SELECT count(*) FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
       AND query_start < clock_timestamp() - make_interval(secs => $1)) AS long_running,
  pg_is_in_recovery() AS in_recovery
"""


@dataclass(frozen=True)
class PostgresProbeConfig(SqlProbeConfig):
    application_name: str = "probed"
    """Shown in pg_stat_activity, so DBAs can tell the probe's sessions from the application's."""


class PostgresProbe(DbProbe):
    schemes = SCHEMES
    default_port = DEFAULT_PORT

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        super().__init__(spec, ctx)
        self.cfg: PostgresProbeConfig = spec.settings
        self._ssl: ssl.SSLContext | None = None

    def _ssl_arg(self) -> Any:
        if self.sslmode in ("disable", "prefer"):
            # asyncpg's own prefer: try TLS without verifying, fall back to plain text.
            return self.sslmode
        if self._ssl is None:  # built on first use, so a CA file mounted late is picked up
            self._ssl = client_tls_context(self.sslmode, self.sslrootcert)
        return self._ssl

    async def probe(self) -> ProbeResult:
        attempt, deadline, password, failed = self.begin()
        if failed is not None:
            return failed
        settings = {"application_name": self.cfg.application_name}
        if self.cfg.server_side_timeout:
            settings["statement_timeout"] = str(max(int(deadline.total_s * 1000), 1))

        stage: str = "connect"
        conn: asyncpg.Connection | None = None
        graceful = True
        wire = WireWatch()
        try:
            # asyncpg connects, negotiates TLS and authenticates in one call with no hook in
            # between, so `connect` includes authentication here (there is no `auth` phase).
            with attempt.phase("connect"):
                token = WIRE_WATCH.set(wire)
                try:
                    conn = await asyncpg.connect(
                        host=self.url.host, port=self.url.port, user=self.url.user, password=password,
                        database=self.url.database, ssl=self._ssl_arg(), timeout=deadline.remaining(),
                        statement_cache_size=0, server_settings=settings)
                finally:
                    WIRE_WATCH.reset(token)
            record_sql_server(attempt, "postgresql", conn.get_settings().server_version.split(" ")[0], _is_tls(conn))
            stage = "query"
            with attempt.phase("query"):
                rows = await conn.fetch(self.cfg.query, timeout=deadline.remaining())
            check_rows(attempt, self.cfg, rows)
            if self.cfg.wants_server_state:
                stage = "checks"
                with attempt.phase("checks"):
                    row = await conn.fetchrow(STATE_QUERY, self.cfg.long_running_after, timeout=deadline.remaining())
                assert row is not None
                check_server_state(attempt, self.cfg, ServerState(
                    connections_used=row["used"], connections_max=row["usable"],
                    long_running=row["long_running"], is_replica=row["in_recovery"]))
            return attempt.finish()
        except asyncio.CancelledError:
            graceful = False
            raise
        except Exception as exc:
            # After a server error the session is still in sync and can say goodbye properly;
            # after a timeout or a transport error it cannot.
            graceful = isinstance(exc, asyncpg.PostgresError)
            reason, detail = self._classify(exc, stage, deadline)
            if wire.problem is not None:  # the guard cut the connection: that is the cause
                reason, detail = Reason.PROTOCOL_ERROR, f"{stage}: {wire.problem}"
            if isinstance(exc, asyncpg.PostgresError):
                attempt.facts["sqlstate"] = exc.sqlstate
            return attempt.fail(reason, detail)
        finally:
            if conn is None:
                wire.abort()  # the connect failed (a server error, TLS, a timeout): nothing to say goodbye to
            else:
                if graceful:
                    await _close(conn, deadline)
                    wire.abort()
                else:
                    # asyncpg sends the server a cancel request when a query times out or its
                    # task is cancelled; closing the connection right away would abort that
                    # request and leave the query running until statement_timeout.
                    # `close()` waits for the cancel to go out first.
                    self.in_background(_drain_and_close(conn))

    def _classify(self, exc: Exception, stage: str, deadline: Deadline) -> tuple[Reason, str]:
        if isinstance(exc, asyncpg.PostgresError):
            return _sqlstate_reason(exc.sqlstate or "", stage), f"{stage}: {exc} (SQLSTATE {exc.sqlstate})"
        if isinstance(exc, TimeoutError):
            return timed_out(stage, deadline)
        if isinstance(exc, asyncpg.ConnectionDoesNotExistError):
            return Reason.CONNECTION_RESET, f"{stage}: the server closed the connection"
        if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc) and self.sslmode == "prefer":
            # prefer accepts a "no": the server answered the TLS request with neither yes nor no.
            return Reason.PROTOCOL_ERROR, f"{stage}: not a PostgreSQL server: it answered the TLS request with garbage"
        if isinstance(exc, ConnectionError) and "SSL" in str(exc):
            # "rejected SSL upgrade": the server does not do TLS but sslmode requires it.
            return Reason.TLS_HANDSHAKE, f"{stage}: server does not accept TLS (sslmode={self.sslmode})"
        if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
            text = str(exc)
            if "password" in text or "authentication" in text:
                return Reason.AUTH_FAILED, f"{stage}: {text}"
            return Reason.PROTOCOL_ERROR, f"{stage}: {text}"
        if driver_choked(exc, stage, ("asyncpg",)):
            # e.g. ReadyForQuery straight after the startup packet: asyncpg then has no server_version.
            return Reason.PROTOCOL_ERROR, f"{stage}: not a PostgreSQL server: {type(exc).__name__}: {exc}"
        return transport_failure(exc, stage)


def _sqlstate_reason(sqlstate: str, stage: str) -> Reason:
    if sqlstate.startswith("28"):  # invalid_authorization_specification, invalid_password
        return Reason.AUTH_FAILED
    exact = {
        "3D000": Reason.DATABASE_NOT_FOUND,  # invalid_catalog_name
        "53300": Reason.TOO_MANY_CONNECTIONS,  # too_many_connections (also the reserved-slots message)
        "57014": Reason.TIMEOUT,  # query_canceled: our statement_timeout fired
        "57P03": Reason.CONNECTION_REFUSED,  # cannot_connect_now: starting up, shutting down, recovery
        "57P01": Reason.CONNECTION_RESET,  # admin_shutdown: terminated mid-session
    }.get(sqlstate)
    if exact is not None:
        return exact
    if stage == "connect" and sqlstate.startswith("08"):  # connection exceptions (e.g. a pooler's refusal)
        return Reason.PROTOCOL_ERROR
    return Reason.QUERY_ERROR


def _is_tls(conn: asyncpg.Connection) -> bool:
    transport = getattr(conn, "_transport", None)
    return transport is not None and transport.get_extra_info("sslcontext") is not None


async def _close(conn: asyncpg.Connection, deadline: Deadline) -> None:
    """Say goodbye (a Terminate message) while the session is in sync, else drop the socket.

    The goodbye keeps "unexpected EOF on client connection" out of the server's log at one
    attempt per second; it gets at most the rest of the deadline.
    """
    with contextlib.suppress(Exception):
        await conn.close(timeout=deadline.remaining())
    if not conn.is_closed():
        conn.terminate()


async def _drain_and_close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=CLEANUP_TIMEOUT_S)
    except Exception:
        pass  # the socket is dropped below either way
    finally:
        if not conn.is_closed():
            conn.terminate()


KIND = sql_kind("postgres", PostgresProbeConfig, PostgresProbe, SCHEMES, DEFAULT_PORT,
                phases=("connect", "query", "checks"))
