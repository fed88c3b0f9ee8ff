"""A superuser connection to the shared PostgreSQL fixture, and a server of its own made a hot standby."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.peers.db import PostgresServer, started


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
