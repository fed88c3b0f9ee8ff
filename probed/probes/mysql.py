"""`type: mysql` (MySQL and MariaDB): connect, authenticate, run a query, read the server's state.

Driver: aiomysql, the asyncio port of PyMySQL (pure Python, so no client library to install;
maintained under aio-libs). asyncmy is faster but compiled, and speed is irrelevant at one small
query per attempt. aiomysql lacks three things a probe needs, added here in small subclasses:
it silently falls back to plain text when a server without TLS meets an sslmode that requires it
(checked before the password is sent), it turns server warnings into Python warnings (one more
round trip, and log noise), and it has no query timeout (the attempt bounds it, and the server
gets its own: `max_statement_time` on MariaDB, `max_execution_time` on MySQL).

Phases, as for postgres: `connect` (TCP, TLS, handshake, authentication, the session timeout),
`query`, `checks` (Threads_connected, max_connections, read_only, the process list).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
from dataclasses import dataclass
from typing import Any

import aiomysql

from probed.config import ProbeSpec
from probed.probes import ProbeContext, ProbeKind
from probed.probes._db import (
    SERVER_INFO,
    SQL_ALIASES,
    Attempt,
    Budget,
    CredentialError,
    ServerState,
    SqlProbeConfig,
    check_password_sources,
    check_rows,
    check_server_state,
    check_tls_sources,
    client_tls_context,
    describe_sql,
    parse_db_url,
    resolve_password,
    rootcert_problem,
    tls_mode,
)
from probed.probes.errors import classify
from probed.result import ProbeResult, Reason

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


class _ProbeConnection(aiomysql.Connection):  # type: ignore[misc]
    require_tls = False
    probe_transport: asyncio.Transport | None = None

    async def _request_authentication(self) -> None:
        # aiomysql would carry on in plain text; refuse before any credential is sent.
        if self.require_tls and not self.server_capabilities & _CLIENT_SSL:
            raise _TlsUnavailable
        await super()._request_authentication()


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    async def _show_warnings(self, conn: Any) -> None:
        """Server warnings (e.g. division by zero yields NULL) are the query's business, not ours."""


class MysqlProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.cfg: MysqlProbeConfig = spec.settings
        self.url = parse_db_url(spec.target, SCHEMES, DEFAULT_PORT)
        self.timeout_s = spec.timeout
        self.secrets = ctx.secrets
        self.sslmode = tls_mode(self.url, self.cfg.sslmode, "prefer")
        self.sslrootcert = self.cfg.sslrootcert or self.url.params.get("sslrootcert")
        self._ssl: ssl.SSLContext | None = None
        self._cleanup: set[asyncio.Task[None]] = set()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._ssl is None and self.sslmode != "disable":
            self._ssl = client_tls_context(self.sslmode, self.sslrootcert)
        return self._ssl

    def _connection(self, password: str | None, budget: Budget) -> _ProbeConnection:
        conn = _ProbeConnection(
            host=self.url.host, port=self.url.port, user=self.url.user, password=password or "",
            db=self.url.database, ssl=self._ssl_context(), connect_timeout=budget.remaining(),
            autocommit=True, cursorclass=_QuietCursor, program_name="probed")
        conn.require_tls = self.sslmode not in ("disable", "prefer")
        return conn

    async def probe(self) -> ProbeResult:
        attempt = Attempt(self.secrets)
        budget = Budget(self.timeout_s)
        try:
            password = resolve_password(self.cfg, self.url)
        except CredentialError as exc:
            return attempt.fail(Reason.AUTH_FAILED, str(exc))
        attempt.add_secret(password)
        if (problem := rootcert_problem(self.sslmode, self.sslrootcert)) is not None:
            return attempt.fail(Reason.TLS_HANDSHAKE, problem)

        stage = "connect"
        conn: _ProbeConnection | None = None
        in_sync = True  # False while a query may still be running on the server
        try:
            with attempt.phase("connect"):
                conn = self._connection(password, budget)
                async with asyncio.timeout(budget.remaining()):
                    await _open(conn)
                    flavor, version = _flavor(conn.get_server_info())
                    if self.cfg.server_side_timeout:
                        await _execute(conn, _session_timeout_sql(flavor, budget.remaining()))
            attempt.info[SERVER_INFO] = {"version": version, "flavor": flavor}
            attempt.facts.update(server_version=version, flavor="MariaDB" if flavor == "mariadb" else "MySQL",
                                 tls=bool(conn._secure))
            stage, in_sync = "query", False
            with attempt.phase("query"):
                async with asyncio.timeout(budget.remaining()):
                    rows = await _execute(conn, self.cfg.query)
            check_rows(attempt, self.cfg, rows)
            if self.cfg.wants_server_state:
                stage = "checks"
                with attempt.phase("checks"):
                    async with asyncio.timeout(budget.remaining()):
                        state = await _server_state(conn, self.cfg.long_running_after)
                check_server_state(attempt, self.cfg, state)
            in_sync = True
            return attempt.finish()
        except Exception as exc:
            # A server error (client-side codes are 2000-2999) ends the statement: back in sync.
            if isinstance(exc, aiomysql.MySQLError) and not 2000 <= _code(exc) < 3000:
                in_sync = True
            reason, detail = self._classify(exc, stage, budget)
            if isinstance(exc, aiomysql.MySQLError) and _code(exc):
                attempt.facts["error_code"] = _code(exc)
            return attempt.fail(reason, detail)
        finally:
            if conn is not None:
                if not in_sync:
                    self._kill_later(conn.thread_id(), password, budget)
                await _close(conn, graceful=in_sync, budget=budget)

    def _kill_later(self, thread_id: int, password: str | None, budget: Budget) -> None:
        """KILL QUERY from a second connection, for a query the attempt abandoned.

        The session timeout usually ends it first; this covers MySQL's timeout applying to SELECT
        only, `server_side_timeout: false`, and attempts cancelled before their own deadline.
        """
        killer = self._connection(password, budget)
        killer.connect_timeout = CLEANUP_TIMEOUT_S
        task = asyncio.get_running_loop().create_task(_kill_query(killer, thread_id))
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def aclose(self) -> None:
        """Wait for pending KILL QUERY connections; attempts keep no other resources."""
        if self._cleanup:
            await asyncio.gather(*self._cleanup, return_exceptions=True)

    def _classify(self, exc: Exception, stage: str, budget: Budget) -> tuple[Reason, str]:
        if isinstance(exc, TimeoutError):
            return Reason.TIMEOUT, f"{stage}: no answer within {budget.total_s:.3g}s"
        if isinstance(exc, _TlsUnavailable):
            return Reason.TLS_HANDSHAKE, f"{stage}: server does not offer TLS (sslmode={self.sslmode})"
        if isinstance(exc, aiomysql.MySQLError):
            code, message = _code(exc), _message(exc)
            if code == _CR_CONN_HOST_ERROR and exc.__cause__ is not None:
                reason, detail = classify(exc.__cause__)
                return reason, f"{stage}: {detail}"
            fallback = Reason.QUERY_ERROR if stage != "connect" or code < 2000 else Reason.PROTOCOL_ERROR
            return _REASONS_BY_CODE.get(code, fallback), f"{stage}: {message} (error {code})"
        reason, detail = classify(exc)
        return reason, f"{stage}: {detail}"


