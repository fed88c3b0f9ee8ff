"""type: postgres against a real throwaway PostgreSQL (scram-sha-256, TLS, max_connections 12)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.probes.mysql import MysqlProbeConfig
from probed.probes.postgres import PostgresProbeConfig
from probed.probes.redis import RedisProbeConfig
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.db import (
    MAX_CONNECTIONS,
    PG_DB,
    PG_PASSWORD,
    PG_USER,
    SQL_SSLMODES,
    PostgresServer,
    ServerUnavailable,
    against_silent_listener,
    attempt,
    build_probe,
    eventually,
    leave_nothing_behind,
    scraped,
    started,
    stopped_then_restarted,
    tls_params,
    unavailable,
)

pytestmark = pytest.mark.database
SECRETS = frozenset({PG_PASSWORD})
RESERVED = 3  # superuser_reserved_connections in the fixture


def pg_probe(target: str, timeout: float = 2.0, **settings: object) -> object:
    settings.setdefault("password", PG_PASSWORD)
    return build_probe("postgres", target, PostgresProbeConfig(**settings), timeout, SECRETS)  # type: ignore[arg-type]


@pytest.fixture
async def admin(pg_server: PostgresServer) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_server.admin_dsn())
    yield conn
    await conn.close()


@pytest.fixture
def standby_pg() -> Iterator[PostgresServer]:
    """A server of its own, restarted as a hot standby (a test promotes it)."""
    for server in started(PostgresServer):
        server.make_standby()
        yield server


async def probe_sessions(admin: asyncpg.Connection, query_like: str = "%") -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE $2", PG_USER, query_like)
    return count


# --------------------------------------------------------------------------- healthy


async def test_healthy_server_is_ok_with_phases_server_version_and_checks(pg_server: PostgresServer) -> None:
    probe = pg_probe(pg_server.url(), check_connections=True, max_long_running_queries=5, expect_role="primary")
    result = await attempt(probe)
    assert result.reason is Reason.OK, result.detail
    assert set(result.phases) == {"connect", "query", "checks"}
    assert result.info["probed_db_server_info"]["flavor"] == "postgresql"
    assert result.info["probed_db_server_info"]["version"].startswith(pg_server.bindir.parent.name)
    assert result.values["query_value"] == 1
    assert 0 < result.values["connections_used_ratio"] < 0.9
    assert result.values["connections_max"] == MAX_CONNECTIONS - RESERVED
    assert result.values["is_replica"] == 0
    assert result.facts["role"] == "primary"
    assert any(line.startswith("server: PostgreSQL") for line in get_kind("postgres").describe(result))  # type: ignore[misc]


@pytest.mark.parametrize(("query", "expect", "reason"), [
    ("SELECT 1", {"expect_rows": 1, "expect_value": "1"}, Reason.OK),
    ("SELECT true", {"expect_value": "true"}, Reason.OK),
    ("SELECT NULL", {"expect_value": "null"}, Reason.OK),
    ("SELECT generate_series(1, 3)", {"expect_rows": 1}, Reason.UNEXPECTED_RESULT),
    ("SELECT 'degraded'", {"expect_value": "healthy"}, Reason.UNEXPECTED_RESULT),
    ("SELECT 1 WHERE false", {"expect_value": "1"}, Reason.UNEXPECTED_RESULT),
], ids=["rows-and-value", "boolean", "null", "row-count", "value", "no-rows"])
async def test_query_expectations(pg_server: PostgresServer, query: str, expect: dict[str, object],
                                  reason: Reason) -> None:
    result = await attempt(pg_probe(pg_server.url(), query=query, **expect))
    assert result.reason is reason, result.detail


async def test_numeric_first_value_is_exported_for_dashboards(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), query="SELECT 42.5::numeric"))
    assert result.values["query_value"] == 42.5


async def test_several_failed_checks_report_the_most_fundamental_and_list_all(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), query="SELECT 2", expect_value="1", expect_role="replica"))
    assert result.reason is Reason.WRONG_ROLE
    assert result.detail == "server is a primary, expected a replica; first value is '2', expected '1'"


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("source", ["password_env", "password_file", "yaml_interpolation"])
async def test_password_sources(pg_server: PostgresServer, source: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    if source == "password_env":
        monkeypatch.setenv("PROBED_TEST_PG_PW", PG_PASSWORD)
        settings = "{password_env: PROBED_TEST_PG_PW}"
    elif source == "password_file":
        (tmp_path / "pw").write_text(PG_PASSWORD + "\n")  # the newline editors add is not part of it
        settings = f"{{password_file: {tmp_path / 'pw'}}}"
    else:
        settings = "{password: '${PGPW}'}"
    config = parse_config(f"probes:\n  - name: db\n    type: postgres\n    target: {pg_server.url()}\n"
                          f"    postgres: {settings}\n", "probes.yaml", {"PGPW": PG_PASSWORD})
    spec = config.probes[0]
    probe = build_probe("postgres", spec.target, spec.settings, 2.0, config.secrets)
    result = await attempt(probe)
    assert result.reason is Reason.OK, result.detail


async def test_wrong_password_is_auth_failed(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), password="not-the-password"))
    assert result.reason is Reason.AUTH_FAILED
    assert "password authentication failed" in result.detail
    assert result.facts["sqlstate"] == "28P01"


async def test_unreadable_password_file_is_auth_failed_with_the_reason(pg_server: PostgresServer,
                                                                       tmp_path: Path) -> None:
    result = await attempt(pg_probe(pg_server.url(), password=None, password_file=str(tmp_path / "missing")))
    assert result.reason is Reason.AUTH_FAILED
    assert "password_file" in result.detail and "No such file" in result.detail


async def test_a_password_read_at_run_time_never_appears_in_the_result(pg_server: PostgresServer,
                                                                       tmp_path: Path) -> None:
    # The config never saw this password (it is read from a file), and the database name makes
    # the server echo it back: the attempt must still mask it everywhere.
    (tmp_path / "pw").write_text(PG_PASSWORD)
    probe = build_probe("postgres", pg_server.url(db=PG_PASSWORD),
                        PostgresProbeConfig(password_file=str(tmp_path / "pw")))
    result = await attempt(probe)
    assert result.reason is Reason.DATABASE_NOT_FOUND
    rendered = json.dumps([result.detail, result.facts, dict(result.info)])
    assert PG_PASSWORD not in rendered
    assert '"***"' in result.detail


async def test_a_query_answer_that_quotes_the_password_is_masked_in_the_facts(pg_server: PostgresServer,
                                                                              tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PG_PASSWORD)
    probe = build_probe("postgres", pg_server.url(),
                        PostgresProbeConfig(password_file=str(tmp_path / "pw"), query=f"SELECT 'pw={PG_PASSWORD}'",
                                            expect_value="something else"))
    result = await attempt(probe)
    assert result.reason is Reason.UNEXPECTED_RESULT
    assert result.facts["first_value"] == "pw=***"
    assert PG_PASSWORD not in result.detail


def test_probed_once_never_shows_the_password(pg_server: PostgresServer, tmp_path: Path) -> None:
    """End to end, text and JSON: the password from a file (read at run time, the config never
    sees it), from ${VAR} and inline in the URL; the first fails after authenticating."""
    (tmp_path / "pw").write_text(PG_PASSWORD + "\n")
    config = tmp_path / "probes.yaml"
    config.write_text(f"""\
