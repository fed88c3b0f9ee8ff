"""`type: postgres` against a real throwaway PostgreSQL: a healthy server, the query and its expectations,
failing, slow and cancelled queries, long-running queries over the limit."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from probed.probes import get_kind
from probed.result import Reason
from tests.peers.db import MAX_CONNECTIONS, PG_PASSWORD, PostgresServer, attempt, eventually
from tests.peers.postgres import RESERVED, pg_probe, probe_sessions

pytestmark = pytest.mark.database


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