async def _open(conn: _ProbeConnection) -> None:
    # aiomysql closes the socket after errors and cancelled reads, but its handler catches only
    # Exception: a cancellation landing anywhere else in the handshake (a write, the TLS upgrade)
    # would leave the socket open. Close it on every way out.
    try:
        await conn._connect()
    except BaseException:
        conn.close()
        raise
    # Kept because aiomysql forgets its writer when a read is cancelled, and _close() needs it.
    conn.probe_transport = conn._writer.transport


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


async def _close(conn: _ProbeConnection, graceful: bool, budget: Budget) -> None:
    """COM_QUIT when the session is in sync (no "Aborted connection" in the server log), else abort.

    Aborting matters with TLS: a plain close waits up to 30 s for the server's close_notify,
    which a server busy with the abandoned query does not send.
    """
    if graceful and not conn.closed:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(budget.remaining()):
                await conn.ensure_closed()
    _drop(conn)


def _drop(conn: _ProbeConnection) -> None:
    if conn.probe_transport is not None:
        conn.probe_transport.abort()  # harmless after a clean close
    conn.close()


async def _kill_query(killer: _ProbeConnection, thread_id: int) -> None:
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT_S):
            await _open(killer)
            await _execute(killer, f"KILL QUERY {int(thread_id)}")
            await killer.ensure_closed()
    except Exception:
        pass  # best effort: the session timeout is the backstop
    finally:
        _drop(killer)


def _flavor(server_info: str) -> tuple[str, str]:
    """("mariadb" | "mysql", "10.11.9"). MariaDB prefixes its version with "5.5.5-" for old clients."""
    info = server_info.removeprefix("5.5.5-")
    match = _VERSION.search(info)
    return ("mariadb" if "mariadb" in info.lower() else "mysql"), (match.group(0) if match else info)


def _code(exc: BaseException) -> int:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def _message(exc: BaseException) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)


def _validate_target(target: str, settings: MysqlProbeConfig | None) -> None:
    url = parse_db_url(target, SCHEMES, DEFAULT_PORT)
    if not url.user:
        raise ValueError("the URL names no user (mysql://user@host:3306/database)")
    if settings is not None:
        check_password_sources(url, settings)
        check_tls_sources(url, settings.sslmode, settings.sslrootcert)


def _factory(spec: ProbeSpec, ctx: ProbeContext) -> MysqlProbe:
    return MysqlProbe(spec, ctx)


KIND = ProbeKind(
    name="mysql",
    config_cls=MysqlProbeConfig,
    factory=_factory,
    validate_target=_validate_target,
    aliases=SQL_ALIASES,
    describe=describe_sql,
)
