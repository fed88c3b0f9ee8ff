"""type: mysql against a real throwaway MariaDB (password user, TLS, max_connections 12)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import aiomysql
import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.probes.mysql import MysqlProbeConfig
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.db import (
    MAX_CONNECTIONS,
    MY_DB,
    MY_PASSWORD,
    MY_USER,
    SQL_SSLMODES,
    MariaDbServer,
    against_silent_listener,
    attempt,
    build_probe,
    eventually,
    leave_nothing_behind,
    started,
    stopped_then_restarted,
    tls_params,
)

pytestmark = pytest.mark.database
SECRETS = frozenset({MY_PASSWORD})


def my_probe(target: str, timeout: float = 2.0, **settings: object) -> object:
    settings.setdefault("password", MY_PASSWORD)
    return build_probe("mysql", target, MysqlProbeConfig(**settings), timeout, SECRETS)  # type: ignore[arg-type]


async def connect(server: MariaDbServer) -> aiomysql.Connection:
    return await aiomysql.connect(host="127.0.0.1", port=server.port, user=MY_USER, password=MY_PASSWORD, db=MY_DB)


def running(server: MariaDbServer, marker: str) -> int:
    rows = server.sql(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%'"
                      " AND ID <> CONNECTION_ID()")
    return int(rows[0][0])


@pytest.fixture(scope="module")
def plain_mariadb() -> Iterator[MariaDbServer]:
    """A second server without TLS, for the TLS-required case and the stop/restart case."""
    yield from started(MariaDbServer)


# --------------------------------------------------------------------------- healthy


async def test_healthy_server_is_ok_with_phases_server_version_and_checks(mariadb_server: MariaDbServer) -> None:
    probe = my_probe(mariadb_server.url(), check_connections=True, max_long_running_queries=5, expect_role="primary")
    result = await attempt(probe)
    assert result.reason is Reason.OK, result.detail
    assert set(result.phases) == {"connect", "auth", "query", "checks"}
    assert result.info["probed_db_server_info"]["flavor"] == "mariadb"
    assert result.info["probed_db_server_info"]["version"][0].isdigit()  # "10.11.x", not "5.5.5-10.11..."
    assert result.values["query_value"] == 1
    assert result.values["connections_max"] == MAX_CONNECTIONS
    assert 0 < result.values["connections_used_ratio"] < 0.9
    assert result.values["is_replica"] == 0
    assert result.facts["tls"] is True  # prefer: the server offers TLS, so it is used
    assert any(line.startswith("server: MariaDB") for line in get_kind("mysql").describe(result))  # type: ignore[misc]


@pytest.mark.parametrize(("query", "expect", "reason"), [
    ("SELECT 1", {"expect_rows": 1, "expect_value": "1"}, Reason.OK),
    ("SELECT 1/0", {"expect_value": "null"}, Reason.OK),  # a server warning, not an error
    ("SELECT 'degraded'", {"expect_value": "healthy"}, Reason.UNEXPECTED_RESULT),
    ("SELECT 1 UNION SELECT 2", {"expect_rows": 1}, Reason.UNEXPECTED_RESULT),
], ids=["rows-and-value", "null-with-warning", "value", "row-count"])
async def test_query_expectations(mariadb_server: MariaDbServer, query: str, expect: dict[str, object],
                                  reason: Reason) -> None:
    result = await attempt(my_probe(mariadb_server.url(), query=query, **expect))
    assert result.reason is reason, result.detail


# --------------------------------------------------------------------------- credentials and database


async def test_wrong_password_is_auth_failed_in_the_auth_phase(mariadb_server: MariaDbServer) -> None:
    result = await attempt(my_probe(mariadb_server.url(), password="not-the-password"))
    assert result.reason is Reason.AUTH_FAILED
    assert result.facts["error_code"] == 1045
    assert result.detail.startswith("auth: Access denied for user 'probe'@")
    assert set(result.phases) == {"connect", "auth"}  # the greeting came: the network is fine


async def test_password_from_a_file_is_used_and_never_shown(mariadb_server: MariaDbServer, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(MY_PASSWORD + "\n")
    # The database name makes the server echo the password back; the attempt must mask it.
    probe = build_probe("mysql", mariadb_server.url(db=MY_PASSWORD),
                        MysqlProbeConfig(password_file=str(tmp_path / "pw")))
    result = await attempt(probe)
    assert result.reason is Reason.DATABASE_NOT_FOUND  # so authentication worked
    assert MY_PASSWORD not in json.dumps([result.detail, result.facts])


async def test_unknown_database_is_database_not_found(mariadb_server: MariaDbServer) -> None:
    result = await attempt(my_probe(mariadb_server.url(db="no_such_db")))
    assert result.reason is Reason.DATABASE_NOT_FOUND
    assert result.facts["error_code"] == 1049


# --------------------------------------------------------------------------- queries


async def test_failing_query_is_query_error(mariadb_server: MariaDbServer) -> None:
    result = await attempt(my_probe(mariadb_server.url(), query="SELECT * FROM no_such_table"))
    assert result.reason is Reason.QUERY_ERROR
    assert result.facts["error_code"] == 1146
    assert result.detail.startswith("query: Table 'appdb.no_such_table' doesn't exist")


@pytest.mark.parametrize("server_side_timeout", [True, False], ids=["statement-timeout", "kill-query"])
async def test_query_slower_than_the_timeout_is_timeout_and_stopped_on_the_server(
        mariadb_server: MariaDbServer, server_side_timeout: bool) -> None:
    marker = f"slow_probe_{server_side_timeout}"
    probe = my_probe(mariadb_server.url(), timeout=1.0, query=f"SELECT SLEEP(30) AS {marker}",
                     server_side_timeout=server_side_timeout)
    result = await attempt(probe)
    assert result.reason is Reason.TIMEOUT
    assert result.detail.startswith("query:")

    async def gone() -> bool:
        return running(mariadb_server, marker) == 0

    assert await eventually(gone), "the abandoned query is still running on the server"


async def test_attempt_cancelled_by_the_scheduler_still_stops_the_server_query(
        mariadb_server: MariaDbServer) -> None:
    # As for postgres: the session's max_statement_time (59.5 s) is far away, so only the KILL
    # QUERY sent on the way out can stop the query in time.
    probe = my_probe(mariadb_server.url(), timeout=60.0, query="SELECT SLEEP(120) AS cancelled_probe")
    result = await attempt(probe, timeout=0.5)
    assert result.reason is Reason.TIMEOUT

    async def gone() -> bool:
        return running(mariadb_server, "cancelled_probe") == 0

    assert await eventually(gone), "the cancelled attempt left its query running"


async def test_long_running_queries_over_the_limit(mariadb_server: MariaDbServer) -> None:
    sleeper = await connect(mariadb_server)
    cursor = await sleeper.cursor()
    task = asyncio.create_task(cursor.execute("SELECT SLEEP(30)"))
    try:
        async def seen() -> bool:  # the process list counts whole seconds
            result = await attempt(my_probe(mariadb_server.url(), max_long_running_queries=0, long_running_after=1.0))
            return result.reason is Reason.LONG_RUNNING_QUERIES and result.values["long_running_queries"] == 1

        assert await eventually(seen)
    finally:
        mariadb_server.sql(f"KILL {sleeper.thread_id()}")
        with pytest.raises(aiomysql.OperationalError):
            await task
        sleeper.close()


# --------------------------------------------------------------------------- connection limits and role


async def test_connections_at_the_limit_are_too_many_connections(mariadb_server: MariaDbServer) -> None:
    async def idle() -> bool:  # sessions of earlier tests may still be on their way out
        return mariadb_server.threads_connected() == 0

    assert await eventually(idle)
    held: list[aiomysql.Connection] = []
    try:
        # With the probe's own connection the server reaches 11 of 12: over the 0.9 ratio.
        for _ in range(MAX_CONNECTIONS - 2):
            held.append(await connect(mariadb_server))
        busy = await attempt(my_probe(mariadb_server.url(), check_connections=True))
        assert busy.reason is Reason.TOO_MANY_CONNECTIONS
        assert busy.values["connections_used_ratio"] == (MAX_CONNECTIONS - 1) / MAX_CONNECTIONS
        assert f"{MAX_CONNECTIONS - 1} of {MAX_CONNECTIONS} connections in use" in busy.detail

        async def refused() -> bool:
            # Fill the server until it turns us away. A session that just left (the probe's own)
            # can hold its slot a moment after Threads_connected stopped counting it, so the
            # probe may still get in once: then fill again.
            with contextlib.suppress(aiomysql.OperationalError):
                while True:
                    held.append(await connect(mariadb_server))
            result = await attempt(my_probe(mariadb_server.url()))
            return result.reason is Reason.TOO_MANY_CONNECTIONS and result.facts.get("error_code") == 1040

        assert await eventually(refused)
    finally:
        for conn in held:
            await conn.ensure_closed()


async def test_read_only_server_is_a_replica_and_fails_expect_primary(mariadb_server: MariaDbServer) -> None:
    mariadb_server.sql("SET GLOBAL read_only = 1")
    try:
        result = await attempt(my_probe(mariadb_server.url(), expect_role="primary"))
    finally:
        mariadb_server.sql("SET GLOBAL read_only = 0")
    assert result.reason is Reason.WRONG_ROLE
    assert result.detail == "server is a replica, expected a primary"
    assert result.values["is_replica"] == 1


async def test_expecting_a_replica_on_a_primary_is_wrong_role(mariadb_server: MariaDbServer) -> None:
    result = await attempt(my_probe(mariadb_server.url(), expect_role="replica"))
    assert result.reason is Reason.WRONG_ROLE


# --------------------------------------------------------------------------- transport and TLS


async def test_server_stopped_mid_run_is_connection_refused_then_recovers(plain_mariadb: MariaDbServer) -> None:
    before, down, after = await stopped_then_restarted(plain_mariadb, lambda: my_probe(plain_mariadb.url()))
    assert before.reason is Reason.OK
    assert down.reason is Reason.CONNECTION_REFUSED
    assert down.detail == "connect: connection refused"
    assert set(down.phases) == {"connect"}
    assert after.reason is Reason.OK, after.detail


@pytest.mark.parametrize("scheduler_timeout", [None, 0.3], ids=["own-deadline", "cancelled-by-scheduler"])
async def test_listener_that_never_speaks_times_out_and_the_socket_is_closed(
        scheduler_timeout: float | None) -> None:
    result = await against_silent_listener(
        lambda port: my_probe(f"mysql://{MY_USER}@127.0.0.1:{port}/{MY_DB}", timeout=1.0), scheduler_timeout)
    assert result.reason is Reason.TIMEOUT
    if scheduler_timeout is None:  # no greeting ever came: still connecting
        assert result.detail == "connect: no answer within 0.9s"


@SQL_SSLMODES
async def test_sslmodes(mariadb_server: MariaDbServer, tls_files: dict[str, str], sslmode: str, rootcert: str | None,
                        reason: str, tls: bool | None) -> None:
    result = await attempt(my_probe(mariadb_server.url(params=tls_params(tls_files, sslmode, rootcert))))
    assert result.reason.value == reason, result.detail
    assert tls is None or result.facts["tls"] is tls


async def test_tls_required_but_not_offered_fails_before_the_password_is_sent(plain_mariadb: MariaDbServer) -> None:
    result = await attempt(my_probe(plain_mariadb.url(), sslmode="require"))
    assert result.reason is Reason.TLS_HANDSHAKE
    assert "does not offer TLS" in result.detail
    prefer = await attempt(my_probe(plain_mariadb.url()))
    assert prefer.reason is Reason.OK and prefer.facts["tls"] is False


# --------------------------------------------------------------------------- leaks


async def test_twenty_attempts_leave_no_connection_behind(mariadb_server: MariaDbServer,
                                                          tls_files: dict[str, str]) -> None:
    # Every way an attempt ends: ok, query error, abandoned query (KILL QUERY), auth failure after
    # the TLS upgrade, TLS failure.
    settings: list[dict[str, object]] = [
        {}, {"query": "SELECT * FROM nope"}, {"query": "SELECT SLEEP(5)"}, {"password": "wrong-password"},
        {"sslmode": "verify-ca", "sslrootcert": tls_files["other_ca"]}]

    async def sessions() -> int:
        return mariadb_server.threads_connected()

    await leave_nothing_behind(sessions, (my_probe(mariadb_server.url(), timeout=0.3, check_connections=True, **each)
                                          for each in settings * 4))


# --------------------------------------------------------------------------- configuration (no server)


@pytest.mark.parametrize(("target", "section", "message"), [
    ("postgres://app@db/app", "", "expected a mysql:// or mariadb:// URL, got 'postgres'"),
    ("mysql://db/app", "", "the URL names no user"),
    ("mysql://app@db/app?ssl-mode=REQUIRED", "", "unknown URL parameter 'ssl-mode' (allowed: sslmode, sslrootcert)"),
    ("mysql://app@db/app", "{password: x, password_env: Y}", "mysql.password_env: set only one of"),
    ("mysql://app@db/app", "{expect_rows: -1}", "expect_rows: must be >= 0"),
], ids=["scheme", "no-user", "url-param", "two-sources", "rows"])
def test_config_errors_name_the_problem(target: str, section: str, message: str) -> None:
    text = f"probes:\n  - name: db\n    type: mysql\n    target: {target}\n"
    if section:
        text += f"    mysql: {section}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    assert message in str(info.value)
