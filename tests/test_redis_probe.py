"""type: redis against real throwaway Redis servers (requirepass, an ACL user, TLS, replicas)."""

# ruff: noqa: F811  (server fixtures come from tests.peers_db; tests take them as parameters)

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed.config import ConfigError, parse_config
from probed.probes import get_kind
from probed.probes.redis import RedisProbeConfig, parse_info
from probed.result import Reason
from tests.peers_db import (
    MAX_CONNECTIONS,
    REDIS_ACL_PASSWORD,
    REDIS_ACL_USER,
    REDIS_PASSWORD,
    RedisServer,
    ServerUnavailable,
    attempt,
    build_probe,
    eventually,
    redis_server,  # noqa: F401  (fixture)
    silent_listener,
    tls_files,  # noqa: F401  (fixture)
    unavailable,
)

pytestmark = pytest.mark.database
SECRETS = frozenset({REDIS_PASSWORD, REDIS_ACL_PASSWORD})


def rd_probe(target: str, timeout: float = 2.0, **settings: object) -> object:
    settings.setdefault("password", REDIS_PASSWORD)
    return build_probe("redis", target, RedisProbeConfig(**settings), timeout, SECRETS)  # type: ignore[arg-type]


def own_server(**kwargs: object) -> Iterator[RedisServer]:
    try:
        server = RedisServer(**kwargs)  # type: ignore[arg-type]
    except ServerUnavailable as exc:
        unavailable(exc)
    with server:
        server.start()
        yield server


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    """A Redis of its own with a 4 MB maxmemory, to be filled up."""
    yield from own_server(maxmemory="4mb")


@pytest.fixture
def replica_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    for master in own_server():
        for replica in own_server(replica_of=master.port):
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
    assert set(result.phases) == {"connect", "query", "checks"}
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
    assert set(result.phases) == {"connect", "query"} and not result.values


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
    result = await attempt(rd_probe(small_redis.url(), max_memory_ratio=0.9))
    assert result.reason is Reason.MEMORY_HIGH
    assert result.values["memory_used_ratio"] > 0.9
    assert "of maxmemory" in result.detail


async def test_clients_at_the_limit_are_too_many_connections(redis_server: RedisServer) -> None:
    clients = RawClients(redis_server)
    try:
        clients.open(MAX_CONNECTIONS - 2 - redis_server.connected_clients())  # the probe makes it 11 of 12
        busy = await attempt(rd_probe(redis_server.url(), max_connections_ratio=0.9))
        assert busy.reason is Reason.TOO_MANY_CONNECTIONS
        assert busy.values["connections_used_ratio"] == (MAX_CONNECTIONS - 1) / MAX_CONNECTIONS

        clients.open(MAX_CONNECTIONS - redis_server.connected_clients())  # full: no room for the probe
        refused = await attempt(rd_probe(redis_server.url()))
        assert refused.reason is Reason.TOO_MANY_CONNECTIONS
        assert "max number of clients reached" in refused.detail
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
    assert (await attempt(rd_probe(redis_server.url()))).reason is Reason.OK
    redis_server.stop()
    try:
        down = await attempt(rd_probe(redis_server.url()))
        assert down.reason is Reason.CONNECTION_REFUSED
    finally:
        redis_server.start()
    assert (await attempt(rd_probe(redis_server.url()))).reason is Reason.OK


@pytest.mark.parametrize("scheduler_timeout", [None, 0.3], ids=["own-deadline", "cancelled-by-scheduler"])
async def test_listener_that_never_speaks_times_out_and_the_socket_is_closed(
        scheduler_timeout: float | None) -> None:
    async with silent_listener() as listener:
        result = await attempt(rd_probe(f"redis://127.0.0.1:{listener.port}/0", timeout=1.0), scheduler_timeout)
        assert result.reason is Reason.TIMEOUT
        if scheduler_timeout is None:
            assert result.detail.startswith("connect: no answer within")
        assert listener.accepted == 1
        assert await listener.all_closed_by_client()


async def test_tls_verify_full_with_the_right_ca(redis_server: RedisServer, tls_files: dict[str, str]) -> None:
    result = await attempt(rd_probe(f"rediss://127.0.0.1:{redis_server.tls_port}/0", sslrootcert=tls_files["ca"]))
    assert result.reason is Reason.OK, result.detail
    assert result.facts["tls"] is True


async def test_tls_with_an_untrusted_certificate(redis_server: RedisServer, tls_files: dict[str, str]) -> None:
    result = await attempt(rd_probe(f"rediss://127.0.0.1:{redis_server.tls_port}/0", sslrootcert=tls_files["other_ca"]))
    assert result.reason is Reason.CERT_UNTRUSTED


# --------------------------------------------------------------------------- leaks


async def test_twenty_attempts_leave_no_connection_behind(redis_server: RedisServer) -> None:
    baseline = redis_server.connected_clients()
    for i in range(20):
        await attempt(rd_probe(redis_server.url(), password=REDIS_PASSWORD if i % 3 else "wrong-password"))

    async def back_to_baseline() -> bool:
        return redis_server.connected_clients() == baseline

    assert await eventually(back_to_baseline)


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
