"""`type: mysql` (MySQL and MariaDB): connect, authenticate, run a query, read the server's state.

Driver: aiomysql, the asyncio port of PyMySQL (pure Python, so no client library to install;
maintained under aio-libs). asyncmy is faster but compiled, and speed is irrelevant at one small
query per attempt. aiomysql lacks three things a probe needs, added here in small subclasses:
it silently falls back to plain text when a server without TLS meets an sslmode that requires it
(checked before the password is sent), it turns server warnings into Python warnings (one more
round trip, and log noise), and it has no query timeout (the attempt bounds it, and the server
gets its own: `max_statement_time` on MariaDB, `max_execution_time` on MySQL).

Phases: `connect` (TCP and the server's greeting), `auth` (the in-band TLS upgrade,
authentication, the session timeout), `query`, `checks` (Threads_connected, max_connections,
read_only, the process list).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiomysql

from probed.probes.common.deadline import Deadline
from probed.probes.common.transports import RemembersTransports
from probed.probes.sql import sql_kind
from probed.probes.sql.attempt import DbProbe, driver_choked, timed_out, transport_failure
from probed.probes.sql.checks import ServerState, check_rows, check_server_state, record_sql_server
from probed.probes.sql.config import SqlProbeConfig
from probed.probes.sql.tls import client_tls_context
from probed.result import ProbeResult, Reason

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import ProbeContext

SCHEMES = ("mysql", "mariadb")
DEFAULT_PORT = 3306
CLEANUP_TIMEOUT_S = 5.0
"""How long the background KILL QUERY for an abandoned query may take."""

_REASONS_BY_CODE = {
    1045: Reason.AUTH_FAILED,  # ER_ACCESS_DENIED_ERROR
    1044: Reason.AUTH_FAILED,  # ER_DBACCESS_DENIED_ERROR: no rights on that database
    1130: Reason.AUTH_FAILED,  # ER_HOST_NOT_PRIVILEGED: user not allowed from this host
    1698: Reason.AUTH_FAILED,  # ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    2059: Reason.AUTH_FAILED,  # CR_AUTH_PLUGIN_CANNOT_LOAD
    1049: Reason.DATABASE_NOT_FOUND,  # ER_BAD_DB_ERROR
    1040: Reason.TOO_MANY_CONNECTIONS,  # ER_CON_COUNT_ERROR
    1203: Reason.TOO_MANY_CONNECTIONS,  # ER_TOO_MANY_USER_CONNECTIONS
    1226: Reason.TOO_MANY_CONNECTIONS,  # ER_USER_LIMIT_REACHED (max_user_connections)
    1129: Reason.CONNECTION_REFUSED,  # ER_HOST_IS_BLOCKED: too many aborted connects from this host
    1969: Reason.TIMEOUT,  # MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
    3024: Reason.TIMEOUT,  # MySQL ER_QUERY_TIMEOUT (max_execution_time)
    2006: Reason.CONNECTION_RESET,  # CR_SERVER_GONE_ERROR
    2013: Reason.CONNECTION_RESET,  # CR_SERVER_LOST
}
_CLIENT_SSL = 2048  # pymysql.constants.CLIENT.SSL: the server's capability flag for TLS
_CR_CONN_HOST_ERROR = 2003  # aiomysql wraps every OSError (refused, TLS, DNS) in this code
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


@dataclass(frozen=True)
class MysqlProbeConfig(SqlProbeConfig):
    """The shared SQL options; nothing MySQL-only yet."""


class _TlsUnavailable(Exception):
    """The server does not offer TLS but sslmode requires it."""


class _ProbeConnection(RemembersTransports, aiomysql.Connection):  # type: ignore[misc]
    require_tls = False
    greeted: Callable[[], None] | None = None
    """Called once the server's greeting is in: the `connect` phase ends, `auth` begins."""

    def abort(self) -> None:
        """Drop the connection now: every transport aborted (harmless after a clean close)."""
        self.abort_transports()
        self.close()

    async def _request_authentication(self) -> None:
        if self.greeted is not None:
            self.greeted()
        # aiomysql would carry on in plain text; refuse before any credential is sent.
        if self.require_tls and not self.server_capabilities & _CLIENT_SSL:
            raise _TlsUnavailable
        await super()._request_authentication()


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    async def _show_warnings(self, conn: Any) -> None:
        """Server warnings (e.g. division by zero yields NULL) are the query's business, not ours."""


