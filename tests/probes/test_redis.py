"""type: redis against real throwaway Redis servers (requirepass, an ACL user, TLS, replicas)."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.probes.redis import RedisProbeConfig, parse_info
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.db import (
    MAX_CONNECTIONS,
    REDIS_ACL_PASSWORD,
    REDIS_ACL_USER,
    REDIS_PASSWORD,
    RedisServer,
    against_silent_listener,
    attempt,
    build_probe,
    eventually,
    leave_nothing_behind,
    scraped,
    started,
    stopped_then_restarted,
)

pytestmark = pytest.mark.database
SECRETS = frozenset({REDIS_PASSWORD, REDIS_ACL_PASSWORD})


def rd_probe(target: str, timeout: float = 2.0, **settings: object) -> object:
    settings.setdefault("password", REDIS_PASSWORD)
    return build_probe("redis", target, RedisProbeConfig(**settings), timeout, SECRETS)  # type: ignore[arg-type]


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    """A Redis of its own with a 4 MB maxmemory, to be filled up."""
    yield from started(lambda: RedisServer(maxmemory="4mb"))


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own, for a test that leaves it unusable (paused)."""
    yield from started(RedisServer)


@pytest.fixture
def replica_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    for master in started(RedisServer):
        for replica in started(functools.partial(RedisServer, replica_of=master.port)):
            yield master, replica


