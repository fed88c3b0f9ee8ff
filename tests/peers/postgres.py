"""What the `type: postgres` tests share: a probe with the fixture's password, and the probe's sessions as
the server sees them."""

from __future__ import annotations

import asyncpg

from probed.probes.postgres import PostgresProbeConfig
from tests.peers.db import PG_PASSWORD, PG_USER, build_probe

SECRETS = frozenset({PG_PASSWORD})
RESERVED = 3  # superuser_reserved_connections in the fixture


def pg_probe(target: str, timeout: float = 2.0, **settings: object) -> object:
    settings.setdefault("password", PG_PASSWORD)
    return build_probe("postgres", target, PostgresProbeConfig(**settings), timeout, SECRETS)  # type: ignore[arg-type]


async def probe_sessions(admin: asyncpg.Connection, query_like: str = "%") -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE $2", PG_USER, query_like)
    return count
