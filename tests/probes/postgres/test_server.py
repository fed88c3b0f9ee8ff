"""What a `type: postgres` probe says about the server: connections at the limit, its role, a stopped or
silent server, the TLS modes, and the sessions it leaves behind (none). A real throwaway PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from probed.probes.mysql import MysqlProbeConfig
from probed.probes.postgres import PostgresProbeConfig
from probed.probes.redis import RedisProbeConfig
from probed.result import Reason
from tests.peers.db import (
    MAX_CONNECTIONS,
    PG_DB,
    PG_PASSWORD,
    PG_USER,
    SQL_SSLMODES,
    PostgresServer,
    against_silent_listener,
    attempt,
    build_probe,
    eventually,
    leave_nothing_behind,
    scraped,
    stopped_then_restarted,
    tls_params,
)
from tests.peers.postgres import RESERVED, pg_probe, probe_sessions

pytestmark = pytest.mark.database


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