class RawClients:
    """Plain sockets that authenticate and stay connected, to use up Redis's maxclients."""

    def __init__(self, server: RedisServer) -> None:
        self.server, self.socks = server, list[socket.socket]()

    def open(self, n: int) -> None:
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", self.server.port))
            sock.sendall(f"AUTH {REDIS_PASSWORD}\r\n".encode())
            sock.recv(64)
            self.socks.append(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


# --------------------------------------------------------------------------- healthy


async def test_healthy_server_is_ok_with_memory_clients_and_role(redis_server: RedisServer) -> None:
    result = await attempt(rd_probe(redis_server.url(), max_memory_ratio=0.9, expect_role="master"))
    assert result.reason is Reason.OK, result.detail
    assert set(result.phases) == {"connect", "auth", "query", "checks"}
    assert result.values["memory_max_bytes"] == 64 * 1024 * 1024
    assert 0 < result.values["memory_used_ratio"] < 0.9
    assert result.values["connected_clients"] >= 1  # the probe itself
    assert result.values["connections_max"] == MAX_CONNECTIONS
    assert result.values["is_replica"] == 0
    assert result.info["probed_redis_server_info"]["mode"] == "standalone"
    assert any(line.startswith("memory:") for line in get_kind("redis").describe(result))  # type: ignore[misc]


async def test_acl_user_from_the_url(redis_server: RedisServer) -> None:
    result = await attempt(rd_probe(redis_server.url(user=REDIS_ACL_USER), password=REDIS_ACL_PASSWORD))
    assert result.reason is Reason.OK, result.detail


async def test_info_can_be_skipped_for_users_without_the_permission(redis_server: RedisServer) -> None:
    result = await attempt(rd_probe(redis_server.url(), info=False))
    assert result.reason is Reason.OK
    assert set(result.phases) == {"connect", "auth", "query"} and not result.values


async def test_missing_info_permission_is_query_error(redis_server: RedisServer) -> None:
    redis_server.cli("ACL", "SETUSER", "pingonly", "on", ">pingonly-pw", "+ping", "+auth")
    result = await attempt(rd_probe(redis_server.url(user="pingonly"), password="pingonly-pw"))
    assert result.reason is Reason.QUERY_ERROR
    assert "info" in result.detail


# --------------------------------------------------------------------------- credentials and database


@pytest.mark.parametrize(("user", "password"), [
    ("", "not-the-password"),
    (REDIS_ACL_USER, "not-the-password"),
    ("", None),  # no AUTH at all: the server says NOAUTH on PING
], ids=["requirepass", "acl-user", "no-password"])
async def test_wrong_or_missing_password_is_auth_failed(redis_server: RedisServer, user: str,
                                                        password: str | None) -> None:
    result = await attempt(rd_probe(redis_server.url(user=user), password=password))
    assert result.reason is Reason.AUTH_FAILED, result.detail
    # AUTH during the session setup, or NOAUTH for the PING when there is no password to send.
    assert result.detail.startswith("auth: " if password else "query: Authentication required"), result.detail


async def test_password_from_a_file_never_shows(redis_server: RedisServer, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(REDIS_PASSWORD)
    probe = build_probe("redis", redis_server.url(), RedisProbeConfig(password_file=str(tmp_path / "pw")))
    result = await attempt(probe)
    assert result.reason is Reason.OK
    assert REDIS_PASSWORD not in json.dumps([result.detail, result.facts, dict(result.info)])


async def test_database_index_out_of_range_is_database_not_found(redis_server: RedisServer) -> None:
    result = await attempt(rd_probe(redis_server.url(db=99)))
    assert result.reason is Reason.DATABASE_NOT_FOUND


# --------------------------------------------------------------------------- memory, clients, role


async def test_memory_over_the_ratio_is_memory_high(small_redis: RedisServer) -> None:
    assert (await attempt(rd_probe(small_redis.url(), max_memory_ratio=0.9))).reason is Reason.OK
    value = "x" * 100_000
    for i in range(100):  # until Redis refuses writes (OOM) or is past the ratio
        reply = small_redis.cli("SET", f"fill:{i}", value)
        if reply != "OK":
            break
    probe = rd_probe(small_redis.url(), max_memory_ratio=0.9)
    result = await attempt(probe)
    assert result.reason is Reason.MEMORY_HIGH
    assert result.values["memory_used_ratio"] > 0.9
    assert "of maxmemory" in result.detail
    _, metrics = await scraped(probe, small_redis.url(), result)
    (labels, ratio), = metrics["probed_redis_memory_used_ratio"]
    assert labels == {"probe": "db", "type": "redis"} and ratio == result.values["memory_used_ratio"]
    assert metrics["probed_redis_server_info"][0][0]["mode"] == "standalone"


async def test_clients_at_the_limit_are_too_many_connections(redis_server: RedisServer) -> None:
    async def idle() -> bool:  # clients of earlier tests may still be on their way out
        return redis_server.connected_clients() == 0

    assert await eventually(idle)
    clients = RawClients(redis_server)
    try:
        clients.open(MAX_CONNECTIONS - 2)  # the probe makes it 11 of 12
        busy = await attempt(rd_probe(redis_server.url(), max_connections_ratio=0.9))
        assert busy.reason is Reason.TOO_MANY_CONNECTIONS
        assert busy.values["connections_used_ratio"] == (MAX_CONNECTIONS - 1) / MAX_CONNECTIONS

        async def refused() -> bool:  # full: no room for the probe (once its last client is gone)
            clients.open(MAX_CONNECTIONS - redis_server.connected_clients())
            result = await attempt(rd_probe(redis_server.url()))
            return result.reason is Reason.TOO_MANY_CONNECTIONS and "max number of clients reached" in result.detail

        assert await eventually(refused)
    finally:
        clients.close()


async def test_role_mismatch_in_both_directions(replica_pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = replica_pair
    assert (await attempt(rd_probe(master.url(), expect_role="replica"))).reason is Reason.WRONG_ROLE
    promoted = await attempt(rd_probe(replica.url(), expect_role="master"))
    assert promoted.reason is Reason.WRONG_ROLE
    assert promoted.detail == "server is a replica, expected a master"
    assert promoted.values["is_replica"] == 1
    assert (await attempt(rd_probe(replica.url(), expect_role="replica"))).reason is Reason.OK
    assert (await attempt(rd_probe(master.url(), expect_role="primary"))).reason is Reason.OK


# --------------------------------------------------------------------------- transport and TLS


async def test_server_stopped_mid_run_is_connection_refused_then_recovers(redis_server: RedisServer) -> None:
    before, down, after = await stopped_then_restarted(redis_server, lambda: rd_probe(redis_server.url()))
    assert before.reason is Reason.OK
    assert down.reason is Reason.CONNECTION_REFUSED
    assert down.detail == "connect: connection refused"
    assert after.reason is Reason.OK, after.detail


@pytest.mark.parametrize(("scheme", "stage"), [("redis", "auth"), ("rediss", "connect")],
                         ids=["plain-auth-unanswered", "tls-hello-unanswered"])
@pytest.mark.parametrize("scheduler_timeout", [None, 0.3], ids=["own-deadline", "cancelled-by-scheduler"])
async def test_listener_that_never_speaks_times_out_and_the_socket_is_closed(
        scheduler_timeout: float | None, scheme: str, stage: str) -> None:
    result = await against_silent_listener(
        lambda port: rd_probe(f"{scheme}://127.0.0.1:{port}/0", timeout=1.0, sslmode="require" if scheme == "rediss"
                              else None), scheduler_timeout)
    assert result.reason is Reason.TIMEOUT
    if scheduler_timeout is None:
        assert result.detail == f"{stage}: no answer within 0.9s"


async def test_a_paused_server_is_timeout(own_redis: RedisServer) -> None:
    """A Redis busy with something else (a slow command, CLIENT PAUSE) answers nobody: timeout."""
    own_redis.cli("CLIENT", "PAUSE", "60000", "ALL")
    result = await attempt(rd_probe(own_redis.url(), timeout=1.0))
    assert result.reason is Reason.TIMEOUT
    assert result.detail == "auth: no answer within 0.9s"


@pytest.mark.parametrize(("sslmode", "rootcert", "reason"), [
    ("require", None, Reason.OK),  # encrypted, not verified
    ("require", "other_ca", Reason.CERT_UNTRUSTED),  # with a CA bundle, require verifies
    ("verify-ca", "ca", Reason.OK),
    ("verify-ca", "other_ca", Reason.CERT_UNTRUSTED),
    ("verify-full", "ca", Reason.OK),
    ("verify-full", None, Reason.CERT_UNTRUSTED),  # the system store does not know the test CA
])
async def test_sslmodes(redis_server: RedisServer, tls_files: dict[str, str], sslmode: str, rootcert: str | None,
                        reason: Reason) -> None:
    result = await attempt(rd_probe(redis_server.tls_url(), sslmode=sslmode,
                                    sslrootcert=tls_files[rootcert] if rootcert else None))
    assert result.reason is reason, result.detail
    if reason is Reason.OK:
        assert result.facts["tls"] is True


async def test_verify_full_checks_the_host_name_and_verify_ca_does_not(redis_server: RedisServer,
                                                                       tls_files: dict[str, str]) -> None:
    with redis_server.certificate(tls_files["other_host_cert"], tls_files["other_host_key"]):
        full = await attempt(rd_probe(redis_server.tls_url(), sslrootcert=tls_files["ca"]))  # verify-full: default
        ca_only = await attempt(rd_probe(redis_server.tls_url(), sslmode="verify-ca", sslrootcert=tls_files["ca"]))
    assert full.reason is Reason.CERT_HOSTNAME_MISMATCH, full.detail
    assert ca_only.reason is Reason.OK, ca_only.detail


# --------------------------------------------------------------------------- leaks


async def test_twenty_attempts_leave_no_connection_behind(redis_server: RedisServer,
                                                          tls_files: dict[str, str]) -> None:
    probes = [(redis_server.url(), {}), (redis_server.url(), {"password": "wrong-password"}),
              (redis_server.tls_url(), {"sslrootcert": tls_files["ca"]}),
              (redis_server.tls_url(), {"sslrootcert": tls_files["other_ca"]})]

    async def sessions() -> int:
        return redis_server.connected_clients()

    await leave_nothing_behind(sessions, (rd_probe(url, **each) for url, each in probes * 5))


# --------------------------------------------------------------------------- parsing and configuration


def test_info_parsing_skips_sections_and_keeps_values() -> None:
    raw = b"# Server\r\nredis_version:7.2.4\r\n\r\n# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\n"
    assert parse_info(raw) == {"redis_version": "7.2.4", "used_memory": "1024", "maxmemory": "0"}


@pytest.mark.parametrize(("target", "section", "message"), [
    ("redis://cache/x", "", "the database in a redis URL is a number"),
    ("redis://cache/0?timeout=1", "", "unknown URL parameter 'timeout' (allowed: none)"),
    ("redis://cache/0", "{sslmode: require}", "sslmode and sslrootcert need a rediss:// target"),
    ("rediss://cache/0", "{sslmode: prefer}", "invalid value 'prefer' (one of: require, verify-ca, verify-full)"),
    ("redis://cache/0", "{info: false, expect_role: master}", "expect_role: needs `info: true`"),
    ("redis://cache/0", "{max_memory_ratio: 0}", "max_memory_ratio: must be in (0, 1]"),
], ids=["db", "url-param", "tls-on-plain", "sslmode", "info-off", "ratio"])
def test_config_errors_name_the_problem(target: str, section: str, message: str) -> None:
    text = f"probes:\n  - name: cache\n    type: redis\n    target: {target}\n"
    if section:
        text += f"    redis: {section}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    assert message in str(info.value)


def test_aliases_give_dashboards_dedicated_metric_names() -> None:
    aliases = get_kind("redis").aliases
    assert aliases["memory_used_ratio"].metric == "probed_redis_memory_used_ratio"
    assert aliases["connections_used_ratio"].metric == "probed_db_connections_used_ratio"