class MysqlProbe(DbProbe):
    schemes = SCHEMES
    default_port = DEFAULT_PORT

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        super().__init__(spec, ctx)
        self.cfg: MysqlProbeConfig = spec.settings
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._ssl is None and self.uses_tls:
            self._ssl = client_tls_context(self.sslmode, self.sslrootcert)
        return self._ssl

    def _connection(self, password: str | None, deadline: Deadline) -> _ProbeConnection:
        conn = _ProbeConnection(
            host=self.url.host, port=self.url.port, user=self.url.user, password=password or "",
            db=self.url.database, ssl=self._ssl_context(), connect_timeout=deadline.remaining(),
            autocommit=True, cursorclass=_QuietCursor, program_name="probed")
        conn.require_tls = self.sslmode not in ("disable", "prefer")
        return conn

    async def probe(self) -> ProbeResult:
        attempt, deadline, password, failed = self.begin()
        if failed is not None:
            return failed

        stage = "connect"
        conn: _ProbeConnection | None = None
        in_sync = True  # False while a query may still be running on the server
        try:
            # connect: TCP and the server's greeting; auth: TLS (MySQL upgrades in-band),
            # authentication and the session's own timeout, until the session is ready.
            with attempt.connecting():
                conn = self._connection(password, deadline)
                conn.greeted = attempt.mark_auth
                async with asyncio.timeout(deadline.remaining()):
                    await _open(conn)
                    flavor, version = _flavor(conn.get_server_info())
                    if self.cfg.server_side_timeout:
                        await _execute(conn, _session_timeout_sql(flavor, deadline.remaining()))
            record_sql_server(attempt, flavor, version, bool(conn._secure))
            stage, in_sync = "query", False
            with attempt.phase("query"):
                async with asyncio.timeout(deadline.remaining()):
                    rows = await _execute(conn, self.cfg.query)
            check_rows(attempt, self.cfg, rows)
            if self.cfg.wants_server_state:
                stage = "checks"
                with attempt.phase("checks"):
                    async with asyncio.timeout(deadline.remaining()):
                        state = await _server_state(conn, self.cfg.long_running_after)
                check_server_state(attempt, self.cfg, state)
            in_sync = True
            return attempt.finish()
        except Exception as exc:
            # A server error (client-side codes are 2000-2999) ends the statement: back in sync.
            if isinstance(exc, aiomysql.MySQLError) and not 2000 <= _code(exc) < 3000:
                in_sync = True
            reason, detail = self._classify(exc, attempt.stage(stage), deadline)
            if isinstance(exc, aiomysql.MySQLError) and _code(exc):
                attempt.facts["error_code"] = _code(exc)
            return attempt.fail(reason, detail)
        finally:
            if conn is not None:
                if not in_sync:
                    self._kill_later(conn.thread_id(), password, deadline)
                await _close(conn, graceful=in_sync, deadline=deadline)

    def _kill_later(self, thread_id: int, password: str | None, deadline: Deadline) -> None:
        """KILL QUERY from a second connection, for a query the attempt abandoned.

        The session timeout usually ends it first; this covers MySQL's timeout applying to SELECT
        only, `server_side_timeout: false`, and attempts cancelled before their own deadline.
        """
        killer = self._connection(password, deadline)
        killer.connect_timeout = CLEANUP_TIMEOUT_S
        self.in_background(_kill_query(killer, thread_id))

    def _classify(self, exc: Exception, stage: str, deadline: Deadline) -> tuple[Reason, str]:
        if isinstance(exc, TimeoutError):
            return timed_out(stage, deadline)
        if isinstance(exc, _TlsUnavailable):
            return Reason.TLS_HANDSHAKE, f"{stage}: server does not offer TLS (sslmode={self.sslmode})"
        if isinstance(exc, aiomysql.MySQLError):
            code, message = _code(exc), _message(exc)
            if code == _CR_CONN_HOST_ERROR and exc.__cause__ is not None:
                return transport_failure(exc.__cause__, stage)
            # A client-side code (2000-2999), or none at all (PyMySQL's "Packet sequence number
            # wrong"), before the session is ready: the server spoke something else.
            handshake = stage in ("connect", "auth") and (code >= 2000 or code == 0)
            fallback = Reason.PROTOCOL_ERROR if handshake else Reason.QUERY_ERROR
            return _REASONS_BY_CODE.get(code, fallback), f"{stage}: {message} (error {code})"
        if driver_choked(exc, stage, ("aiomysql", "pymysql")):
            # PyMySQL parsing a greeting that is not one (a short packet, bad UTF-8, an index past the end).
            return Reason.PROTOCOL_ERROR, f"{stage}: not a MySQL server: {type(exc).__name__}: {exc}"
        return transport_failure(exc, stage)