defaults: {{timeout: 3s}}
probes:
  - name: file
    type: postgres
    target: {pg_server.url(db="no_such_db")}
    postgres: {{password_file: {tmp_path / "pw"}}}
  - name: interpolated
    type: postgres
    target: {pg_server.url()}
    postgres: {{password: "${{PROBED_TEST_PGPW}}", check_connections: true}}
  - name: inline
    type: postgres
    target: {pg_server.url(password=PG_PASSWORD)}
""")
    outputs = []
    for extra in ([], ["--json"]):
        out = subprocess.run([sys.executable, "-m", "probed.cli", "once", "--config", str(config), *extra],
                             capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent,
                             env={**os.environ, "PROBED_TEST_PGPW": PG_PASSWORD})
        assert out.returncode == 1, out.stderr  # the first probe fails: no such database
        outputs.append(out.stdout + out.stderr)
    text, as_json = outputs
    assert "database_not_found" in text and "connections:" in text
    rows = {row["name"]: row for row in map(json.loads, as_json.splitlines())}
    assert {name: row["reason"] for name, row in rows.items()} == {
        "file": "database_not_found", "interpolated": "ok", "inline": "ok"}
    assert rows["inline"]["target"] == f"postgres://{PG_USER}:***@127.0.0.1:{pg_server.port}/{PG_DB}"
    assert PG_PASSWORD not in text + as_json


async def test_inline_url_password_works_and_is_redacted(pg_server: PostgresServer) -> None:
    probe = build_probe("postgres", pg_server.url(password=PG_PASSWORD, db="nope"), PostgresProbeConfig())
    result = await attempt(probe)
    assert result.reason is Reason.DATABASE_NOT_FOUND  # authenticated with the URL's password
    assert PG_PASSWORD not in json.dumps([result.detail, result.facts])


async def test_unknown_database_is_database_not_found(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(db="no_such_db")))
    assert result.reason is Reason.DATABASE_NOT_FOUND
    assert 'database "no_such_db" does not exist' in result.detail


# --------------------------------------------------------------------------- queries


async def test_failing_query_is_query_error_with_sqlstate(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), query="SELECT 1/0"))
    assert result.reason is Reason.QUERY_ERROR
    assert result.detail.startswith("query: division by zero")
    assert result.facts["sqlstate"] == "22012"
    assert "query" in result.phases


async def test_query_slower_than_the_timeout_is_timeout_and_cancelled_on_the_server(
        pg_server: PostgresServer, admin: asyncpg.Connection) -> None:
    result = await attempt(pg_probe(pg_server.url(), timeout=1.0, query="SELECT pg_sleep(30) AS slow_probe"))
    assert result.reason is Reason.TIMEOUT
    assert result.detail.startswith("query:")

    async def gone() -> bool:
        return await probe_sessions(admin, "%slow_probe%") == 0

    assert await eventually(gone), "the abandoned query is still running on the server"


async def test_attempt_cancelled_by_the_scheduler_still_cancels_the_server_query(
        pg_server: PostgresServer, admin: asyncpg.Connection) -> None:
    # The scheduler's hard deadline (0.5 s) comes long before the probe's own (60 s): the probe is
    # cancelled mid-query, as on shutdown or reload. The server's statement_timeout (59.5 s) is far
    # away, so only the cancel request sent on the way out can stop the query in time.
    probe = pg_probe(pg_server.url(), timeout=60.0, query="SELECT pg_sleep(120) AS cancelled_probe")
    result = await attempt(probe, timeout=0.5)
    assert result.reason is Reason.TIMEOUT

    async def gone() -> bool:
        return await probe_sessions(admin, "%cancelled_probe%") == 0

    assert await eventually(gone), "the cancelled attempt left its query running"


async def test_long_running_queries_over_the_limit(pg_server: PostgresServer) -> None:
    sleeper = await asyncpg.connect(pg_server.url(password=PG_PASSWORD))
    task = asyncio.create_task(sleeper.fetch("SELECT pg_sleep(30)"))
    try:
        probe_args = {"max_long_running_queries": 0, "long_running_after": 0.2}

        async def seen() -> bool:
            result = await attempt(pg_probe(pg_server.url(), **probe_args))
            return result.reason is Reason.LONG_RUNNING_QUERIES and result.values["long_running_queries"] == 1

        assert await eventually(seen)
        ok = await attempt(pg_probe(pg_server.url(), max_long_running_queries=1, long_running_after=0.2))
        assert ok.reason is Reason.OK and ok.values["long_running_queries"] == 1
    finally:
        task.cancel()  # asyncpg sends the server a cancel request
        with pytest.raises(asyncio.CancelledError):
            await task
        await sleeper.close()


# --------------------------------------------------------------------------- connection limits and role


async def test_connections_at_the_limit_are_too_many_connections(pg_server: PostgresServer,
                                                                 admin: asyncpg.Connection) -> None:
    async def idle() -> bool:  # sessions of earlier tests may still be on their way out
        return await probe_sessions(admin) == 0

    assert await eventually(idle)
    usable = MAX_CONNECTIONS - RESERVED
    in_use = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    held: list[asyncpg.Connection] = []
    try:
        # Leave exactly one slot: the probe's own connection brings the server to 100%.
        for _ in range(usable - in_use - 1):
            held.append(await asyncpg.connect(pg_server.url(password=PG_PASSWORD)))
        target = pg_server.url(password=PG_PASSWORD)
        probe = pg_probe(target, check_connections=True, password=None)
        full = await attempt(probe)
        assert full.reason is Reason.TOO_MANY_CONNECTIONS
        assert full.values["connections_used_ratio"] == 1.0
        assert f"{usable} of {usable} connections in use" in full.detail
        # What the dashboard plots, and the server that answered; the URL's password nowhere.
        text, metrics = await scraped(probe, target, full)
        assert metrics["probed_db_connections_used_ratio"] == [({"probe": "db", "type": "postgres"}, 1.0)]
        assert ({"probe": "db", "type": "postgres", "name": "connections_used_ratio"}, 1.0) \
            in metrics["probed_probe_value"]
        (info, _), = metrics["probed_db_server_info"]
        assert info["flavor"] == "postgresql" and info["version"] == full.info["probed_db_server_info"]["version"]
        assert {labels["reason"] for labels, _ in metrics["probed_probe_failures_total"]} == {"too_many_connections"}
        assert metrics["probed_probe_info"][0][0]["target"] == target.replace(PG_PASSWORD, "***")
        assert PG_PASSWORD not in text

        # One more and the server itself turns the probe away.
        held.append(await asyncpg.connect(pg_server.url(password=PG_PASSWORD)))
        refused = await attempt(pg_probe(pg_server.url(), check_connections=True))
        assert refused.reason is Reason.TOO_MANY_CONNECTIONS
        assert refused.facts["sqlstate"] == "53300"
    finally:
        for conn in held:
            await conn.close()


async def test_expecting_a_replica_on_a_primary_is_wrong_role(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), expect_role="replica"))
    assert result.reason is Reason.WRONG_ROLE
    assert result.detail == "server is a primary, expected a replica"
    assert result.values["is_replica"] == 0


async def test_a_hot_standby_is_a_replica_until_promoted(standby_pg: PostgresServer) -> None:
    # The writer endpoint points at a replica: expect_role primary fails, with the ratio still read.
    writer = await attempt(pg_probe(standby_pg.url(), expect_role="primary", check_connections=True))
    assert writer.reason is Reason.WRONG_ROLE
    assert writer.detail == "server is a replica, expected a primary"
    assert writer.values["is_replica"] == 1 and writer.facts["role"] == "replica"
    assert 0 < writer.values["connections_used_ratio"] < 0.9
    assert (await attempt(pg_probe(standby_pg.url(), expect_role="replica"))).reason is Reason.OK

    standby_pg.promote()  # the failover: the replica is now the primary
    reader = await attempt(pg_probe(standby_pg.url(), expect_role="replica"))
    assert reader.reason is Reason.WRONG_ROLE
    assert reader.values["is_replica"] == 0
    assert (await attempt(pg_probe(standby_pg.url(), expect_role="primary"))).reason is Reason.OK


# --------------------------------------------------------------------------- transport


async def test_server_stopped_mid_run_is_connection_refused_then_recovers(pg_server: PostgresServer) -> None:
    before, down, after = await stopped_then_restarted(pg_server, lambda: pg_probe(pg_server.url()))
    assert before.reason is Reason.OK
    assert down.reason is Reason.CONNECTION_REFUSED
    assert down.detail == "connect: connection refused"
    assert after.reason is Reason.OK, after.detail


@pytest.mark.parametrize("sslmode", ["disable", "require"])  # require: the SSLRequest is never answered
@pytest.mark.parametrize("scheduler_timeout", [None, 0.3], ids=["own-deadline", "cancelled-by-scheduler"])
async def test_listener_that_never_speaks_times_out_and_the_socket_is_closed(
        scheduler_timeout: float | None, sslmode: str) -> None:
    result = await against_silent_listener(
        lambda port: pg_probe(f"postgres://{PG_USER}@127.0.0.1:{port}/{PG_DB}?sslmode={sslmode}", timeout=1.0),
        scheduler_timeout)
    assert result.reason is Reason.TIMEOUT
    if scheduler_timeout is None:  # the probe's own deadline says what it was waiting for
        assert result.detail == "connect: no answer within 0.9s"


@SQL_SSLMODES
async def test_sslmodes(pg_server: PostgresServer, tls_files: dict[str, str], sslmode: str, rootcert: str | None,
                        reason: str, tls: bool | None) -> None:
    result = await attempt(pg_probe(pg_server.url(params=tls_params(tls_files, sslmode, rootcert))))
    assert result.reason.value == reason, result.detail
    assert tls is None or result.facts["tls"] is tls


async def test_verify_full_checks_the_host_name_and_verify_ca_does_not(pg_server: PostgresServer,
                                                                       tls_files: dict[str, str]) -> None:
    with pg_server.certificate(tls_files["other_host_cert"], tls_files["other_host_key"]):
        full = await attempt(pg_probe(pg_server.url(), sslmode="verify-full", sslrootcert=tls_files["ca"]))
        ca_only = await attempt(pg_probe(pg_server.url(), sslmode="verify-ca", sslrootcert=tls_files["ca"]))
    assert full.reason is Reason.CERT_HOSTNAME_MISMATCH, full.detail
    assert ca_only.reason is Reason.OK, ca_only.detail


async def test_tls_required_but_server_has_it_off_is_tls_handshake(pg_server: PostgresServer) -> None:
    pg_server.psql("ALTER SYSTEM SET ssl = off", "SELECT pg_reload_conf()")
    try:
        result = await attempt(pg_probe(pg_server.url(), sslmode="require"))
        assert result.reason is Reason.TLS_HANDSHAKE
        assert "does not accept TLS" in result.detail
        prefer = await attempt(pg_probe(pg_server.url()))  # the default, prefer, falls back to plain text
        assert prefer.reason is Reason.OK and prefer.facts["tls"] is False
    finally:
        pg_server.psql("ALTER SYSTEM RESET ssl", "SELECT pg_reload_conf()")


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis"])  # shared by the three types
async def test_a_missing_ca_bundle_is_named_before_connecting(kind: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "rds-ca.pem")
    target, settings = {
        "postgres": ("postgres://app@127.0.0.1:1/app", PostgresProbeConfig(sslmode="verify-full", sslrootcert=missing)),
        "mysql": ("mysql://app@127.0.0.1:1/app", MysqlProbeConfig(sslmode="verify-ca", sslrootcert=missing)),
        "redis": ("rediss://127.0.0.1:1/0", RedisProbeConfig(sslrootcert=missing)),
    }[kind]
    result = await attempt(build_probe(kind, target, settings))
    assert result.reason is Reason.TLS_HANDSHAKE
    assert result.detail == f"sslrootcert {missing}: No such file or directory"


# --------------------------------------------------------------------------- leaks


async def test_twenty_attempts_leave_no_connection_behind(pg_server: PostgresServer, admin: asyncpg.Connection,
                                                          tls_files: dict[str, str]) -> None:
    # Every way an attempt ends: ok, query error, abandoned query, auth failure, TLS failure.
    settings: list[dict[str, object]] = [
        {}, {"query": "SELECT 1/0"}, {"query": "SELECT pg_sleep(5)"}, {"password": "wrong-password"},
        {"sslmode": "verify-ca", "sslrootcert": tls_files["other_ca"]}]

    async def sessions() -> int:
        return await probe_sessions(admin)

    await leave_nothing_behind(sessions, (pg_probe(pg_server.url(), timeout=0.3, check_connections=True, **each)
                                          for each in settings * 4))


# --------------------------------------------------------------------------- the test harness itself


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)],
                         ids=["local-skips", "ci-fails"])
def test_missing_server_binaries_skip_locally_and_fail_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                                outcome: type[BaseException]) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as raised:  # skip and fail are BaseExceptions: catch either, then compare
        unavailable(ServerUnavailable("PostgreSQL server binaries not found; apt-get install postgresql"))
    assert raised.type is outcome
    assert "apt-get install postgresql" in str(raised.value)


# --------------------------------------------------------------------------- configuration (no server)


@pytest.mark.parametrize(("target", "section", "message"), [
    ("http://db/app", "", "probes[0].target: expected a postgres:// or postgresql:// URL, got 'http'"),
    ("postgres://db/app", "", "probes[0].target: the URL names no user"),
    ("postgres://app@db/app?sslmode=maybe", "", "probes[0].target: invalid sslmode 'maybe'"),
    ("postgres://app@db/app?connect_timeout=3", "", "unknown URL parameter 'connect_timeout'"),
    ("postgres://app@db:99999/app", "", "probes[0].target: invalid URL: Port out of range"),
    ("postgres://app:pw@db/app", "{password_env: X}", "the URL has a password and the section sets one too"),
    ("postgres://app@db/app?sslmode=require", "{sslmode: verify-full}", "sslmode is set both in the URL"),
    ("postgres://app@db/app", "{password_env: X, password_file: /f}", "probes[0].postgres.password_file: set only one"),
    ("postgres://app@db/app", "{max_connections_ratio: 1.5}", "max_connections_ratio: must be in (0, 1]"),
    ("postgres://app@db/app", "{expect_role: leader}", "invalid value 'leader' (one of: primary, replica)"),
    ("postgres://app@db/app", "{long_running_after: 30}", "long_running_after: invalid duration 30"),
    ("postgres://app@db/app", "{querry: SELECT 2}", "unknown key 'querry' (did you mean 'query'?)"),
], ids=["scheme", "no-user", "sslmode", "url-param", "port", "two-passwords", "two-sslmodes", "two-sources",
        "ratio", "role", "duration", "typo"])
def test_config_errors_name_the_problem(target: str, section: str, message: str) -> None:
    text = f"probes:\n  - name: db\n    type: postgres\n    target: {target}\n"
    if section:
        text += f"    postgres: {section}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    assert message in str(info.value)


def test_password_stays_out_of_the_settings_repr() -> None:
    config = parse_config("probes:\n  - name: db\n    type: postgres\n    target: postgres://app@db/app\n"
                          "    postgres: {password: '${PGPW}'}\n", "probes.yaml", {"PGPW": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config.probes[0])
    assert "hunter2-secret" in config.secrets


def test_aliases_give_dashboards_dedicated_metric_names() -> None:
    aliases = get_kind("postgres").aliases
    assert aliases["connections_used_ratio"].metric == "probed_db_connections_used_ratio"
    assert aliases["long_running_queries"].metric == "probed_db_long_running_queries"
