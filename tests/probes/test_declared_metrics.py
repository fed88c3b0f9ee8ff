"""Every phase, value and info name a probe type's results carry is declared on its ProbeKind.

The metric catalog (probed/output/catalog.py) counts series from `ProbeKind.phases`, `.values`,
`.aliases` and `.infos`; a name a result carries but its kind does not declare is a series the
catalog, `probed check`'s estimate and the docs do not know. Each type runs here against a real
peer, on its richest path (every check on, TLS where it has TLS) and a failing one.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from probed.probes import get_kind
from probed.probes.mysql import MysqlProbeConfig
from probed.probes.postgres import PostgresProbeConfig
from probed.probes.redis import RedisProbeConfig
from probed.result import ProbeResult
from tests.peers.aws import AwsHarness
from tests.peers.db import (
    MY_PASSWORD,
    PG_PASSWORD,
    REDIS_PASSWORD,
    MariaDbServer,
    PostgresServer,
    RedisServer,
    attempt,
    build_probe,
)
from tests.peers.dns import Zone, dns_server
from tests.peers.http import Pki, Prober, WebPeer
from tests.peers.net import HOST, closed_port


def undeclared(type_name: str, results: Iterable[ProbeResult]) -> dict[str, set[str]]:
    kind = get_kind(type_name)
    carried: dict[str, set[str]] = {"phases": set(), "values": set(), "infos": set()}
    for result in results:
        carried["phases"] |= set(result.phases)
        carried["values"] |= set(result.values)
        carried["infos"] |= set(result.info)
    declared = {"phases": set(kind.phases), "values": set(kind.values) | set(kind.aliases),
                "infos": set(kind.infos)}
    assert any(carried.values()), f"{type_name}: the scenarios produced nothing to check"
    return {k: carried[k] - declared[k] for k in carried if carried[k] - declared[k]}


async def test_http(prober: Prober, web_peer: WebPeer, tls_peer: WebPeer, pki: Pki) -> None:
    tls = {"tls": {"ca_file": pki.ca_file}}
    results = [
        await prober.once("http", f"{web_peer.url}/redirect/2"),
        await prober.once("http", f"{tls_peer.url.replace('http:', 'https:')}/health", tls),
        await prober.once("http", f"http://{HOST}:{closed_port()}/"),
    ]
    assert results[1].success, results[1].detail
    assert undeclared("http", results) == {}


async def test_tcp_and_tls(prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    address = f"{HOST}:{tls_peer.port}"
    tcp = [await prober.once("tcp", address, {"tls": True, "tls_config": {"ca_file": pki.ca_file}}),
           await prober.once("tcp", f"{HOST}:{closed_port()}")]
    tls = [await prober.once("tls", address, {"ca_file": pki.ca_file}),
           await prober.once("tls", f"{HOST}:{closed_port()}")]
    assert tcp[0].success and tls[0].success, (tcp[0].detail, tls[0].detail)
    assert undeclared("tcp", tcp) == {}
    assert undeclared("tls", tls) == {}


async def test_dns(prober: Prober) -> None:
    table = {("www.example.com", "A"): Zone(records=("www.example.com. 300 IN A 192.0.2.10",), truncate_udp=True)}
    async with dns_server(table) as server:
        results = [await prober.once("dns", "www.example.com", {"server": f"{HOST}:{server.port}"}),
                   await prober.once("dns", "nowhere.example.com", {"server": f"{HOST}:{server.port}"})]
    assert results[0].success, results[0].detail
    assert undeclared("dns", results) == {}


SQL_CHECKS = {"check_connections": True, "expect_role": "primary", "max_long_running_queries": 10}


@pytest.mark.database
async def test_postgres(pg_server: PostgresServer) -> None:
    results = [await attempt(build_probe("postgres", pg_server.url(), PostgresProbeConfig(password=PG_PASSWORD,
                                                                                          **SQL_CHECKS))),
               await attempt(build_probe("postgres", pg_server.url(), PostgresProbeConfig(password="wrong")))]
    assert results[0].success, results[0].detail
    assert undeclared("postgres", results) == {}


@pytest.mark.database
async def test_mysql(mariadb_server: MariaDbServer) -> None:
    results = [await attempt(build_probe("mysql", mariadb_server.url(), MysqlProbeConfig(password=MY_PASSWORD,
                                                                                         **SQL_CHECKS))),
               await attempt(build_probe("mysql", mariadb_server.url(), MysqlProbeConfig(password="wrong")))]
    assert results[0].success, results[0].detail
    assert undeclared("mysql", results) == {}


@pytest.mark.database
async def test_redis(redis_server: RedisServer) -> None:
    settings = RedisProbeConfig(password=REDIS_PASSWORD, max_memory_ratio=0.9, max_connections_ratio=0.9)
    results = [await attempt(build_probe("redis", redis_server.url(), settings)),
               await attempt(build_probe("redis", redis_server.url(), RedisProbeConfig(password="wrong")))]
    assert results[0].success, results[0].detail
    assert undeclared("redis", results) == {}


async def test_aws(aws: AwsHarness) -> None:
    aws.admin("s3").create_bucket(Bucket="app-uploads")
    aws.admin("ecs").create_cluster(clusterName="prod")
    results = [
        await aws.once(check="s3_bucket", bucket="app-uploads", round_trip=True),
        await aws.once(check="ecs_service", cluster="prod", service="missing"),
        await aws.once(check="sts_identity"),
    ]
    assert results[0].success, results[0].detail
    assert undeclared("aws", results) == {}