async def _open(conn: _ProbeConnection) -> None:
    # aiomysql closes the socket after errors and cancelled reads, but its handler catches only
    # Exception: a cancellation landing anywhere else in the handshake (a write, the TLS upgrade)
    # would leave the socket open. Abort it on every way out.
    try:
        await conn._connect()
    except BaseException:
        conn.abort()
        raise


async def _execute(conn: _ProbeConnection, sql: str, *args: object) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        return list(await cur.fetchall())


def _session_timeout_sql(flavor: str, seconds: float) -> str:
    if flavor == "mariadb":
        return f"SET SESSION max_statement_time = {seconds:.3f}"
    return f"SET SESSION max_execution_time = {max(math.ceil(seconds * 1000), 1)}"


async def _server_state(conn: _ProbeConnection, long_running_after: float) -> ServerState:
    status = await _execute(conn, "SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    # Aurora MySQL readers report innodb_read_only, RDS and self-managed replicas read_only.
    (max_conn, read_only, long_running), = await _execute(
        conn,
        "SELECT @@max_connections, @@read_only OR @@innodb_read_only,"
        " (SELECT COUNT(*) FROM information_schema.PROCESSLIST"
        "  WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND TIME >= %s)",
        math.ceil(long_running_after))  # TIME counts whole seconds
    return ServerState(connections_used=int(status[0][1]), connections_max=int(max_conn),
                       long_running=int(long_running), is_replica=bool(int(read_only)))


async def _close(conn: _ProbeConnection, graceful: bool, deadline: Deadline) -> None:
    """COM_QUIT when the session is in sync (no "Aborted connection" in the server log), else abort.

    Aborting matters with TLS: a plain close waits up to 30 s for the server's close_notify,
    which a server busy with the abandoned query does not send.
    """
    if graceful and not conn.closed:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(deadline.remaining()):
                await conn.ensure_closed()
    conn.abort()


async def _kill_query(killer: _ProbeConnection, thread_id: int) -> None:
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT_S):
            await _open(killer)
            await _execute(killer, f"KILL QUERY {int(thread_id)}")
            await killer.ensure_closed()
    except Exception:
        pass  # best effort: the session timeout is the backstop
    finally:
        killer.abort()


def _flavor(server_info: str) -> tuple[str, str]:
    """("mariadb" | "mysql", "10.11.9"). MariaDB prefixes its version with "5.5.5-" for old clients."""
    info = server_info.removeprefix("5.5.5-")
    match = _VERSION.search(info)
    return ("mariadb" if "mariadb" in info.lower() else "mysql"), (match.group(0) if match else info)


def _code(exc: BaseException) -> int:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def _message(exc: BaseException) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)


KIND = sql_kind("mysql", MysqlProbeConfig, MysqlProbe, SCHEMES, DEFAULT_PORT,
                phases=("connect", "auth", "query", "checks"))
